"""Near-real-time webhooks on the real scheduler: register the receiver, edit records, time their arrival.

Issue 25's measure. After the scenario's rounds, on a stack with ``webhooks: true`` (and FacturaDirecta
on its REST API, the one with webhooks):

1. ``python -m clientify_sync.webhooks.register`` points the Clientify sandbox's v2 slots and a
   FacturaDirecta REST endpoint at the API server's receiver (loopback: the sandbox delivers nowhere
   else), storing the secrets in the Airflow connections, as an operator would.
2. ``E2E_WEBHOOK_EDITS`` (20) e-mail edits each way are made the way a user makes them, in the web app
   (the sandboxes' ``/_sandbox/webhooks/emit``: a UI edit notifies, an API write with our own key does
   not): Clientify → Facturama, Clientify → FacturaDirecta, FacturaDirecta → Clientify. The three
   directions take turns, one edit every ``E2E_WEBHOOK_SPACING_S`` / 3 seconds, so they arrive as a
   stream, not as one burst.
3. The other side is read through its public API every ``POLL_S`` until the record shows the edit;
   the latency is from the edit's answer to the first read that shows it.

Afterwards it waits until no run is active and reads everything again: every edit must still be on
both sides (no echo undid it) and no record may be duplicated. The tests assert on the result; the
numbers are printed in the terminal summary and written as JSON (``write_results``).
"""

from __future__ import annotations

import json
import math
import os
import re
import secrets
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
from e2e_stack import Stack

from tests.e2e.inventory import Inventory, pick_email, tax_key

CLIENTIFY_TO_FACTURAMA = "clientify->facturama"
CLIENTIFY_TO_FACTURADIRECTA = "clientify->facturadirecta"
FACTURADIRECTA_TO_CLIENTIFY = "facturadirecta->clientify"
DIRECTIONS = (CLIENTIFY_TO_FACTURAMA, CLIENTIFY_TO_FACTURADIRECTA, FACTURADIRECTA_TO_CLIENTIFY)
EDITS = int(os.environ.get("E2E_WEBHOOK_EDITS", "20"))
SPACING_S = float(os.environ.get("E2E_WEBHOOK_SPACING_S", "4.5"))  # between two edits of one direction
ARRIVAL_TIMEOUT_S = float(os.environ.get("E2E_WEBHOOK_TIMEOUT_S", "420"))  # after the last edit
POLL_S = 2.0
MAIN_EMAIL = 4  # Clientify's e-mail type "Main" (the one the sync reads)
CLIENTIFY_HEADERS = {"Authorization": "Token fake-clientify-sandbox-token"}
# A Clientify target's path in a log line with anything but the mask as its last segment: the path token.
UNMASKED_TARGET = re.compile(r"/clientify-sync/webhooks/clientify/[a-z]+/(?!\*\*\*)[^/\s\"']+")


@dataclass
class Edit:
    """One edit: where it was made, the record that must show it, and when it did."""

    direction: str
    source: str  # "<entity>/<id>" in Clientify, or the FacturaDirecta contact id
    target: str
    email: str
    edited_at: float = 0.0  # epoch seconds, when the edit was answered
    seconds: float | None = None  # edit → first read showing it on the other side


@dataclass
class Latency:
    """What the webhook phase did and measured."""

    executor: str
    registration_rc: int = -1
    registration: list[str] = field(default_factory=list)
    edits: list[Edit] = field(default_factory=list)
    runs: list[dict[str, Any]] = field(default_factory=list)
    not_on_both_sides: list[str] = field(default_factory=list)
    counts_before: dict[str, dict[str, int]] = field(default_factory=dict)
    counts_after: dict[str, dict[str, int]] = field(default_factory=dict)
    duplicates: dict[str, dict[str, int]] = field(default_factory=dict)
    deliveries: dict[str, Any] = field(default_factory=dict)
    error_lines: list[str] = field(default_factory=list)  # of the runs the edits woke
    unmasked_paths: int = 0  # API server log lines showing a Clientify path token
    seconds: float = 0.0

    def stats(self) -> dict[str, dict[str, Any]]:
        """Per direction: edits, how many arrived, and p50/p95/max seconds of those that did."""
        out = {}
        for direction in DIRECTIONS:
            edits = [e for e in self.edits if e.direction == direction]
            times = sorted(e.seconds for e in edits if e.seconds is not None)
            out[direction] = {
                "edits": len(edits),
                "arrived": len(times),
                "p50_s": percentile(times, 0.50),
                "p95_s": percentile(times, 0.95),
                "max_s": times[-1] if times else None,
            }
        return out


def percentile(values: list[float], p: float) -> float | None:
    """Nearest-rank percentile of sorted ``values`` (p95 of 20 values is the 19th)."""
    if not values:
        return None
    return values[max(0, math.ceil(p * len(values)) - 1)]


# -- choosing the records -------------------------------------------------------------------------------


def pairs(inventory: Inventory) -> dict[str, list[tuple[str, str]]]:
    """Clientify records paired by tax id with a Facturama / FacturaDirecta client whose e-mail they share
    (so the sync linked them), as ``("<entity>/<id>", invoicing id)``, in a stable order."""
    crm = [("contacts", r) for r in inventory.records["clientify"]["contacts"]] + [
        ("companies", r) for r in inventory.records["clientify"]["companies"]
    ]
    by_key = {
        key: (entity, r) for entity, r in crm if (key := tax_key(r.get("taxpayer_identification_number")))
    }
    found: dict[str, list[tuple[str, str]]] = {"facturama": [], "facturadirecta": []}
    sides = (
        ("facturama", inventory.records["facturama"]["clients"], "Rfc", "Id", "Email"),
        ("facturadirecta", inventory.records["facturadirecta"]["clients"], "taxCode", "id", "email"),
    )
    for platform, clients, tax_field, id_field, email_field in sides:
        for client in clients:
            match = by_key.get(tax_key(client.get(tax_field)) or "")
            if match is None:
                continue
            entity, record = match
            email = str(client.get(email_field) or "").strip().lower()
            if email and email == pick_email(record):
                found[platform].append((f"{entity}/{record['id']}", str(client[id_field])))
        found[platform].sort()
    return found


def plan_edits(inventory: Inventory, count: int = EDITS) -> list[Edit]:
    """``count`` edits per direction on distinct records, interleaved by direction."""
    found = pairs(inventory)
    nonce = secrets.token_hex(3)
    fm = found["facturama"][:count]
    fd_out = found["facturadirecta"][:count]
    fd_in = found["facturadirecta"][count : 2 * count]
    per_direction = {
        CLIENTIFY_TO_FACTURAMA: [(crm, other) for crm, other in fm],
        CLIENTIFY_TO_FACTURADIRECTA: [(crm, other) for crm, other in fd_out],
        FACTURADIRECTA_TO_CLIENTIFY: [(other, crm) for crm, other in fd_in],
    }
    edits = []
    for i in range(count):
        for direction, chosen in per_direction.items():
            if i < len(chosen):
                source, target = chosen[i]
                tag = direction.replace("->", "-to-")
                edits.append(Edit(direction, source, target, f"wh-{tag}-{i:02d}-{nonce}@example.org"))
    return edits


# -- editing and reading --------------------------------------------------------------------------------


def edit(stack: Stack, change: Edit) -> None:
    """Make one edit as a user in the web app would (it notifies the webhook)."""
    if change.direction == FACTURADIRECTA_TO_CLIENTIFY:
        url = f"{stack.sandbox_url('facturadirecta')}/_sandbox/webhooks/emit"
        body: dict[str, Any] = {"id": change.source, "action": "updated", "changes": {"email": change.email}}
    else:
        entity, rid = change.source.split("/")
        url = f"{stack.sandbox_url('clientify')}/_sandbox/webhooks/emit"
        body = {
            "entity": entity,
            "id": int(rid),
            "action": "saved",
            "source": "ui",
            "changes": {"emails": [{"type": MAIN_EMAIL, "email": change.email}]},
        }
    httpx.post(url, json=body, timeout=30).raise_for_status()
    change.edited_at = time.time()


def current_emails(stack: Stack, directions: set[str]) -> dict[str, str]:
    """The e-mail of every record a pending direction targets, keyed like ``Edit.target``."""
    from tests.e2e.scenario import facturadirecta_rest_credentials

    found: dict[str, str] = {}
    if CLIENTIFY_TO_FACTURAMA in directions:
        with httpx.Client(base_url=stack.sandbox_url("facturama"), timeout=60, auth=_facturama_auth()) as fm:
            start = 0
            while True:
                page = fm.get("/Clients", params={"start": start, "length": 100, "search": ""})
                data = page.raise_for_status().json()
                found |= {str(c["Id"]): str(c.get("Email") or "").lower() for c in data["data"]}
                start += len(data["data"])
                if not data["data"] or start >= data["recordsTotal"]:
                    break
    if CLIENTIFY_TO_FACTURADIRECTA in directions:
        company, key = facturadirecta_rest_credentials()
        with httpx.Client(
            base_url=f"{stack.sandbox_url('facturadirecta')}/api/{company}",
            timeout=60,
            headers={"facturadirecta-api-key": key},
        ) as fd:
            offset = 0
            while True:
                data = fd.get("/contacts", params={"offset": offset, "limit": 100}).raise_for_status().json()
                found |= {
                    i["content"]["uuid"]: str(i["content"]["main"].get("email") or "").lower()
                    for i in data["items"]
                }
                offset += len(data["items"])
                if not data["items"] or offset >= data["pagination"]["total"]:
                    break
    if FACTURADIRECTA_TO_CLIENTIFY in directions:
        with httpx.Client(
            base_url=stack.sandbox_url("clientify"), timeout=60, headers=CLIENTIFY_HEADERS
        ) as crm:
            for entity in ("contacts", "companies"):
                url: str | None = f"/v1/{entity}/?page_size=100&ordering=id"
                while url:
                    body = crm.get(url).raise_for_status().json()
                    found |= {f"{entity}/{r['id']}": pick_email(r) for r in body["results"]}
                    url = body.get("next")
    return found


def _facturama_auth() -> tuple[str, str]:
    from e2e_stack import FACTURAMA_PASSWORD, FACTURAMA_USER

    return (FACTURAMA_USER, FACTURAMA_PASSWORD)


# -- the phase ------------------------------------------------------------------------------------------


def measure(stack: Stack, before: Inventory) -> Latency:
    """Register, edit, time; then check the edits stayed and nothing was duplicated (see the module doc)."""
    from tests.e2e.scenario import dag_runs, error_lines, inventory, wait_idle

    started = time.monotonic()
    result = Latency(stack.executor, counts_before=before.counts())
    registered = stack.register_webhooks()
    result.registration_rc = registered.returncode
    result.registration = (registered.stdout + registered.stderr).strip().splitlines()[-40:]
    if registered.returncode != 0:
        result.seconds = round(time.monotonic() - started, 1)
        return result
    known = {(r["dag_id"], r["dag_run_id"]) for r in dag_runs(stack)}
    result.edits = plan_edits(before)
    pending = list(result.edits)
    queue = list(result.edits)
    step_s = SPACING_S / len(DIRECTIONS)
    next_edit = next_poll = time.monotonic()
    deadline: float | None = None
    while pending:
        now = time.monotonic()
        if queue and now >= next_edit:
            edit(stack, queue.pop(0))
            next_edit = now + step_s
            if not queue:
                deadline = now + ARRIVAL_TIMEOUT_S
        if now >= next_poll:
            sent = [e for e in pending if e.edited_at]
            if sent:
                emails = current_emails(stack, {e.direction for e in sent})
                seen_at = time.time()
                for change in sent:
                    if emails.get(change.target) == change.email:
                        change.seconds = round(seen_at - change.edited_at, 1)
                        pending.remove(change)
            next_poll = time.monotonic() + POLL_S
        if deadline is not None and time.monotonic() > deadline:
            break
        time.sleep(max(0.05, min(next_poll, next_edit if queue else next_poll) - time.monotonic()))
    wait_idle(stack, "the webhook-woken runs")
    result.runs = [
        {k: r.get(k) for k in ("dag_id", "dag_run_id", "run_type", "state", "start_date", "end_date")}
        for r in dag_runs(stack)
        if (r["dag_id"], r["dag_run_id"]) not in known
    ]
    after = inventory(stack)
    result.counts_after = after.counts()
    result.duplicates = after.duplicate_report()
    result.not_on_both_sides = stayed(after, result.edits)
    result.deliveries = {
        api: httpx.get(f"{stack.sandbox_url(api)}/_sandbox/webhooks", params={"limit": 0}, timeout=60)
        .json()
        .get("counts", {})
        for api in ("clientify", "facturadirecta")
    }
    woken = {r["dag_run_id"] for r in result.runs}
    result.error_lines = [
        line for line in error_lines(stack) if any(f"run_id={run_id}/" in line for run_id in woken)
    ]
    result.unmasked_paths = len(UNMASKED_TARGET.findall(stack.service_log("api-server")))
    result.seconds = round(time.monotonic() - started, 1)
    return result


def stayed(after: Inventory, edits: list[Edit]) -> list[str]:
    """Edits not on both sides at the end (an echo or a later run undid them), as readable lines."""
    emails: dict[str, str] = {}
    for entity in ("contacts", "companies"):
        emails |= {f"{entity}/{r['id']}": pick_email(r) for r in after.records["clientify"][entity]}
    emails |= {str(c["Id"]): str(c.get("Email") or "").lower() for c in after.records["facturama"]["clients"]}
    emails |= {
        str(c["id"]): str(c.get("email") or "").lower()
        for c in after.records["facturadirecta"]["clients"]
        if "email" in c
    }
    return [
        f"{e.direction} {e.source} -> {e.target}: source {emails.get(e.source)!r}, target "
        f"{emails.get(e.target)!r}, edited to {e.email!r}"
        for e in edits
        if emails.get(e.source) != e.email or emails.get(e.target) != e.email
    ]


def summary(result: Latency) -> list[str]:
    """Terminal lines: p50/p95/max per direction."""
    lines = [
        f"  webhooks: registration exit {result.registration_rc}; {len(result.edits)} edits, "
        f"{len(result.runs)} runs woken, phase {result.seconds}s; deliveries {result.deliveries}"
    ]
    for direction, s in result.stats().items():
        lines.append(
            f"    {direction}: {s['arrived']}/{s['edits']} arrived; p50 {s['p50_s']}s, p95 {s['p95_s']}s, "
            f"max {s['max_s']}s"
        )
    return lines


def write_results(result: Latency, directory: Path) -> Path:
    """``webhook-latency-<executor>.json`` in ``directory``: the stats and every edit's latency."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"webhook-latency-{result.executor}.json"
    data = {"stats": result.stats(), **asdict(result)}
    path.write_text(json.dumps(data, indent=1, default=str))
    return path
