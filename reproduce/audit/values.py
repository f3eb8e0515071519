"""Values of the audit: verdict names, statistics, the rounding rules and formatting.

Where a report leaves the SD/variance kind open, a value is computed both ways
(:class:`ByDdof`); :func:`lift` carries both through arithmetic. Formulas: means and SDs with
numpy (``np.mean``, ``np.std(ddof=...)``, ``np.var``); percent differences
``pct_change = 100 (a - b) / b`` and ``pct_less = 100 (b - a) / b``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

CONSISTENT = "consistent"
INCONSISTENT = "inconsistent"
NOT_CHECKABLE = "not checkable"
RECOMPUTED_ONLY = "recomputed only"

DDOF_NAME = {0: "population (ddof=0)", 1: "sample (ddof=1)"}


@dataclass(frozen=True)
class ByDdof:
    """A value computed both ways when the report leaves the SD/variance kind open."""

    pop: Any  # ddof=0
    sample: Any  # ddof=1

    def get(self, ddof: int) -> Any:
        return self.pop if ddof == 0 else self.sample


class CannotCompute(Exception):
    """The data cannot give this value (too few trials, zero division, NaN, missing metric)."""


def lift(fn: Callable[..., Any], *args: Any) -> Any:
    """Apply ``fn`` to ``args``; where an argument is a :class:`ByDdof`, apply it per ddof."""
    if not any(isinstance(a, ByDdof) for a in args):
        return fn(*args)
    pop = fn(*(a.pop if isinstance(a, ByDdof) else a for a in args))
    sample = fn(*(a.sample if isinstance(a, ByDdof) else a for a in args))
    if isinstance(pop, str) and pop == sample:
        return pop
    return ByDdof(pop, sample)


def finite(value: Any) -> float:
    value = float(value)
    if not math.isfinite(value):
        raise CannotCompute("the result is not a finite number")
    return value


def statistic(stat: str, values: np.ndarray, ddof: int | None) -> Any:
    """One statistic of ``values`` (numpy; cv = 100 * sd / mean, percent)."""
    if ddof is None and stat in ("sd", "var", "cv"):
        return ByDdof(statistic(stat, values, 0), statistic(stat, values, 1))
    if values.size == 0:
        raise CannotCompute("no values")
    if stat in ("sd", "var", "cv") and values.size <= (ddof or 0):
        raise CannotCompute(f"{stat} with ddof={ddof} needs more than {ddof} values")
    with np.errstate(all="ignore"):
        if stat == "mean":
            return finite(np.mean(values))
        if stat == "sd":
            return finite(np.std(values, ddof=ddof))
        if stat == "var":
            return finite(np.var(values, ddof=ddof))
        if stat == "cv":
            mean = np.mean(values)
            if mean == 0:
                raise CannotCompute("cv of values with mean 0")
            return finite(100.0 * np.std(values, ddof=ddof) / mean)
        if stat == "sum":
            return finite(np.sum(values))
        if stat == "min":
            return finite(np.min(values))
        if stat == "max":
            return finite(np.max(values))
    raise ValueError(f"unknown statistic {stat!r}")


def expression(op: str, a: float, b: float) -> float:
    if b == 0:
        raise CannotCompute(f"{op} with a zero base")
    if op == "diff":
        return a - b
    if op == "ratio":
        return a / b
    if op == "pct_change":
        return 100.0 * (a - b) / b
    if op == "pct_less":
        return 100.0 * (b - a) / b
    raise ValueError(f"unknown operation {op!r}")


def pick_group(pick: str | None, position_of: str | None, names: list[str], *vals: float) -> Any:
    if position_of is not None:
        mine = vals[names.index(position_of)]
        return 1 + sum(1 for v in vals if v < mine)
    best = min(vals) if pick == "min" else max(vals)
    return "=".join(n for n, v in zip(names, vals, strict=True) if v == best)


def truncated(value: Any, claimed: Any, decimals: int | None, relation: str) -> bool:
    if relation != "=" or decimals is None or isinstance(value, (str, ByDdof)):
        return False
    if isinstance(claimed, str):
        return False
    scale = 10.0**decimals
    return abs(math.trunc(float(value) * scale) / scale - float(claimed)) < 1e-9


def matching(value: Any, claimed: Any, decimals: int | None, relation: str) -> list[int]:
    """The ddofs (0, 1) under which ``value`` agrees with ``claimed``; [0] (or [0, 1]) for a
    value that does not depend on ddof and agrees; [] when it does not agree."""
    if isinstance(value, ByDdof):
        return [d for d in (0, 1) if agrees(value.get(d), claimed, decimals, relation)]
    return [0] if agrees(value, claimed, decimals, relation) else []


def agrees(value: Any, claimed: Any, decimals: int | None, relation: str) -> bool:
    if isinstance(value, str) or isinstance(claimed, str):
        return str(value).casefold() == str(claimed).casefold()
    value, claimed = float(value), float(claimed)
    if relation == "<":
        return value < claimed
    if relation == ">":
        return value > claimed
    if relation == ">=":
        return value >= claimed
    if decimals is None:
        tolerance = 1e-9 * max(1.0, abs(claimed))
    else:
        tolerance = 0.5 * 10.0 ** (-decimals) * (1 + 1e-9) + 1e-12
    if relation == "<=":
        return value <= claimed + tolerance
    return abs(value - claimed) <= tolerance


def fmt(value: Any, decimals: int | None, extra: int = 1) -> str:
    """Display a value with one decimal more than the claim prints (6 significant digits if
    the claim has no rounding)."""
    if value is None:
        return "-"
    if isinstance(value, ByDdof):
        pop, sample = fmt(value.pop, decimals, extra), fmt(value.sample, decimals, extra)
        return f"{pop} (ddof=0) / {sample} (ddof=1)"
    if isinstance(value, str):
        return value
    if isinstance(value, int):
        return str(value)
    if decimals is None:
        return f"{value:.6g}"
    return f"{value:.{decimals + extra}f}"


def plain(value: Any) -> Any:
    if isinstance(value, ByDdof):
        return {"0": plain(value.pop), "1": plain(value.sample)}
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    return value


def number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None
