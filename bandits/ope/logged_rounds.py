"""Logged bandit rounds from our decision logs or the Open Bandit Dataset, in one structure.

A round is what one decision left behind: the context the policy saw, the eligible actions, the action taken,
the probability the logging policy had of taking it (its propensity) and the reward that followed.

* **ours** — the worker's JSON Lines (``.gz`` allowed): decision records (``decision_id``, ``offer``,
  ``propensity``, ``propensities``, ``features``, ``scores``, maybe ``eligible``) and reward records
  (``decision_id``, ``reward``, ``purchased``), in one file or several. They are joined on ``decision_id``; a
  decision without a reward is left out and counted as *unresolved*. The context is ``features | scores`` without
  offer names and without non-numeric values; the reward is the logged profit.
* **obd** — a CSV of the Open Bandit Dataset (Saito et al. 2021): action ``item_id``, reward ``click``,
  propensity ``propensity_score``; every row is a round and every item of the campaign (``item_context.csv``)
  is eligible. The context one-hot encodes the four hashed user features and the position as keys
  ``user_feature_0.<hash>`` and ``position.<1-3>`` with value 1 (names a linear policy's context terms accept).
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeGuard

import numpy as np
import orjson

from bandits.errors import OpeError
from stream.core.jsonl import iter_lines


@dataclass(frozen=True, slots=True)
class LoggedRounds:
    """Rounds in log order: context, eligible actions, action, its logged propensity and the reward."""

    contexts: list[dict[str, float]]
    eligible: list[tuple[str, ...]]
    actions: list[str]
    propensities: np.ndarray
    rewards: np.ndarray
    source: str = ""
    unresolved: int = 0
    skipped: dict[str, int] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.actions)

    @property
    def action_set(self) -> tuple[str, ...]:
        """Every action eligible somewhere, in first-seen order."""
        seen: dict[str, None] = {}
        for offers in dict.fromkeys(self.eligible):  # most rounds share one tuple: dedupe before walking
            seen.update(dict.fromkeys(offers))
        return tuple(seen)

    def feature_names(self) -> tuple[str, ...]:
        """Every context key, sorted."""
        return tuple(sorted({k for c in self.contexts for k in c}))

    def context_matrix(self, names: Sequence[str]) -> np.ndarray:
        """Contexts as an ``n × len(names)`` float matrix; a missing key counts as 0."""
        col = {name: j for j, name in enumerate(names)}
        x = np.zeros((len(self), len(names)))
        for i, c in enumerate(self.contexts):
            for k, v in c.items():
                j = col.get(k)
                if j is not None:
                    x[i, j] = v
        return x


def _numeric(value: Any) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def decision_context(decision: Mapping[str, Any]) -> dict[str, float]:
    """``features | scores`` without offer names and non-numeric values.

    >>> decision_context({"features": {"cart_value": 3.0, "seen": None}, "scores": {"a": 0.2, "intent": 0.7},
    ...                   "propensities": {"a": 1.0}})
    {'cart_value': 3.0, 'intent': 0.7}
    """
    offers = set(decision.get("propensities") or ()) | set(decision.get("eligible") or ())
    merged = dict(decision.get("features") or {}) | dict(decision.get("scores") or {})
    return {k: float(v) for k, v in merged.items() if k not in offers and _numeric(v)}


def rounds_from_records(records: Iterable[Mapping[str, Any]], source: str = "") -> LoggedRounds:
    """Join decision and reward records on ``decision_id``; rounds follow the decisions' order.

    >>> recs = [{"decision_id": "d1", "offer": "a", "propensity": 0.5, "propensities": {"a": 0.5, "b": 0.5},
    ...          "features": {"x": 1.0}, "scores": {}},
    ...         {"decision_id": "d2", "offer": "b", "propensity": 0.5, "propensities": {"a": 0.5, "b": 0.5},
    ...          "features": {}, "scores": {}},
    ...         {"decision_id": "d1", "reward": 2.5, "purchased": True}]
    >>> r = rounds_from_records(recs)
    >>> r.actions, r.rewards.tolist(), r.unresolved, r.eligible[0]
    (['a'], [2.5], 1, ('a', 'b'))
    """
    decisions: dict[str, Mapping[str, Any]] = {}
    rewards: dict[str, float] = {}
    skipped: dict[str, int] = {}
    for rec in records:
        did = rec.get("decision_id")
        if not isinstance(did, str):
            skipped["no_decision_id"] = skipped.get("no_decision_id", 0) + 1
        elif "reward" in rec:
            rewards.setdefault(did, float(rec["reward"]))
        elif "propensities" in rec and "offer" in rec:
            decisions.setdefault(did, rec)
    contexts: list[dict[str, float]] = []
    eligible: list[tuple[str, ...]] = []
    actions: list[str] = []
    props: list[float] = []
    rews: list[float] = []
    unresolved = 0
    for did, d in decisions.items():
        if did not in rewards:
            unresolved += 1
            continue
        raw = d.get("propensity")
        p = float(raw) if _numeric(raw) else math.nan  # NaN fails the range check below
        if not 0.0 < p <= 1.0:
            skipped["bad_propensity"] = skipped.get("bad_propensity", 0) + 1
            continue
        contexts.append(decision_context(d))
        eligible.append(tuple(d.get("eligible") or d["propensities"]))
        actions.append(str(d["offer"]))
        props.append(p)
        rews.append(rewards[did])
    return LoggedRounds(
        contexts, eligible, actions, np.array(props), np.array(rews), source, unresolved=unresolved, skipped=skipped
    )


def read_ours(paths: Sequence[str | Path]) -> LoggedRounds:
    """Decision and reward records from JSON Lines files (gzip when named ``.gz``), joined."""

    def records() -> Iterable[Mapping[str, Any]]:
        for path in paths:
            if not Path(path).is_file():
                raise OpeError(f"log not found: {path}")
            for line in iter_lines(path):
                rec = orjson.loads(line)
                if isinstance(rec, dict):
                    yield rec

    rounds = rounds_from_records(records(), source=", ".join(str(p) for p in paths))
    if not len(rounds):
        raise OpeError(
            f"no resolved decisions in {rounds.source} ({rounds.unresolved} without a reward): give the decisions "
            "and the rewards files, e.g. --log decisions.jsonl --log rewards.jsonl"
        )
    return rounds


OBD_USER_FEATURES = ("user_feature_0", "user_feature_1", "user_feature_2", "user_feature_3")


def obd_items(item_context: str | Path) -> tuple[str, ...]:
    """The campaign's item ids, as strings in numeric order, from ``item_context.csv``."""
    with open(item_context, newline="") as fh:
        ids = {int(row["item_id"]) for row in csv.DictReader(fh)}
    return tuple(str(i) for i in sorted(ids))


def read_obd(path: str | Path, item_context: str | Path | None = None) -> LoggedRounds:
    """One Open Bandit Dataset CSV as rounds; every item of the campaign is eligible in every round."""
    path = Path(path)
    item_context = Path(item_context) if item_context is not None else path.with_name("item_context.csv")
    for p in (path, item_context):
        if not p.is_file():
            raise OpeError(f"Open Bandit Dataset file not found: {p}")
    items = obd_items(item_context)
    known = set(items)
    contexts: list[dict[str, float]] = []
    actions: list[str] = []
    props: list[float] = []
    rews: list[float] = []
    with open(path, newline="") as fh:
        for line, row in enumerate(csv.DictReader(fh), start=2):
            try:
                action, prop, click = str(int(row["item_id"])), float(row["propensity_score"]), float(row["click"])
            except (KeyError, TypeError, ValueError) as exc:
                raise OpeError(f"{path}:{line}: not an Open Bandit Dataset row ({exc})") from None
            if action not in known or not 0.0 < prop <= 1.0:
                raise OpeError(f"{path}:{line}: item {action} not in {item_context} or propensity {prop} not in (0, 1]")
            ctx = {f"{k}.{row[k]}": 1.0 for k in OBD_USER_FEATURES}
            ctx[f"position.{row['position']}"] = 1.0
            contexts.append(ctx)
            actions.append(action)
            props.append(prop)
            rews.append(click)
    return LoggedRounds(contexts, [items] * len(actions), actions, np.array(props), np.array(rews), source=str(path))
