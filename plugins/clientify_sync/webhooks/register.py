"""Register our receiver with the platforms that push: ``python -m clientify_sync.webhooks.register``.

Clientify (API v2): one slot per entity, each with one target. We use ``contacts``, ``companies``,
``products`` and ``budgets``, all pointed at ``<public url>/clientify-sync/webhooks/clientify/<slot>/<path
token>`` with an ``X-Clientify-Secret`` header. A slot that points somewhere else is never overwritten:
Clientify's own integrations may use it, so we name the slot and where it points, and register the rest.
The header secret and the path token are generated once and stored in the connection
``clientify_sync_webhooks_clientify`` *before* a slot is registered, so the first delivery is accepted.

FacturaDirecta (REST API; the classic API has no webhooks): one endpoint per company for ``contact.*``,
``product.*`` and ``estimate.*`` at ``<public url>/clientify-sync/webhooks/facturadirecta/<account>``. Its
signing secret is shown only when the endpoint is created (or its secret rotated), so it is stored in
``clientify_sync_webhooks_facturadirecta_<account>`` at once, with the company id.

Idempotent: a second run finds everything in place and changes nothing. A slot or endpoint switched
off is switched on again; an endpoint missing some of our events gets them; an endpoint of ours whose
secret the connection lost gets a new one (rotated). Nothing prints or logs a secret or the path token.

``register()`` is the whole thing without argparse (an admin action of the status view can call it);
``plan_clientify`` / ``plan_facturadirecta`` take the API clients and the connection store as arguments.
"""

from __future__ import annotations

import argparse
import ipaddress
import logging
import secrets
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol
from urllib.parse import urlsplit

import httpx

from clientify_sync.api.facturadirecta_rest_webhooks import CreatedEndpoint, Endpoint
from clientify_sync.api.redaction import redact_url
from clientify_sync.errors import (
    ApiError,
    AuthenticationError,
    ClientifySyncError,
    ConfigurationError,
    ValidationError,
)
from clientify_sync.webhooks.config import ACCOUNT, CLIENTIFY_CONN_ID, FACTURADIRECTA_CONN_PREFIX
from clientify_sync.webhooks.connection_store import ConnectionStore, MetadataConnections
from clientify_sync.webhooks.verify import usable

log = logging.getLogger(__name__)

# Where the status app mounts the receiver (ui.app.URL_PREFIX + ui.app.WEBHOOKS_PATH).
RECEIVER_PATH = "/clientify-sync/webhooks"
CLIENTIFY_SLOTS = ("contacts", "companies", "products", "budgets")  # receiver.CLIENTIFY_SLOTS
FACTURADIRECTA_EVENTS = tuple(
    f"{kind}.{action}" for kind in ("contact", "product", "estimate")
    for action in ("created", "updated", "archived", "unarchived")
)  # fmt: skip
SECRET_HEADER = "X-Clientify-Secret"
ENDPOINT_NAME = "clientify-sync"
DEFAULT_ACCOUNT = "main"
CLIENTIFY, FACTURADIRECTA = "clientify", "facturadirecta"
DESCRIPTION = (
    "clientify-sync webhook receiver secrets (written by python -m clientify_sync.webhooks.register)"
)


class Outcome(StrEnum):
    """What happened to one slot, endpoint or connection (in a dry run: what would)."""

    UNCHANGED = "unchanged"
    REGISTERED = "registered"
    ACTIVATED = "activated"
    UPDATED = "updated"
    STORED = "stored"
    REFUSED = "refused"
    SKIPPED = "skipped"
    FAILED = "failed"


@dataclass(frozen=True)
class Step:
    """One line of the report: ``platform``, the slot / endpoint / connection, the outcome, why."""

    platform: str
    item: str
    outcome: Outcome
    detail: str = ""

    def line(self, dry_run: bool = False) -> str:
        verb = f"would be {self.outcome}" if dry_run and self.outcome in _CHANGES else str(self.outcome)
        return f"{self.platform} {self.item}: {verb}" + (f" ({self.detail})" if self.detail else "")


_CHANGES = {Outcome.REGISTERED, Outcome.ACTIVATED, Outcome.UPDATED, Outcome.STORED}


@dataclass
class Report:
    """Every step of one registration."""

    dry_run: bool = False
    steps: list[Step] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Nothing refused or failed."""
        return not any(s.outcome in (Outcome.REFUSED, Outcome.FAILED) for s in self.steps)

    @property
    def changed(self) -> bool:
        return any(s.outcome in _CHANGES for s in self.steps)

    def lines(self) -> list[str]:
        return [s.line(self.dry_run) for s in self.steps] + [f"note: {n}" for n in self.notes]


# -- the receiver's public URLs ---------------------------------------------------------------------------


def receiver_base(public_url: str) -> str:
    """``https://example.org`` (or ``…/clientify-sync/webhooks``) as the receiver's public base URL.

    HTTPS only (both platforms refuse anything else), except on a loopback host (the sandbox, which
    accepts loopback targets only).

    Raises:
        ConfigurationError: not an absolute http(s) URL, credentials or a query in it, or plain http
            on a public host.
    """
    parts = urlsplit(public_url.strip())
    host = parts.hostname or ""
    if parts.scheme not in ("https", "http") or not host:
        raise ConfigurationError(f"--public-url must be an absolute https URL, got {public_url!r}")
    if parts.username or parts.password or parts.query or parts.fragment:
        raise ConfigurationError("--public-url must carry no credentials, query or fragment")
    if parts.scheme == "http" and not _loopback(host):
        raise ConfigurationError(
            "--public-url must be https: Clientify and FacturaDirecta deliver to HTTPS targets only"
        )
    path = parts.path.rstrip("/")
    if not path.endswith(RECEIVER_PATH):
        path += RECEIVER_PATH
    return f"{parts.scheme}://{parts.netloc}{path}"


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def clientify_target(base: str, slot: str, path_token: str) -> str:
    return f"{base}/clientify/{slot}/{path_token}"


def facturadirecta_target(base: str, account: str) -> str:
    return f"{base}/facturadirecta/{account}"


def shown(url: str, base: str) -> str:
    """A target as it may be printed: our own path token masked, another's query values masked."""
    if url.startswith(f"{base}/clientify/"):
        return url.rsplit("/", 1)[0] + "/***"
    parts = urlsplit(url)
    netloc = parts.netloc.rpartition("@")[2]  # never a userinfo
    return redact_url(parts._replace(netloc=netloc, fragment="").geturl())


# -- Clientify ----------------------------------------------------------------------------------------------


class SlotApi(Protocol):
    """``api.clientify_webhooks.ClientifyWebhookSlots`` (a fake in unit tests)."""

    def get(self, entity: str) -> Any: ...

    def register(self, entity: str, target: str, headers: dict[str, str]) -> Any: ...

    def activate(self, entity: str) -> None: ...


def plan_clientify(
    slots: SlotApi, store: ConnectionStore, base: str, *, dry_run: bool = False,
    new_secret: Callable[[], str] = lambda: secrets.token_urlsafe(32),
) -> list[Step]:  # fmt: skip
    """Point Clientify's four slots at the receiver (see the module doc); one step per slot."""
    extra = store.read(CLIENTIFY_CONN_ID) or {}
    secret = next(iter(usable([extra.get("webhook_secret")])), None)
    token = next(iter(usable([extra.get("webhook_path_token")])), None)
    fresh = secret is None or token is None
    if secret is None or token is None:
        secret, token = new_secret(), new_secret()
    own_prefix = f"{base}/clientify/"
    steps: list[Step] = []
    to_register: list[str] = []
    for slot in CLIENTIFY_SLOTS:
        ours = clientify_target(base, slot, token)
        current = slots.get(slot)
        if current.target == ours:
            if current.is_active:
                steps.append(Step(CLIENTIFY, f"slot {slot}", Outcome.UNCHANGED))
            else:
                if not dry_run:
                    slots.activate(slot)
                steps.append(Step(CLIENTIFY, f"slot {slot}", Outcome.ACTIVATED, "it was switched off"))
        elif current.free:
            to_register.append(slot)
        else:
            steps.append(
                Step(
                    CLIENTIFY,
                    f"slot {slot}",
                    Outcome.REFUSED,
                    _foreign(slot, current.target, base, own_prefix),
                )
            )
    if to_register and fresh:
        if not dry_run:
            # Before any slot points at us: the receiver must know the secret of the first delivery.
            store.write(
                CLIENTIFY_CONN_ID,
                {**extra, "webhook_secret": secret, "webhook_path_token": token},
                DESCRIPTION,
            )
        steps.append(Step(CLIENTIFY, f"connection {CLIENTIFY_CONN_ID}", Outcome.STORED,
                          "a new X-Clientify-Secret and path token"))  # fmt: skip
    for slot in to_register:
        steps.append(
            _register_slot(
                slots, slot, clientify_target(base, slot, token), secret, base, own_prefix, dry_run
            )
        )
    order = {f"slot {s}": i for i, s in enumerate(CLIENTIFY_SLOTS)}
    return sorted(steps, key=lambda s: order.get(s.item, -1))


def _register_slot(slots: SlotApi, slot: str, target: str, secret: str, base: str, own_prefix: str,
                   dry_run: bool) -> Step:  # fmt: skip
    item = f"slot {slot}"
    if dry_run:
        return Step(CLIENTIFY, item, Outcome.REGISTERED, f"-> {shown(target, base)}")
    try:
        slots.register(slot, target, {SECRET_HEADER: secret})
    except ValidationError as error:
        if error.status != 409:
            return Step(CLIENTIFY, item, Outcome.FAILED, f"Clientify refused the target: {error}")
        current = slots.get(slot)  # taken meanwhile: by whom?
        if current.target == target:
            return Step(CLIENTIFY, item, Outcome.UNCHANGED)
        return Step(CLIENTIFY, item, Outcome.REFUSED, _foreign(slot, current.target, base, own_prefix))
    return Step(CLIENTIFY, item, Outcome.REGISTERED, f"-> {shown(target, base)}")


def _foreign(slot: str, target: str, base: str, own_prefix: str) -> str:
    where = shown(target, base)
    if target.startswith(own_prefix):
        return (f"Clientify slot {slot!r} points to this receiver with another path token ({where}), from a "
                f"registration whose secrets {CLIENTIFY_CONN_ID} no longer holds: delete the slot "
                f"(DELETE /v2/webhooks/{slot}/) and run the registration again")  # fmt: skip
    return (f"Clientify slot {slot!r} already points to {where} (one of Clientify's own integrations or another "
            f"tool may use it): not overwritten; free the slot in Clientify to register ours")  # fmt: skip


# -- FacturaDirecta ------------------------------------------------------------------------------------------


class EndpointApi(Protocol):
    """``api.facturadirecta_rest_webhooks.WebhookEndpoints`` (a fake in unit tests)."""

    def all(self) -> list[Endpoint]: ...

    def create(self, name: str, url: str, events: list[str]) -> CreatedEndpoint: ...

    def set_events(self, endpoint_id: str, events: list[str]) -> Endpoint: ...

    def enable(self, endpoint_id: str) -> Endpoint: ...

    def rotate_secret(self, endpoint_id: str) -> str: ...


def plan_facturadirecta(
    endpoints: EndpointApi, store: ConnectionStore, base: str, *, account: str, company_id: str,
    dry_run: bool = False,
) -> list[Step]:  # fmt: skip
    """One endpoint of ours for the company, its secret and company in the account's connection."""
    if not ACCOUNT.match(account):
        raise ConfigurationError(f"account must match {ACCOUNT.pattern}, got {account!r}")
    conn_id = FACTURADIRECTA_CONN_PREFIX + account
    extra = store.read(conn_id) or {}
    url = facturadirecta_target(base, account)
    item = f"endpoint {account}"
    listed = endpoints.all()
    mine = [e for e in listed if e.url == url]
    steps: list[Step] = []
    elsewhere = [
        e for e in listed if e.url != url and e.url.endswith(f"{RECEIVER_PATH}/facturadirecta/{account}")
    ]
    for old in elsewhere:
        steps.append(Step(FACTURADIRECTA, f"endpoint {old.id}", Outcome.SKIPPED,
                          f"an earlier registration at {shown(old.url, base)}; delete it if that URL is gone"))  # fmt: skip
    wanted = {**extra, "company_id": company_id}

    def store_secret(secret: str | None, why: str) -> None:
        values = dict(wanted)
        if secret is not None:
            values["webhook_secret"] = secret
            values.pop("webhook_secret_previous", None)  # signed by an endpoint that no longer signs
        if not dry_run:
            store.write(conn_id, values, DESCRIPTION)
        steps.append(Step(FACTURADIRECTA, f"connection {conn_id}", Outcome.STORED, why))

    if not mine:
        if dry_run:
            steps.append(Step(FACTURADIRECTA, item, Outcome.REGISTERED, f"-> {shown(url, base)}"))
            store_secret(None, "the new endpoint's signing secret")
            return steps
        created = endpoints.create(ENDPOINT_NAME, url, list(FACTURADIRECTA_EVENTS))
        steps.append(
            Step(FACTURADIRECTA, item, Outcome.REGISTERED, f"-> {shown(url, base)} ({created.endpoint.id})")
        )
        store_secret(created.signing_secret, "the new endpoint's signing secret")
        return steps
    endpoint, *duplicates = mine
    changed = False
    missing = [e for e in FACTURADIRECTA_EVENTS if e not in endpoint.events]
    if missing:
        if not dry_run:
            endpoints.set_events(endpoint.id, sorted({*endpoint.events, *FACTURADIRECTA_EVENTS}))
        steps.append(Step(FACTURADIRECTA, item, Outcome.UPDATED, f"events added: {', '.join(missing)}"))
        changed = True
    if not endpoint.enabled:
        if not dry_run:
            endpoints.enable(endpoint.id)
        steps.append(Step(FACTURADIRECTA, item, Outcome.ACTIVATED, "it was disabled"))
        changed = True
    if not usable([extra.get("webhook_secret")]):
        secret = None if dry_run else endpoints.rotate_secret(endpoint.id)
        store_secret(secret, f"{conn_id} had no signing secret for {endpoint.id}: rotated")
    elif extra.get("company_id") != company_id:
        store_secret(None, f"company_id {company_id}")
    elif not changed:
        steps.append(Step(FACTURADIRECTA, item, Outcome.UNCHANGED, endpoint.id))
    for duplicate in duplicates:
        steps.append(Step(FACTURADIRECTA, f"endpoint {duplicate.id}", Outcome.SKIPPED,
                          "a second endpoint with our URL: its deliveries fail our signature check; delete it"))  # fmt: skip
    return steps


# -- from the Airflow connections ---------------------------------------------------------------------------


def _connection(conn_id: str) -> Any:
    """An API connection through every server-side secrets backend (the metadata database included)."""
    from airflow.models.connection import Connection

    return Connection.get_connection_from_secrets(conn_id)


def register(
    public_url: str, *, platforms: Iterable[str] | None = None, dry_run: bool = False,
    account: str = DEFAULT_ACCOUNT, store: ConnectionStore | None = None,
    transport: httpx.BaseTransport | None = None,
) -> Report:  # fmt: skip
    """Register the receiver for the enabled integrations (no argparse, no printing).

    Args:
        public_url: where the Airflow API server (or just its ``/clientify-sync/webhooks/`` paths) is
            reachable from the internet.
        platforms: ``clientify`` and/or ``facturadirecta`` (default: both, as the enabled integrations
            need them).
        dry_run: only read: say what would change.
        account: the FacturaDirecta receiver account (the route's last segment, the connection's suffix).
        store: where the secrets go (default: Airflow's metadata database).
        transport: for tests (an ``httpx`` transport for the API clients).

    Raises:
        ConfigurationError: a bad URL, platform or account; the integration config unreadable.
    """
    from clientify_sync.integrations import load_integrations
    from clientify_sync.vocabulary import Platform

    base = receiver_base(public_url)
    wanted = set(platforms or (CLIENTIFY, FACTURADIRECTA))
    if unknown := wanted - {CLIENTIFY, FACTURADIRECTA}:
        raise ConfigurationError(f"unknown platform(s) {sorted(unknown)}: clientify or facturadirecta")
    if not ACCOUNT.match(account):
        raise ConfigurationError(f"the FacturaDirecta account must match {ACCOUNT.pattern}, got {account!r}")
    config = load_integrations()
    store = store or MetadataConnections()
    report = Report(dry_run=dry_run)
    enabled = {p.name for p in config.enabled_platforms}
    if not config.webhooks:
        report.notes.append("the integration config has webhooks: false; the DAGs watch their inboxes only with "
                            "webhooks: true (deliveries are stored meanwhile, and the clock runs pick them up)")  # fmt: skip
    if CLIENTIFY in wanted:
        if enabled:
            report.steps += _guarded(
                CLIENTIFY, lambda: _clientify(config.clientify_conn_id, store, base, dry_run, transport)
            )
        else:
            report.steps.append(Step(CLIENTIFY, "slots", Outcome.SKIPPED, "no integration is enabled"))
    if FACTURADIRECTA in wanted:
        if Platform.FACTURADIRECTA in enabled:
            conn_id = config.platform(Platform.FACTURADIRECTA).conn_id
            report.steps += _guarded(
                FACTURADIRECTA, lambda: _facturadirecta(conn_id, store, base, account, dry_run, transport)
            )
        else:
            report.steps.append(
                Step(FACTURADIRECTA, "endpoint", Outcome.SKIPPED, "the integration is disabled")
            )
    return report


def _guarded(platform: str, work: Callable[[], list[Step]]) -> list[Step]:
    """A platform's steps, or one failed step saying why (the other platform still registers)."""
    try:
        return work()
    except AuthenticationError as error:
        hint = (" (Clientify: the API key must be an account administrator's, with the API add-on)"
                if platform == CLIENTIFY else " (the API key needs the webhooks:read and webhooks:write scopes)")  # fmt: skip
        return [Step(platform, "registration", Outcome.FAILED, f"{error}{hint}")]
    except (ApiError, ClientifySyncError) as error:
        return [Step(platform, "registration", Outcome.FAILED, str(error))]


def _clientify(conn_id: str, store: ConnectionStore, base: str, dry_run: bool,
               transport: httpx.BaseTransport | None) -> list[Step]:  # fmt: skip
    from clientify_sync.api.clientify_webhooks import ClientifyWebhookSlots
    from clientify_sync.api.settings import ClientifySettings

    conn = _connection(conn_id)
    settings = ClientifySettings.from_connection(
        host=conn.host, login=conn.login, password=conn.password, extra=conn.extra_dejson, port=conn.port,
        schema=conn.schema,
    )  # fmt: skip
    slots = ClientifyWebhookSlots(settings, transport)
    try:
        return plan_clientify(slots, store, base, dry_run=dry_run)
    finally:
        slots.close()


def _facturadirecta(conn_id: str, store: ConnectionStore, base: str, account: str, dry_run: bool,
                    transport: httpx.BaseTransport | None) -> list[Step]:  # fmt: skip
    from clientify_sync.api.facturadirecta_rest import FacturaDirectaRestClient
    from clientify_sync.api.settings import (
        FacturaDirectaRestSettings,
        facturadirecta_settings_from_connection,
    )
    from clientify_sync.hooks.facturadirecta import chosen_api_extras

    conn = _connection(conn_id)
    settings = facturadirecta_settings_from_connection(
        host=conn.host, login=conn.login, password=conn.password, extra=chosen_api_extras(conn.extra_dejson),
        port=conn.port, schema=conn.schema,
    )  # fmt: skip
    if not isinstance(settings, FacturaDirectaRestSettings):
        return [Step(FACTURADIRECTA, "endpoint", Outcome.SKIPPED,
                     f"{conn_id} uses the classic API, which has no webhooks: FacturaDirecta changes reach Clientify "
                     "with the clock runs (switch the connection to api: rest for webhooks)")]  # fmt: skip
    client = FacturaDirectaRestClient(settings, transport)
    try:
        return plan_facturadirecta(client.webhooks, store, base, account=account, company_id=settings.company_id,
                                   dry_run=dry_run)  # fmt: skip
    finally:
        client.close()


# -- the command --------------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """Exit 0 when everything is registered (or unchanged), 1 when a slot was refused or a call failed,
    2 on a configuration error."""
    parser = argparse.ArgumentParser(
        prog="python -m clientify_sync.webhooks.register",
        description="Register the clientify-sync webhook receiver with Clientify and FacturaDirecta, storing "
        "the secrets in the Airflow connections (run where the airflow command runs; idempotent).",
    )  # fmt: skip
    parser.add_argument("--public-url", required=True,
                        help="the public HTTPS URL of the Airflow API server (the reverse proxy in front of "
                        "/clientify-sync/webhooks/), e.g. https://sync.example.org")  # fmt: skip
    parser.add_argument("--platform", action="append", choices=(CLIENTIFY, FACTURADIRECTA),
                        help="register only with this platform (repeatable; default: both, as enabled)")  # fmt: skip
    parser.add_argument("--account", default=DEFAULT_ACCOUNT,
                        help=f"FacturaDirecta receiver account (route segment and connection suffix; "
                        f"default {DEFAULT_ACCOUNT})")  # fmt: skip
    parser.add_argument("--dry-run", action="store_true", help="only read: print what would change")
    args = parser.parse_args(argv)
    try:
        report = register(
            args.public_url, platforms=args.platform, dry_run=args.dry_run, account=args.account
        )
    except ClientifySyncError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    for line in report.lines():
        print(line)
    if report.dry_run:
        print("dry run: nothing was changed")
    elif not report.changed and report.ok:
        print("everything was already registered")
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
