"""Matching and planning: which records pair up, what changed, and what to write where.

Inputs are the records staged by the extract steps (the invoicing platform's full listing, the
Clientify records modified since the watermark), the Clientify mirror (every Clientify record seen
so far) and the links. pandas does the set work: joins on the stored link, then on the link field,
then on the tax ID / SKU. Matching order, as Clientify's own integration: 1) the link (ledger or the
link field), 2) the natural key, exact after normalisation, 3) otherwise create. An ambiguous key
(two records on one side) is quarantined, never guessed.

The output is a plan (one item per action, DiffSync-style "compute the diff, then apply it"),
stored in the ledger; nothing is written to an API here.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from clientify_sync.engine.ledger import Ledger
from clientify_sync.engine.merge import merge_fields
from clientify_sync.engine.model import EntitySchema
from clientify_sync.engine.vocabulary import Mode, Side

# Problems that make a record's outcome "failed" (the data is wrong), not "skipped" (out of scope).
FAILING_PROBLEMS = frozenset({"totals_mismatch"})
INV = Side.INVOICING.value
CRM = Side.CLIENTIFY.value
TO_CRM = "invoicing→clientify"
PAIRS_PER_CHUNK = 1000  # pairs merged at a time: their records are loaded per chunk, not all at once
TO_INV = "clientify→invoicing"


@dataclass
class PlanBuilder:
    """Collects the plan while reconciling one run and streams it to the ledger in chunks.

    ``prepare`` runs on each chunk before it is stored (dependency deferral, priorities); ``store``
    and ``store_conflicts`` write it (``None`` in a dry run for conflicts). Only counts stay in memory.
    """

    store: Callable[[list[dict[str, Any]]], None]
    store_conflicts: Callable[[list[dict[str, Any]]], None] | None = None
    prepare: Callable[[list[dict[str, Any]]], None] | None = None
    chunk: int = 2000
    items: list[dict[str, Any]] = field(default_factory=list)
    conflicts: list[dict[str, Any]] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)
    planned: Counter[str] = field(default_factory=Counter)
    conflict_count: int = 0
    first_match_count: int = 0

    def add(self, **item: Any) -> None:
        item.setdefault("status", "planned")
        self.items.append(item)
        if len(self.items) >= self.chunk:
            self.flush()

    def conflict(self, *, first_match: bool = False, **row: Any) -> None:
        """Record a field both sides hold differently (``first_match``: no base yet, nobody edited)."""
        if first_match:
            self.first_match_count += 1
        else:
            self.conflict_count += 1
        self.conflicts.append(row)

    def settle(self, outcome: str, direction: str, *, itemize: bool, **item: Any) -> None:
        """A record that ends here (skipped, quarantined): counted always, listed when new or changed."""
        self.counts[f"{direction}|{outcome}|{item.get('reason')}"] += 1
        if itemize:
            self.add(action=outcome, direction=direction, status="done", outcome=outcome, **item)

    def flush(self) -> None:
        if self.prepare is not None and self.items:
            self.prepare(self.items)
        for item in self.items:
            if item["status"] == "planned":
                self.planned[f"{item['action']}:{item.get('target') or '-'}"] += 1
        self.store(self.items)
        if self.store_conflicts is not None and self.conflicts:
            self.store_conflicts(self.conflicts)
        self.items, self.conflicts = [], []


def pair_id(inv: tuple[str, str] | None, crm: tuple[str, str] | None) -> str:
    return f"inv:{inv[0]}:{inv[1]}" if inv else f"crm:{crm[0]}:{crm[1]}"  # type: ignore[index]


def _dupes(frame: pd.DataFrame) -> set[str]:
    keys = frame.loc[frame["key"] != "", "key"]
    return set(keys[keys.duplicated(keep=False)])


def _in_pairs(frame: pd.DataFrame, pairs: set[tuple[str, ...]], prefix: tuple[str, ...] = ()) -> pd.Series:
    """Row mask: is ``(*prefix, rtype, rid)`` in ``pairs`` (a Series, so an empty frame stays a frame)."""
    values = [(*prefix, t, i) in pairs for t, i in zip(frame["rtype"], frame["rid"], strict=True)]
    return pd.Series(values, index=frame.index, dtype=bool)


def _changed_since_last_listing(row: Any) -> bool:
    return row.prev_hash is None or row.prev_hash != row.hash


def reconcile(
    ledger: Ledger,
    schema: EntitySchema,
    *,
    run_id: str,
    mode: Mode,
    crm_rtype_for: Any,
    dead_letter_limit: int = 5,
    dry_run: bool = False,
    dependencies: Callable[[dict[str, Any], str], list[str]] | None = None,
) -> PlanBuilder:
    """Build this run's plan and store it; return the builder (items, conflicts, counts)."""
    full = mode is Mode.FULL
    inv = ledger.remote_frame(INV, seen_run=run_id)
    crm_all = ledger.remote_frame(CRM)
    crm_window = crm_all[crm_all["seen_run"] == run_id]
    link_frame = ledger.links_frame()
    dead = ledger.dead_letters()
    # Deferred documents wait for their customer/products however long it takes: no attempt limit.
    retry_dead = dead[(dead["attempts"].astype(int) < dead_letter_limit) | (dead["reason"] == "dependency_missing")]
    dead_keys = {(r.side, r.rtype, r.rid) for r in retry_dead.itertuples()}

    def prepare(items: list[dict[str, Any]]) -> None:
        if dependencies is not None:
            _defer_missing_dependencies(ledger, plan, items, dependencies, run_id=run_id, dry_run=dry_run)
        _prioritise_dead_letters(items, dead_keys)

    plan = PlanBuilder(
        store=lambda items: ledger.add_plan_items(run_id, items),
        store_conflicts=None if dry_run else (lambda rows: ledger.add_conflicts(run_id, rows)),
        prepare=prepare,
    )
    plan.counts["dead_letters_exhausted"] = int(len(dead) - len(retry_dead))

    # -- records that cannot sync -----------------------------------------------------------------
    for row in inv[inv["problem"].notna()].itertuples():
        plan.settle("failed" if row.problem in FAILING_PROBLEMS else "skipped", TO_CRM, itemize=full or _changed_since_last_listing(row), reason=row.problem,
                    pair=pair_id((row.rtype, row.rid), None), inv_type=row.rtype, inv_id=row.rid)  # fmt: skip
    for row in crm_window[crm_window["problem"].notna()].itertuples():
        plan.settle("failed" if row.problem in FAILING_PROBLEMS else "skipped", TO_INV, itemize=full or _changed_since_last_listing(row), reason=row.problem,
                    pair=pair_id(None, (row.rtype, row.rid)), crm_type=row.rtype, crm_id=row.rid)  # fmt: skip
    inv_ok = inv[inv["problem"].isna()]
    crm_ok = crm_all[crm_all["problem"].isna()]
    inv_dupes, crm_dupes = _dupes(inv_ok), _dupes(crm_ok)

    # -- 1) pairs already linked ----------------------------------------------------------------
    linked = (
        link_frame.rename(columns={"inv_hash": "l_inv_hash", "crm_hash": "l_crm_hash"})
        .merge(inv.add_prefix("inv_"), how="left", left_on=["inv_type", "inv_id"], right_on=["inv_rtype", "inv_rid"])
        .merge(
            crm_all.add_prefix("crm_"), how="left", left_on=["crm_type", "crm_id"], right_on=["crm_rtype", "crm_rid"]
        )
    )
    evaluate: list[dict[str, Any]] = []
    for row in linked.itertuples():
        if pd.isna(row.inv_rid):
            continue  # linked record not in this listing: deleted on the invoicing side (deletes never sync)
        in_window = row.crm_seen_run == run_id
        if not pd.isna(row.inv_problem) or (in_window and not pd.isna(row.crm_problem)):
            continue  # settled above as skipped (e.g. a tax ID edited into an invalid one)
        if pd.isna(row.crm_rid):
            plan.settle("failed", TO_CRM, itemize=True, reason="clientify_record_unknown",
                        pair=pair_id((row.inv_type, row.inv_id), None), inv_type=row.inv_type,
                        inv_id=row.inv_id, crm_type=row.crm_type, crm_id=row.crm_id)  # fmt: skip
            continue
        inv_changed = row.l_inv_hash != row.inv_hash or (INV, row.inv_type, row.inv_id) in dead_keys
        crm_changed = in_window and row.l_crm_hash != row.crm_hash
        crm_changed = crm_changed or (CRM, row.crm_type, row.crm_id) in dead_keys
        if full or inv_changed or crm_changed:
            evaluate.append({"link_id": int(row.link_id), "inv": (row.inv_type, row.inv_id),
                             "crm": (row.crm_type, row.crm_id), "hashes": (row.l_inv_hash, row.l_crm_hash)})  # fmt: skip
        else:
            plan.counts["unchanged"] += 1

    linked_inv = set(zip(link_frame["inv_type"], link_frame["inv_id"], strict=True))
    linked_crm = set(zip(link_frame["crm_type"], link_frame["crm_id"], strict=True))

    # -- 2) unlinked invoicing records: link field, then natural key, else create -------------------
    inv_free = inv_ok[~_in_pairs(inv_ok, linked_inv)]
    crm_free = crm_ok[~_in_pairs(crm_ok, linked_crm)]
    by_link = crm_free[crm_free["link"].notna()].drop_duplicates("link", keep=False)
    # A Clientify record whose link field names another record is identified by it, not by its key.
    by_key = crm_free[(crm_free["key"] != "") & ~crm_free["key"].isin(crm_dupes) & crm_free["link"].isna()]
    matched_crm: set[tuple[str, str]] = set()
    matched_inv: set[tuple[str, str]] = set()
    new_pairs: list[tuple[tuple[str, str], tuple[str, str]]] = []
    # Join only the columns matching needs: these frames hold every record of the account.
    identity = ["rtype", "rid", "link", "key"]
    inv_link = inv_free.merge(by_link[identity].add_prefix("c_"), how="left", left_on="rid", right_on="c_link")
    inv_link = inv_link.merge(by_key[identity].add_prefix("k_"), how="left", left_on="key", right_on="k_key")
    for row in inv_link.itertuples():
        inv_ref = (row.rtype, row.rid)
        if not pd.isna(row.c_rid):
            crm_ref = (row.c_rtype, row.c_rid)
        elif row.key in crm_dupes or row.key in inv_dupes:
            reason = "duplicate_tax_id" if schema.key_field == "tax_id" else "duplicate_sku"
            plan.settle("quarantined", TO_CRM, itemize=full or _changed_since_last_listing(row), reason=reason,
                        pair=pair_id(inv_ref, None), inv_type=row.rtype, inv_id=row.rid)  # fmt: skip
            continue
        elif not pd.isna(row.k_rid) and (row.k_rtype, row.k_rid) not in matched_crm:
            crm_ref = (row.k_rtype, row.k_rid)
        else:
            plan.add(action="create", target=CRM, direction=TO_CRM, pair=pair_id(inv_ref, None),
                     inv_type=row.rtype, inv_id=row.rid, crm_type=crm_rtype_for(row.kind),
                     reason="no_match")  # fmt: skip
            continue
        matched_crm.add(crm_ref)
        matched_inv.add(inv_ref)
        new_pairs.append((inv_ref, crm_ref))

    # -- 3) unlinked Clientify records seen in this run: the same, the other way --------------------
    inv_by_key = inv_ok[~inv_ok["key"].isin(inv_dupes)].drop_duplicates("key")
    inv_ids = set(inv["rid"])
    # Seen in this run, or failed in an earlier one (retried even when no longer in the window).
    window_free = crm_free[(crm_free["seen_run"] == run_id) | _in_pairs(crm_free, dead_keys, (CRM,))]
    window_free = window_free[~_in_pairs(window_free, matched_crm)]
    crm_key = window_free.merge(inv_by_key[identity].add_prefix("i_"), how="left", left_on="key", right_on="i_key")
    for row in crm_key.itertuples():
        crm_ref = (row.rtype, row.rid)
        itemize = full or _changed_since_last_listing(row)
        if not pd.isna(row.link) and row.link not in inv_ids:
            plan.settle("skipped", TO_INV, itemize=itemize, reason="linked_record_missing",
                        pair=pair_id(None, crm_ref), crm_type=row.rtype, crm_id=row.rid)  # fmt: skip
        elif row.key in crm_dupes or row.key in inv_dupes or not pd.isna(row.link):
            reason = "duplicate_tax_id" if schema.key_field == "tax_id" else "duplicate_sku"
            if not pd.isna(row.link):
                reason = "link_conflict"  # its link field names an invoicing record linked elsewhere
            plan.settle("quarantined", TO_INV, itemize=itemize, reason=reason,
                        pair=pair_id(None, crm_ref), crm_type=row.rtype, crm_id=row.rid)  # fmt: skip
        elif not pd.isna(row.i_rid):
            inv_ref = (row.i_rtype, row.i_rid)
            if inv_ref in linked_inv or inv_ref in matched_inv:
                plan.settle("quarantined", TO_INV, itemize=itemize, reason="duplicate_tax_id",
                            pair=pair_id(None, crm_ref), crm_type=row.rtype, crm_id=row.rid)  # fmt: skip
            # else: already paired in step 2 (same key, the invoicing side drove the match)
        else:
            plan.add(action="create", target=INV, direction=TO_INV, pair=pair_id(None, crm_ref),
                     crm_type=row.rtype, crm_id=row.rid, inv_type="", reason="no_match")  # fmt: skip

    if not dry_run:
        for inv_ref, crm_ref in new_pairs:
            ledger.save_link(inv_ref, crm_ref, base=None, inv_hash="", crm_hash="", run_id=run_id)
        if new_pairs:
            fresh = ledger.links_frame()
            ids = {(r.inv_type, r.inv_id): int(r.link_id) for r in fresh.itertuples()}
            evaluate.extend({"link_id": ids[i], "inv": i, "crm": c, "hashes": None} for i, c in new_pairs)
    else:
        evaluate.extend({"link_id": None, "inv": i, "crm": c, "hashes": None} for i, c in new_pairs)
    plan.counts["matched"] += len(new_pairs)

    _plan_pairs(ledger, schema, plan, evaluate, dead_keys)
    plan.flush()
    return plan


def _defer_missing_dependencies(
    ledger: Ledger,
    plan: PlanBuilder,
    items: list[dict[str, Any]],
    dependencies: Callable[[dict[str, Any], str], list[str]],
    *,
    run_id: str,
    dry_run: bool,
) -> None:
    """A document whose customer or products are not linked on the target side yet is not written
    (never created half): its outcome is ``deferred`` and it is retried first next run."""
    writes = [i for i in items if i["action"] in ("create", "update")]
    sources = {
        INV: ledger.remote_records(INV, [(i["inv_type"], i["inv_id"]) for i in writes if i.get("inv_id")], with_raw=False),
        CRM: ledger.remote_records(CRM, [(i["crm_type"], i["crm_id"]) for i in writes if i.get("crm_id")], with_raw=False),
    }
    for item in writes:
        if item["action"] == "update":
            data = item["merged"]
        elif item["target"] == CRM:
            data = sources[INV][(item["inv_type"], item["inv_id"])]["data"]
        else:
            data = sources[CRM][(item["crm_type"], item["crm_id"])]["data"]
        missing = dependencies(data, item["target"])
        if not missing:
            continue
        item.update(action="deferred", status="done", outcome="deferred", reason="dependency_missing",
                    detail=", ".join(missing)[:500])  # fmt: skip
        plan.counts[f"{item['direction']}|deferred|dependency_missing"] += 1
        if not dry_run and item.get("crm_id") and not item.get("inv_id"):
            # A Clientify document may leave the modified window before its customer is linked.
            with ledger.begin() as conn:
                ledger.record_dead_letter(conn, CRM, item["crm_type"], item["crm_id"], "dependency_missing",
                                          item["detail"], run_id)  # fmt: skip


def _plan_pairs(
    ledger: Ledger,
    schema: EntitySchema,
    plan: PlanBuilder,
    evaluate: list[dict[str, Any]],
    dead_keys: set[tuple[str, str, str]],
) -> None:
    """Three-way merge of every pair that may have changed; one update item per side to write."""
    for start in range(0, len(evaluate), PAIRS_PER_CHUNK):
        _plan_pair_chunk(ledger, schema, plan, evaluate[start : start + PAIRS_PER_CHUNK])


def _plan_pair_chunk(ledger: Ledger, schema: EntitySchema, plan: PlanBuilder, evaluate: list[dict[str, Any]]) -> None:
    inv_rows = ledger.remote_records(INV, [p["inv"] for p in evaluate], with_raw=False)
    crm_rows = ledger.remote_records(CRM, [p["crm"] for p in evaluate], with_raw=False)
    bases = ledger.link_bases([p["link_id"] for p in evaluate if p["link_id"] is not None])
    for pair in evaluate:
        inv_row, crm_row = inv_rows[pair["inv"]], crm_rows[pair["crm"]]
        base = bases.get(pair["link_id"]) if pair["link_id"] is not None else None
        result = merge_fields(schema.fields, base, inv_row["data"], crm_row["data"], schema.invoicing_wins)
        ids = {"inv_type": pair["inv"][0], "inv_id": pair["inv"][1], "crm_type": pair["crm"][0],
               "crm_id": pair["crm"][1], "pair": pair_id(pair["inv"], None), "merged": result.merged}  # fmt: skip
        reason = "conflict" if result.conflicts else ("first_match" if result.first_match else None)
        for conflict in [*result.conflicts, *result.first_match]:
            plan.conflict(first_match=base is None,
                          **{"inv_id": pair["inv"][1], "crm_type": pair["crm"][0], "crm_id": pair["crm"][1],
                                   "field": conflict.field, "invoicing_value": str(conflict.invoicing_value),
                                   "clientify_value": str(conflict.clientify_value),
                                   "base_value": None if conflict.base_value is None else str(conflict.base_value),
                                   "winner": conflict.winner.value})  # fmt: skip
        needs_crm_link = crm_row["link"] != pair["inv"][1]
        if result.to_clientify or needs_crm_link:
            plan.add(action="update", target=CRM, direction=TO_CRM, fields=sorted(result.to_clientify),
                     reason=reason or ("link" if not result.to_clientify else None), **ids)  # fmt: skip
        if result.to_invoicing:
            plan.add(action="update", target=INV, direction=TO_INV, fields=sorted(result.to_invoicing),
                     reason=reason, **ids)  # fmt: skip
        if not (result.to_clientify or needs_crm_link or result.to_invoicing):
            settled = pair["hashes"] == (inv_row["hash"], crm_row["hash"]) and base == result.merged
            if settled:
                plan.counts["unchanged"] += 1
            else:  # nothing to write, but the base and hashes move on (e.g. the same edit on both sides)
                plan.add(action="touch", direction=TO_CRM, reason=reason, **ids)


def _prioritise_dead_letters(items: list[dict[str, Any]], dead_keys: set[tuple[str, str, str]]) -> None:
    """Failed records of earlier runs are retried first (before new work can hit a limit)."""
    for item in items:
        dead = (INV, item.get("inv_type"), item.get("inv_id")) in dead_keys or (
            CRM, item.get("crm_type"), item.get("crm_id")
        ) in dead_keys
        item["priority"] = 0 if dead else 1
