"""What a retrained trial checks beyond its weights and final metrics: its whole curve, its
best and, for the trial each group's sample comes from, the sample.

:mod:`reproduce.verification.retrain` decides whether the retrain ran on the recorded platform
(its ``retrain`` row: ``pass`` bit-identical, ``platform differs`` another or unknown
platform); these checks take that verdict as input. On the same platform everything but the
timings must be equal bit for bit; on another the curve and best are not compared bit for bit
(the tolerance of a cross-platform retrain is the ``retrain`` row's), and a differing sample is
named.
"""

from __future__ import annotations

import json
from pathlib import Path

from charlm.checkpoint import load_weights
from charlm.train import RECORD_FILE, WEIGHTS_FILE
from reproduce.verification.numbers import (
    compare_sample,
    curve_without_timings,
    regenerate,
    sample_option_problem,
)
from reproduce.verification.rows import FAIL, PASS, PLATFORM_DIFFERS, Row

__all__ = ["retrained_rows"]


def _first_difference(recorded: list[dict], retrained: list[dict]) -> str:
    if len(recorded) != len(retrained):
        return f"{len(recorded)} evaluations recorded, {len(retrained)} retrained"
    for old, new in zip(recorded, retrained, strict=True):
        if old != new:
            keys = sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k))
            return f"step {old.get('step')}: {', '.join(keys)} differ"
    return ""


def retrained_rows(data: dict, trial: dict, trial_dir: Path, retrain_verdict: str) -> list[Row]:
    """Rows comparing a trial retrained into ``trial_dir`` (its trial.json and weights) with
    its record in ``data``, given the ``retrain`` row's verdict (PASS: same platform)."""
    record = json.loads((trial_dir / RECORD_FILE).read_text(encoding="utf-8"))
    same = retrain_verdict == PASS
    rows = []
    recorded = curve_without_timings(trial["curves"])
    retrained = curve_without_timings(record["curves"])
    difference = _first_difference(recorded, retrained)
    subject = trial["id"]
    if not difference and trial["best"] == record["best"]:
        rows.append(Row("retrain curve", subject, PASS, "curve and best equal bit for bit"))
    elif same:
        detail = difference or f"best {trial['best']} recorded, {record['best']} retrained"
        rows.append(Row("retrain curve", subject, FAIL, f"same platform, but {detail}"))
    else:
        detail = f"not compared bit for bit on another platform ({difference or 'best differs'})"
        rows.append(Row("retrain curve", subject, PLATFORM_DIFFERS, detail))
    sample = data["samples"].get(trial["group"])
    lowest = min(t["seed"] for t in data["trials"] if t["group"] == trial["group"])
    if sample is not None and trial["seed"] == lowest:
        rows.append(_sample(trial, sample, trial_dir / WEIGHTS_FILE, same))
    return rows


def _sample(trial: dict, sample: dict, weights: Path, same: bool) -> Row:
    _, chars = load_weights(weights)
    problem = sample_option_problem(sample, chars)
    if problem:
        return Row("retrain sample", trial["group"], FAIL, f"cannot be regenerated: {problem}")
    text = regenerate(sample, weights)
    row = compare_sample(trial["group"], sample["text"], text, [] if same else ["another platform"])
    return Row("retrain sample", row.subject, row.verdict, row.detail + " (retrained weights)")
