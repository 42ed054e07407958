"""What every API client shares: the session, ``stats``, ``close``, ``test_connection`` and ``probe``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol, Self

from clientify_sync.api.http import ApiSession, RequestBudget
from clientify_sync.api.settings import HttpSettings
from clientify_sync.api.stats import CallStats
from clientify_sync.errors import AuthenticationError, ClientifySyncError, NotFoundError


class ProbeStatus(StrEnum):
    """What one read of an assumed resource showed."""

    SUPPORTED = "supported"
    UNSUPPORTED = "unsupported"  # the API answered 404 on the path: the account has no such resource
    UNKNOWN = "unknown"  # the read failed otherwise (5xx, timeout, odd body): nothing is concluded


@dataclass(frozen=True)
class ProbeResult:
    """One capability probe: a single GET on a resource the sync assumes exists.

    Attributes:
        api: ``"facturama"``, ``"clientify"`` or ``"facturadirecta"``.
        resource: what was probed (``"estimates"``, ``"budgets"``, ``"custom_fields"``).
        route: the path template that was read.
        entity: the sync entity that needs it (``"estimates"``), or None when every entity uses it.
        status: see ``ProbeStatus``.
        hint: what to do when unsupported (a connection extra to set, or the entity to disable).
        detail: the error text of an ``UNKNOWN`` probe.
    """

    api: str
    resource: str
    route: str
    entity: str | None
    status: ProbeStatus
    hint: str = ""
    detail: str = ""

    @property
    def supported(self) -> bool:
        """False only for a definite 404: an unknown outcome does not switch an entity off."""
        return self.status is not ProbeStatus.UNSUPPORTED

    @property
    def message(self) -> str:
        """``"unsupported: facturama answered 404 on /Estimates"``, with the hint."""
        if self.status is ProbeStatus.UNSUPPORTED:
            return f"unsupported: {self.api} answered 404 on {self.route} ({self.hint})"
        if self.status is ProbeStatus.UNKNOWN:
            return f"unknown: {self.api} could not be probed on {self.route}: {self.detail}"
        return f"supported: {self.api} answered on {self.route}"

    def as_dict(self) -> dict[str, Any]:
        """A JSON-able form for XCom and the run report."""
        return {
            "api": self.api, "resource": self.resource, "route": self.route, "entity": self.entity,
            "status": self.status.value, "message": self.message, "hint": self.hint,
        }  # fmt: skip


@dataclass(frozen=True)
class Probe:
    """An assumed resource and the one read that checks it (declared by each client)."""

    resource: str
    route: str
    entity: str | None
    hint: str
    read: Callable[[], Any]


class Probing(Protocol):
    """What ``unsupported`` needs of a client (``protocols.ServiceClient`` has it): typed here, so this
    module imports nothing of the protocols that import it."""

    def probe(self) -> list[ProbeResult]: ...


def unsupported(entity: str, *clients: Probing) -> list[ProbeResult]:
    """The probes of ``clients`` that rule ``entity`` out: a 404 on a resource it needs.

    E.g. ``unsupported("estimates", facturama, clientify)`` before an estimates run: a non-empty answer
    means the run should end green with the entity reported unsupported (each result's ``message``),
    not fail every hour.
    """
    return [
        result
        for client in clients
        for result in client.probe()
        if result.entity == entity and not result.supported
    ]


class ApiClient:
    """Base of the three clients; subclasses add resource groups, a cheap ``_probe`` and ``_probes``."""

    display_name = "API"
    api_name = "api"

    def __init__(self, session: ApiSession) -> None:
        self._session = session
        self.settings: HttpSettings = session.settings
        self.stats: CallStats = session.stats

    @property
    def base_url(self) -> str:
        """The API's scheme, host and port."""
        return self._session.settings.base_url

    def share_budget(self, budget: RequestBudget) -> None:
        """Draw every request of this client from ``budget`` instead of its own token bucket.

        Args:
            budget: e.g. ``clientify_sync.engine.budget.SharedRequestBudget``, one budget for every task
                and worker using the same account.
        """
        self._session.share_budget(budget)

    def _probe(self) -> str:
        """Make one cheap authenticated call; return a short success description."""
        raise NotImplementedError

    def _probes(self) -> list[Probe]:
        """The assumed resources of this API (none by default)."""
        return []

    def probe(self) -> list[ProbeResult]:
        """Read each assumed resource once and say which exist.

        A 404 means the account (or the API) has no such resource: the entity that needs it is
        reported unsupported instead of failing every run.

        Raises:
            AuthenticationError: the credentials are rejected (nothing can be concluded then).
        """
        results = []
        for probe in self._probes():
            try:
                probe.read()
            except AuthenticationError:
                raise
            except NotFoundError:
                status, detail = ProbeStatus.UNSUPPORTED, ""
            except ClientifySyncError as exc:
                status, detail = ProbeStatus.UNKNOWN, str(exc)
            else:
                status, detail = ProbeStatus.SUPPORTED, ""
            results.append(ProbeResult(self.api_name, probe.resource, probe.route, probe.entity, status,
                                       probe.hint, detail))  # fmt: skip
        return results

    def test_connection(self) -> tuple[bool, str]:
        """``(True, "...")`` when the API accepts the credentials, else ``(False, reason)``.

        The assumed resources are probed too: any that answer 404 (or cannot be read) are named in the
        message, so the connection test shows what a run would report as unsupported.
        """
        try:
            found = self._probe()
            problems = [
                result.message for result in self.probe() if result.status is not ProbeStatus.SUPPORTED
            ]
        except AuthenticationError as exc:
            return False, f"{self.display_name} rejected the credentials (HTTP {exc.status}): {exc.detail}"
        except ClientifySyncError as exc:
            return False, f"{self.display_name} is not reachable or misbehaves: {exc}"
        message = f"Connected to {self.display_name} at {self.base_url} ({found})"
        return True, "; ".join([message, *problems])

    def close(self) -> None:
        """Close the underlying connection pool."""
        self._session.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(base_url={self.base_url!r})"
