"""What every API client shares: the session, ``stats``, ``close`` and ``test_connection``."""

from __future__ import annotations

from typing import Any, Self

from clientify_sync.api.http import ApiSession
from clientify_sync.api.stats import CallStats
from clientify_sync.errors import AuthenticationError, ClientifySyncError


class ApiClient:
    """Base of the three clients; subclasses add resource groups and a cheap ``_probe``."""

    display_name = "API"

    def __init__(self, session: ApiSession) -> None:
        self._session = session
        self.stats: CallStats = session.stats

    @property
    def base_url(self) -> str:
        return self._session.settings.base_url

    def _probe(self) -> str:
        """Make one cheap authenticated call; return a short success description."""
        raise NotImplementedError

    def test_connection(self) -> tuple[bool, str]:
        """``(True, "...")`` when the API accepts the credentials, else ``(False, reason)``."""
        try:
            found = self._probe()
        except AuthenticationError as exc:
            return False, f"{self.display_name} rejected the credentials (HTTP {exc.status}): {exc.detail}"
        except ClientifySyncError as exc:
            return False, f"{self.display_name} is not reachable or misbehaves: {exc}"
        return True, f"Connected to {self.display_name} at {self.base_url} ({found})"

    def close(self) -> None:
        """Close the underlying connection pool."""
        self._session.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(base_url={self.base_url!r})"
