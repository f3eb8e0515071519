"""Claims derived for a results.json that has none, with the values its ``statistics``
stored (the layout written by :func:`reproduce.stats.analyze_sweep`, read here as plain JSON).
"""

from __future__ import annotations

import itertools
import json
from typing import Any

from reproduce.audit.evaluate import metric_value
from reproduce.audit.values import number


def _dig(node: Any, *keys: Any) -> Any:
    """``node[k1][k2]...`` or None when a key is missing or a container has the wrong type."""
    for key in keys:
        if isinstance(node, dict) and key in node:
            node = node[key]
        else:
            return None
    return node


def _stored_decimals(value: Any) -> int | None:
    """Decimals of a stored number as Python writes it (``repr``): a value stored rounded
    (8.79) is compared at that rounding; a full-precision one (15+ digits) or one in exponent
    notation exactly (None)."""
    if isinstance(value, bool) or not isinstance(value, float):
        return None
    text = repr(value)
    if "e" in text or "." not in text:
        return None
    decimals = len(text.split(".")[1])
    return decimals if decimals < 10 else None


def _stored_cell(statistics: Any, grid: dict) -> dict | None:
    """The entry of ``statistics["cells"]`` (dict or list) whose ``grid`` equals ``grid`` (the
    layout written by reproduce.stats.analyze_sweep; read here as plain JSON)."""
    cells = _dig(statistics, "cells")
    if isinstance(cells, dict):
        entries = list(cells.values())
    else:
        entries = cells if isinstance(cells, list) else []
    found = [c for c in entries if isinstance(c, dict) and (c.get("grid") or {}) == grid]
    return found[0] if len(found) == 1 else None


class _Stored:
    """Stored values of one cell in results.json's ``statistics`` (the layout written by
    :func:`reproduce.stats.analyze_sweep`; read here as plain JSON). Missing values are None."""

    def __init__(self, statistics: Any, grid: dict):
        self.cell = _stored_cell(statistics, grid) if statistics else None

    def group_stat(self, activation: str, metric: str, stat: str) -> float | None:
        return number(_dig(self.cell, "activations", activation, metric, stat))

    def comparison(self, *keys: str) -> Any:
        return _dig(self.cell, "val_loss_comparison", *keys)

    def tukey(self, act_a: str, act_b: str) -> float | None:
        pairs = _dig(self.cell, "val_loss_comparison", "pairs")
        for pair in pairs if isinstance(pairs, list) else []:
            if isinstance(pair, dict) and {pair.get("a"), pair.get("b")} == {act_a, act_b}:
                return number(pair.get("tukey_p"))
        return None


def derive_claims(doc: dict) -> list[dict]:
    """Claims to check in a results.json that has none: per cell (trials with the same grid),
    each group's mean and SD of val_loss and val_accuracy, mean train_accuracy, mean train-val
    accuracy gap and mean wall time; across the cell's groups the val_loss ANOVA F and p
    (scipy.stats.f_oneway), Tukey HSD p per pair (scipy.stats.tukey_hsd), the spread (highest
    mean val_loss above the lowest, percent of the lowest), the best/worst group by mean val_loss
    and the least/most overfitting group.

    ``claimed`` comes from ``doc["statistics"]``: from its per-cell layout
    (``cells -> {grid, activations -> activation -> metric -> {mean, sd}, val_loss_comparison ->
    {anova -> {F, p}, pairs -> [{a, b, tukey_p}], spread_percent, best, worst}}``). Where
    nothing is stored, ``claimed`` is None and the row shows the recomputed value only. A stored
    number is compared at the rounding it was stored with (see :func:`_stored_decimals`).
    """
    trials = doc["trials"]
    statistics = doc.get("statistics")
    cells: dict[str, list[str]] = {}
    by_group: dict[str, list[dict]] = {}
    for trial in trials:
        key = json.dumps(trial.get("grid") or {}, sort_keys=True)
        if trial["group"] not in cells.setdefault(key, []):
            cells[key].append(trial["group"])
        by_group.setdefault(trial["group"], []).append(trial)
    activation = {g: ts[0]["activation"] for g, ts in by_group.items()}

    def has(metric: str, group: str) -> bool:
        return all(metric_value(t, metric) is not None for t in by_group[group])

    def stat(s: str, metric: str, group: Any) -> dict:
        node = {"kind": "stat", "stat": s, "metric": metric, "group": group}
        if s in ("sd", "var", "cv"):
            node["ddof"] = None
        return node

    claims: list[dict] = []

    def add(cid: str, about: str, check: dict, stored: Any) -> None:
        if isinstance(stored, str):
            claimed: Any = stored
        else:
            claimed = number(stored)
        claims.append(
            {
                "id": cid,
                "sections": ["statistics"],
                "printed": "",
                "about": about,
                "claimed": claimed,
                "decimals": _stored_decimals(claimed),
                "relation": "=",
                "check": check,
            }
        )

    metrics = (
        ("val_loss", "val-loss", ("mean", "sd")),
        ("val_accuracy", "val-acc", ("mean", "sd")),
        ("train_accuracy", "train-acc", ("mean",)),
        ("train_val_accuracy_gap", "train-val-gap", ("mean",)),
        ("wall_time_s", "wall-time", ("mean",)),
    )
    for key, groups in cells.items():
        grid = json.loads(key)
        store = _Stored(statistics, grid)
        prefix = ""
        if len(cells) > 1:
            prefix = "[" + ",".join(f"{k}={v}" for k, v in sorted(grid.items())) + "] "
        for g in groups:
            for metric, label, stats in metrics:
                if not has(metric, g):
                    continue
                for s in stats:
                    if s == "sd" and len(by_group[g]) < 2:
                        continue
                    add(
                        f"{g}-{s}-{label}",
                        f"{'mean' if s == 'mean' else 'SD'} of {metric} of {g}",
                        stat(s, metric, g),
                        store.group_stat(activation[g], metric, s),
                    )
        usable = [g for g in groups if has("val_loss", g) and len(by_group[g]) >= 2]
        if len(usable) < 2:
            continue
        for value in ("F", "p"):
            add(
                f"{prefix}anova-{value.lower()}-val-loss",
                f"one-way ANOVA {value} of val_loss",
                {"kind": "anova", "metric": "val_loss", "groups": usable, "value": value},
                store.comparison("anova", value),
            )
        for a, b in itertools.combinations(usable, 2):
            add(
                f"{prefix}tukey-{a}-{b}-val-loss",
                f"Tukey HSD p of val_loss, {a} vs {b}",
                {"kind": "tukey", "metric": "val_loss", "groups": usable, "pair": [a, b]},
                store.tukey(activation[a], activation[b]),
            )
        means = [stat("mean", "val_loss", g) for g in usable]
        add(
            f"{prefix}spread-val-loss-pct",
            "highest mean val_loss above the lowest, percent of the lowest",
            {
                "kind": "expr",
                "op": "pct_change",
                "a": {"kind": "of_values", "stat": "max", "values": means},
                "b": {"kind": "of_values", "stat": "min", "values": means},
            },
            store.comparison("spread_percent"),
        )
        group_of = {activation[g]: g for g in usable}
        for pick, word in (("min", "best"), ("max", "worst")):
            stored = store.comparison(word)
            add(
                f"{prefix}{word}-val-loss",
                f"{word} group by mean val_loss",
                {
                    "kind": "rank",
                    "pick": pick,
                    "stat": "mean",
                    "metric": "val_loss",
                    "groups": usable,
                },
                group_of.get(stored) if isinstance(stored, str) else None,
            )
        if all(has("train_val_accuracy_gap", g) for g in usable):
            for pick, word in (("min", "least"), ("max", "most")):
                add(
                    f"{prefix}{word}-overfitting",
                    f"{word} overfitting group (train-val gap)",
                    {
                        "kind": "rank",
                        "pick": pick,
                        "stat": "mean",
                        "metric": "train_val_accuracy_gap",
                        "groups": usable,
                    },
                    None,
                )
    return claims
