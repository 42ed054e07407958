"""Delivery rules a test sets on ``/_sandbox/webhooks/rules``: drop, delay, duplicate and reorder.

Why: webhooks drop, arrive twice and arrive out of order on the real platforms (realtime.md §1.1 "no
order", "can arrive twice"; facturadirecta-rest-api.md §12 "assume duplicated deliveries"), and a
receiver must be tested against each. Rules are deterministic: each one's ``probability`` is drawn
from one ``random.Random(seed)`` per API, in the order events are emitted, so a seed replays the same
decisions. Rules apply to an event's first delivery (its retries follow the platform's rule).

A rule: ``{"action": "drop"|"delay"|"duplicate"|"reorder", "event": "contact.*", "probability": 1.0,
"count": null, "delay_s": 1.0, "copies": 1, "window": 2, "order": "reverse"|"shuffle", "hold_s": 10}``.
``event`` is a glob on the event type; ``count`` caps how many events the rule acts on.
"""

from __future__ import annotations

import fnmatch
import random
from dataclasses import dataclass, field
from typing import Any

ACTIONS = ("drop", "delay", "duplicate", "reorder")
ORDERS = ("reverse", "shuffle")
MAX_COPIES = 10
MAX_WINDOW = 100
MAX_DELAY_S = 300.0


class RuleError(ValueError):
    """A rule that cannot be used (unknown action or key, value out of range)."""


@dataclass
class Rule:
    action: str
    event: str = "*"
    probability: float = 1.0
    count: int | None = None
    delay_s: float = 1.0
    copies: int = 1
    window: int = 2
    order: str = "reverse"
    hold_s: float = 10.0
    applied: int = 0

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "action": self.action,
            "event": self.event,
            "probability": self.probability,
            "count": self.count,
            "applied": self.applied,
        }
        if self.action == "delay":
            out["delay_s"] = self.delay_s
        if self.action == "duplicate":
            out["copies"] = self.copies
        if self.action == "reorder":
            out.update(window=self.window, order=self.order, hold_s=self.hold_s)
        return out


def _number(raw: dict[str, Any], key: str, default: float, low: float, high: float) -> float:
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise RuleError(f"{key} must be a number between {low:g} and {high:g}")
    return float(value)


def _integer(raw: dict[str, Any], key: str, default: int, low: int, high: int) -> int:
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise RuleError(f"{key} must be an integer between {low} and {high}")
    return value


def parse_rule(raw: Any) -> Rule:
    if not isinstance(raw, dict):
        raise RuleError("a rule must be an object")
    known = {"action", "event", "probability", "count", "delay_s", "copies", "window", "order", "hold_s"}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise RuleError(f"unknown rule keys {unknown}; known: {sorted(known)}")
    action = raw.get("action")
    if action not in ACTIONS:
        raise RuleError(f"action must be one of {list(ACTIONS)}")
    event = raw.get("event", "*")
    if not isinstance(event, str) or not event:
        raise RuleError("event must be a glob such as 'contact.*'")
    order = raw.get("order", "reverse")
    if order not in ORDERS:
        raise RuleError(f"order must be one of {list(ORDERS)}")
    count = raw.get("count")
    if count is not None:
        count = _integer(raw, "count", 0, 0, 1_000_000)
    return Rule(
        action=action,
        event=event,
        probability=_number(raw, "probability", 1.0, 0.0, 1.0),
        count=count,
        delay_s=_number(raw, "delay_s", 1.0, 0.0, MAX_DELAY_S),
        copies=_integer(raw, "copies", 1, 1, MAX_COPIES),
        window=_integer(raw, "window", 2, 2, MAX_WINDOW),
        order=order,
        hold_s=_number(raw, "hold_s", 10.0, 0.0, MAX_DELAY_S),
    )


@dataclass
class Decision:
    """What the rules say about one event's first delivery."""

    drop: bool = False
    delay_s: float = 0.0
    copies: int = 0
    reorder: Rule | None = None
    applied: list[str] = field(default_factory=list)


class RuleSet:
    """One API's rules and its seeded random source (not thread-safe: the hub calls it under its lock)."""

    def __init__(self, rules: list[Rule] | None = None, seed: int = 0) -> None:
        self.rules = rules or []
        self.seed = seed
        self._random = random.Random(seed)

    @classmethod
    def parse(cls, payload: Any) -> RuleSet:
        """``{"seed": 7, "rules": [...]}`` or a bare list of rules (seed 0)."""
        if isinstance(payload, list):
            payload = {"rules": payload}
        if not isinstance(payload, dict) or set(payload) - {"seed", "rules"}:
            raise RuleError('the body must be {"seed": <int>, "rules": [...]}')
        seed = payload.get("seed", 0)
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise RuleError("seed must be an integer")
        rules = payload.get("rules", [])
        if not isinstance(rules, list):
            raise RuleError("rules must be a list")
        return cls([parse_rule(r) for r in rules], seed)

    def as_dict(self) -> dict[str, Any]:
        return {"seed": self.seed, "rules": [r.as_dict() for r in self.rules]}

    def decide(self, event: str) -> Decision:
        decision = Decision()
        for rule in self.rules:
            if not fnmatch.fnmatchcase(event, rule.event):
                continue
            if rule.count is not None and rule.applied >= rule.count:
                continue
            if rule.probability < 1.0 and self._random.random() >= rule.probability:
                continue
            if rule.action == "reorder" and decision.reorder is not None:
                continue
            rule.applied += 1
            decision.applied.append(rule.action)
            if rule.action == "drop":
                decision.drop = True
                return decision
            if rule.action == "delay":
                decision.delay_s += rule.delay_s
            elif rule.action == "duplicate":
                decision.copies += rule.copies
            else:
                decision.reorder = rule
        return decision

    def permutation(self, size: int, order: str) -> list[int]:
        """The release order of a held batch; a shuffle that came out unchanged is reversed."""
        indexes = list(range(size))
        if order == "shuffle":
            self._random.shuffle(indexes)
        if indexes == sorted(indexes):
            indexes.reverse()
        return indexes
