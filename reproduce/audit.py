"""``python -m reproduce audit FILE``: recompute a report's claims from its own per-trial data.

FILE is either

* a reference file (``artifacts/reference/*.json``, schema ``reference.schema.json``): a published
  report's trials plus its summary claims, each claim saying how to recompute it (``check``); or
* a ``results.json`` of ours (trials as in ``trial.schema.json``, no ``claims``): the audit then
  derives the usual claims (means, SDs, ANOVA F/p, Tukey p, spread %, train-val gaps, rankings)
  per cell, takes the claimed values from the file's stored ``statistics`` and otherwise just
  prints the recomputed values.

Each claim gets one row: claimed value, recomputed value, verdict:

* ``consistent``: the recomputed value equals the claimed one at the claim's printed rounding
  (|recomputed - claimed| <= half a unit in the last printed decimal), or satisfies the claimed
  bound (``p < 0.05``). Where the report leaves the kind of SD/variance open, both the sample
  (ddof=1) and population (ddof=0) values are tried and the note says which one matches. A
  derived figure (a difference, a percentage) also counts as consistent when it follows from the
  report's printed, rounded inputs and those inputs are themselves consistent (double rounding);
  the note says so.
* ``inconsistent``: it does not follow from the per-trial data.
* ``not checkable``: nothing behind it in the data (e.g. prediction-difference values,
  partial-scale or NanoTransformer figures, GPU utilisation).
* ``recomputed only`` (results.json without a stored value): the recomputed value alone.

Column "from": ``trials`` (recomputed from per-trial data) or ``printed`` (arithmetic on the
report's own printed figures only, because no data lies behind them).

Formulas: means and SDs with numpy (``np.mean``, ``np.std(ddof=...)``, ``np.var``); one-way ANOVA
with ``scipy.stats.f_oneway``; F p-values with ``scipy.stats.f.sf``; Tukey HSD with
``scipy.stats.tukey_hsd``. Percent differences: ``pct_change = 100 (a - b) / b``,
``pct_less = 100 (b - a) / b``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import textwrap
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import scipy.stats
from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match

from reproduce import terminal
from reproduce.results import schema_registry

__all__ = [
    "CONSISTENT",
    "INCONSISTENT",
    "NOT_CHECKABLE",
    "RECOMPUTED_ONLY",
    "REFERENCE_SCHEMA_ID",
    "TRIAL_SCHEMA_ID",
    "audit_document",
    "audit_file",
    "derive_claims",
    "format_table",
    "load_document",
    "register",
    "validate_reference",
    "validate_trials",
]

TRIAL_SCHEMA_ID = "https://charlm-repro.example/schemas/trial.schema.json"
REFERENCE_SCHEMA_ID = "https://charlm-repro.example/schemas/reference.schema.json"

CONSISTENT = "consistent"
INCONSISTENT = "inconsistent"
NOT_CHECKABLE = "not checkable"
RECOMPUTED_ONLY = "recomputed only"

_DDOF_NAME = {0: "population (ddof=0)", 1: "sample (ddof=1)"}
_FINAL_METRICS = ("val_loss", "train_loss", "val_accuracy", "train_accuracy")


# --------------------------------------------------------------------------------------------
# schemas
# --------------------------------------------------------------------------------------------


def _validator(schema_id: str) -> Draft202012Validator:
    registry = schema_registry()
    schema = registry.contents(schema_id)
    return Draft202012Validator(
        schema, registry=registry, format_checker=Draft202012Validator.FORMAT_CHECKER
    )


def _one_line(error: Any, what: str) -> str:
    where = "/".join(str(p) for p in error.absolute_path) or "(top level)"
    message = " ".join(str(error.message).split())
    if len(message) > 200:
        message = message[:197] + "..."
    return f"{what} is invalid at {where}: {message}"


def validate_reference(doc: Any, what: str = "reference file") -> None:
    """Validate ``doc`` against ``reference.schema.json`` (which $refs ``trial.schema.json``).

    Also checks what a schema cannot: unique trial and claim ids, claim references and groups
    that exist, and no cycles between claims.

    Raises:
        ValueError: one line naming the first problem and where it is.
    """
    error = best_match(_validator(REFERENCE_SCHEMA_ID).iter_errors(doc))
    if error is not None:
        raise ValueError(_one_line(error, what))
    _check_ids(doc["trials"], "trial", what)
    _check_ids(doc["claims"], "claim", what)
    claims = {c["id"]: c for c in doc["claims"]}
    groups = {t["group"] for t in doc["trials"]}
    for claim in doc["claims"]:
        for ref in _claim_refs(claim["check"]):
            if ref not in claims:
                raise ValueError(f"{what}: claim {claim['id']} refers to unknown claim {ref!r}")
        for group in _group_names(claim["check"]):
            if group not in groups:
                raise ValueError(
                    f"{what}: claim {claim['id']} refers to group {group!r}, which has no "
                    f"trials (groups: {', '.join(sorted(groups))})"
                )
    _check_cycles(claims, what)


def validate_trials(doc: Any, what: str = "results file") -> None:
    """Validate a results-like document: an object with a non-empty ``trials`` list whose
    entries match ``trial.schema.json#/$defs/trial``; trial ids must be unique.

    Raises:
        ValueError: one line naming the first problem and where it is.
    """
    if not isinstance(doc, dict) or not isinstance(doc.get("trials"), list) or not doc["trials"]:
        raise ValueError(
            f"{what} has no 'trials' list (expected a results.json or a reference file)"
        )
    validator = _validator(TRIAL_SCHEMA_ID)
    for i, trial in enumerate(doc["trials"]):
        error = best_match(validator.iter_errors(trial))
        if error is not None:
            error.path.extendleft(["trials", i][::-1])
            raise ValueError(_one_line(error, what))
    _check_ids(doc["trials"], "trial", what)


def _check_ids(items: list[dict], kind: str, what: str) -> None:
    seen: set[str] = set()
    for item in items:
        if item["id"] in seen:
            raise ValueError(f"{what}: duplicate {kind} id {item['id']!r}")
        seen.add(item["id"])


def _walk_checks(node: Any) -> Iterable[dict]:
    """Every check/operand object inside ``node`` (depth first)."""
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _walk_checks(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk_checks(value)


def _claim_refs(check: dict) -> list[str]:
    return [n["claim"] for n in _walk_checks(check) if set(n) == {"claim"}]


def _group_names(check: dict) -> list[str]:
    names: list[str] = []
    for node in _walk_checks(check):
        if "kind" not in node:
            continue
        for key in ("group", "groups"):
            value = node.get(key)
            if isinstance(value, str):
                names.append(value)
            elif isinstance(value, list):
                names.extend(value)
        if node["kind"] == "tukey":
            names.extend(node["pair"])
        if node["kind"] == "rank" and "position_of" in node and "values" not in node:
            names.append(node["position_of"])
    return names


def _check_cycles(claims: dict[str, dict], what: str) -> None:
    state: dict[str, int] = {}  # 1 = visiting, 2 = done

    def visit(cid: str, path: list[str]) -> None:
        if state.get(cid) == 2:
            return
        if state.get(cid) == 1:
            raise ValueError(f"{what}: claims refer to each other in a cycle: {' -> '.join(path)}")
        state[cid] = 1
        for ref in _claim_refs(claims[cid]["check"]):
            visit(ref, [*path, ref])
        state[cid] = 2

    for cid in claims:
        visit(cid, [cid])


# --------------------------------------------------------------------------------------------
# values that depend on an unstated ddof
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _ByDdof:
    """A value computed both ways when the report leaves the SD/variance kind open."""

    pop: Any  # ddof=0
    sample: Any  # ddof=1

    def get(self, ddof: int) -> Any:
        return self.pop if ddof == 0 else self.sample


class _CannotCompute(Exception):
    """The data cannot give this value (too few trials, zero division, NaN, missing metric)."""


def _lift(fn: Callable[..., Any], *args: Any) -> Any:
    """Apply ``fn`` to ``args``; where an argument is a :class:`_ByDdof`, apply it per ddof."""
    if not any(isinstance(a, _ByDdof) for a in args):
        return fn(*args)
    pop = fn(*(a.pop if isinstance(a, _ByDdof) else a for a in args))
    sample = fn(*(a.sample if isinstance(a, _ByDdof) else a for a in args))
    if isinstance(pop, str) and pop == sample:
        return pop
    return _ByDdof(pop, sample)


def _finite(value: Any) -> float:
    value = float(value)
    if not math.isfinite(value):
        raise _CannotCompute("the result is not a finite number")
    return value


def _stat(stat: str, values: np.ndarray, ddof: int | None) -> Any:
    """One statistic of ``values`` (numpy; cv = 100 * sd / mean, percent)."""
    if ddof is None and stat in ("sd", "var", "cv"):
        return _ByDdof(_stat(stat, values, 0), _stat(stat, values, 1))
    if values.size == 0:
        raise _CannotCompute("no values")
    if stat in ("sd", "var", "cv") and values.size <= (ddof or 0):
        raise _CannotCompute(f"{stat} with ddof={ddof} needs more than {ddof} values")
    with np.errstate(all="ignore"):
        if stat == "mean":
            return _finite(np.mean(values))
        if stat == "sd":
            return _finite(np.std(values, ddof=ddof))
        if stat == "var":
            return _finite(np.var(values, ddof=ddof))
        if stat == "cv":
            mean = np.mean(values)
            if mean == 0:
                raise _CannotCompute("cv of values with mean 0")
            return _finite(100.0 * np.std(values, ddof=ddof) / mean)
        if stat == "sum":
            return _finite(np.sum(values))
        if stat == "min":
            return _finite(np.min(values))
        if stat == "max":
            return _finite(np.max(values))
    raise ValueError(f"unknown statistic {stat!r}")


def _expr(op: str, a: float, b: float) -> float:
    if b == 0:
        raise _CannotCompute(f"{op} with a zero base")
    if op == "diff":
        return a - b
    if op == "ratio":
        return a / b
    if op == "pct_change":
        return 100.0 * (a - b) / b
    if op == "pct_less":
        return 100.0 * (b - a) / b
    raise ValueError(f"unknown operation {op!r}")


def _pick(pick: str | None, position_of: str | None, names: list[str], *vals: float) -> Any:
    if position_of is not None:
        mine = vals[names.index(position_of)]
        return 1 + sum(1 for v in vals if v < mine)
    best = min(vals) if pick == "min" else max(vals)
    return "=".join(n for n, v in zip(names, vals, strict=True) if v == best)


# --------------------------------------------------------------------------------------------
# evaluation
# --------------------------------------------------------------------------------------------


@dataclass
class _Trace:
    """What an evaluation touched: per-trial data, and which other claims."""

    uses_trials: bool = False
    refs: list[str] = field(default_factory=list)


@dataclass
class _Outcome:
    data: Any = None  # recomputed value (float, int, str, _ByDdof) or None
    printed: Any = None  # the same from the report's printed inputs, where it has claim inputs
    verdict: str = NOT_CHECKABLE
    basis: str = "-"
    note: str = ""
    matched_ddof: int | None = None


def _metric_value(trial: dict, metric: str) -> Any:
    final = trial.get("final") or {}
    if metric in _FINAL_METRICS:
        return final.get(metric)
    if metric == "train_val_accuracy_gap":
        if final.get("train_accuracy") is None or final.get("val_accuracy") is None:
            return None
        return final["train_accuracy"] - final["val_accuracy"]
    if metric in ("best_val_loss", "best_step"):
        return (trial.get("best") or {}).get(metric.removeprefix("best_"))
    return trial.get(metric)


class _Auditor:
    """Evaluates claim checks against trials (see the module docstring for the rules)."""

    def __init__(self, trials: list[dict], claims: list[dict]):
        self.groups: dict[str, list[dict]] = {}
        for trial in trials:
            self.groups.setdefault(trial["group"], []).append(trial)
        self.claims = {c["id"]: c for c in claims}
        self.order = [c["id"] for c in claims]
        self._memo: dict[str, _Outcome] = {}

    # data access
    def _group_list(self, spec: Any) -> list[str]:
        if spec is None:
            return list(self.groups)
        return [spec] if isinstance(spec, str) else list(spec)

    def values(self, metric: str, groups: Any) -> np.ndarray:
        out = []
        for name in self._group_list(groups):
            if name not in self.groups:
                raise _CannotCompute(f"no trials in group {name!r}")
            for trial in self.groups[name]:
                value = _metric_value(trial, metric)
                if value is None:
                    raise _CannotCompute(f"trial {trial['id']} has no {metric}")
                out.append(float(value))
        return np.asarray(out, dtype=float)

    def samples(self, metric: str, groups: Any) -> list[np.ndarray]:
        return [self.values(metric, g) for g in self._group_list(groups)]

    # evaluation of operands and checks
    def eval(self, node: Any, mode: str, trace: _Trace) -> Any:
        if isinstance(node, bool):
            raise ValueError("a check operand cannot be a boolean")
        if isinstance(node, (int, float)):
            return float(node)
        if set(node) == {"claim"}:
            return self._eval_ref(node["claim"], mode, trace)
        kind = node["kind"]
        if kind == "stat":
            trace.uses_trials = True
            return _stat(node["stat"], self.values(node["metric"], node["group"]), node.get("ddof"))
        if kind == "of_values":
            vals = [self.eval(v, mode, trace) for v in node["values"]]
            ddof = node.get("ddof")
            return _lift(lambda *v: _stat(node["stat"], np.asarray(v, dtype=float), ddof), *vals)
        if kind == "expr":
            a = self.eval(node["a"], mode, trace)
            b = self.eval(node["b"], mode, trace)
            return _lift(lambda x, y: _expr(node["op"], x, y), a, b)
        if kind == "rank":
            return self._eval_rank(node, mode, trace)
        if kind == "anova":
            trace.uses_trials = True
            samples = self.samples(node["metric"], node["groups"])
            self._need_replicates(samples, "ANOVA")
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                result = scipy.stats.f_oneway(*samples)
            return _finite(result.statistic if node["value"] == "F" else result.pvalue)
        if kind == "f_sf":
            f_value = self.eval(node["f"], mode, trace)
            trace.uses_trials = True
            samples = self.samples(node["metric"], node["groups"])
            self._need_replicates(samples, "an F test")
            dfn, dfd = len(samples) - 1, sum(s.size for s in samples) - len(samples)
            return _lift(lambda f: _finite(scipy.stats.f.sf(f, dfn, dfd)), f_value)
        if kind == "tukey":
            trace.uses_trials = True
            names = self._group_list(node["groups"])
            samples = self.samples(node["metric"], names)
            self._need_replicates(samples, "Tukey HSD")
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                result = scipy.stats.tukey_hsd(*samples)
            a, b = (names.index(g) for g in node["pair"])
            return _finite(result.pvalue[a, b])
        if kind == "none":
            raise _CannotCompute(node["reason"])
        raise ValueError(f"unknown check kind {kind!r}")

    @staticmethod
    def _need_replicates(samples: list[np.ndarray], what: str) -> None:
        if len(samples) < 2 or any(s.size < 2 for s in samples):
            raise _CannotCompute(f"{what} needs at least 2 groups with at least 2 trials each")

    def _eval_ref(self, cid: str, mode: str, trace: _Trace) -> Any:
        trace.refs.append(cid)
        claim = self.claims[cid]
        if mode == "printed" or claim["check"]["kind"] == "none":
            if claim.get("claimed") is None:
                raise _CannotCompute(f"claim {cid} has no claimed value")
            return claim["claimed"]
        outcome = self.outcome(cid)
        if outcome.basis == "trials":
            trace.uses_trials = True
        if outcome.data is None:
            raise _CannotCompute(f"claim {cid} cannot be recomputed")
        # both ddofs travel on, so that values derived from several SDs compare like with like
        return outcome.data

    def _eval_rank(self, node: dict, mode: str, trace: _Trace) -> Any:
        if "values" in node:
            names = list(node["values"])
            vals = [self.eval(v, mode, trace) for v in node["values"].values()]
        else:
            trace.uses_trials = True
            names = self._group_list(node.get("groups"))
            vals = [
                _stat(node["stat"], self.values(node["metric"], g), node.get("ddof", 1))
                for g in names
            ]
        position_of = node.get("position_of")
        if position_of is not None and position_of not in names:
            raise _CannotCompute(f"{position_of!r} is not among the ranked groups")
        return _lift(lambda *v: _pick(node.get("pick"), position_of, names, *v), *vals)

    # verdicts
    def outcome(self, cid: str) -> _Outcome:
        if cid not in self._memo:
            self._memo[cid] = self._judge(self.claims[cid])
        return self._memo[cid]

    def _judge(self, claim: dict) -> _Outcome:
        check = claim["check"]
        if check["kind"] == "none":
            return _Outcome(verdict=NOT_CHECKABLE, note=check["reason"])
        trace = _Trace()
        try:
            data = self.eval(check, "data", trace)
        except _CannotCompute as exc:
            return _Outcome(verdict=NOT_CHECKABLE, note=f"cannot recompute: {exc}")
        out = _Outcome(data=data, basis="trials" if trace.uses_trials else "printed")
        claimed = claim.get("claimed")
        if claimed is None:
            out.verdict = RECOMPUTED_ONLY
            if isinstance(data, _ByDdof):
                out.note = "no stored value to compare"
            return out
        decimals, relation = claim.get("decimals"), claim.get("relation", "=")
        matches = _matching(data, claimed, decimals, relation)
        notes = []
        if out.basis == "printed":
            notes.append("arithmetic on the report's printed figures only")
        if matches:
            out.verdict = CONSISTENT
            if isinstance(data, _ByDdof):
                if len(matches) == 1:
                    out.matched_ddof = matches[0]
                    other = 1 - matches[0]
                    notes.insert(
                        0,
                        f"matches the {_DDOF_NAME[matches[0]]} value, not the "
                        f"{_DDOF_NAME[other]} one, "
                        f"{_fmt(data.get(other), decimals)}",
                    )
                else:
                    notes.insert(0, "matches both the sample and the population value")
            out.note = "; ".join(notes)
            return out
        out.verdict = INCONSISTENT
        if isinstance(data, _ByDdof):
            notes.insert(0, "matches neither the sample (ddof=1) nor the population (ddof=0) value")
        refs = list(dict.fromkeys(trace.refs))
        printed = self._try_printed(claim) if refs else None
        if printed is not None and _fmt(printed, decimals) != _fmt(data, decimals):
            out.printed = printed
            bad = [r for r in refs if self.outcome(r).verdict == INCONSISTENT]
            if not _matching(printed, claimed, decimals, relation):
                notes.append(
                    f"from the printed inputs ({self._inputs(refs)}): {_fmt(printed, decimals)}"
                )
            elif bad:
                notes.append(
                    f"follows from the printed inputs ({self._inputs(refs)}), but "
                    f"{', '.join(bad)} does not follow from the trials"
                )
            else:  # a double-rounding artefact: the printed inputs are right
                out.verdict = CONSISTENT
                out.note = (
                    f"only via the printed, rounded inputs ({self._inputs(refs)}); "
                    f"unrounded {_fmt(data, decimals)}"
                )
                return out
        if check["kind"] == "expr" and check["op"] in ("pct_change", "pct_less"):
            notes.extend(self._other_base(claim, data))
        if _truncated(data, claimed, decimals, relation):
            notes.append(f"equals the value truncated (not rounded) to {decimals} decimals")
        out.note = "; ".join(notes)
        return out

    def _try_printed(self, claim: dict) -> Any:
        try:
            return self.eval(claim["check"], "printed", _Trace())
        except _CannotCompute:
            return None

    def _inputs(self, refs: list[str]) -> str:
        return ", ".join(
            f"{r}={_fmt(self.claims[r]['claimed'], self.claims[r].get('decimals'), extra=0)}"
            for r in refs
        )

    def _other_base(self, claim: dict, data: Any) -> list[str]:
        """The percentage with the other operand as base (100 (a - b) / a for pct_change), when
        it matches the claim or lies near the recomputed one (so that both can be judged)."""
        check, decimals = claim["check"], claim.get("decimals")
        try:
            a = self.eval(check["a"], "data", _Trace())
            b = self.eval(check["b"], "data", _Trace())
            if check["op"] == "pct_change":
                alt = _lift(lambda x, y: _expr("pct_less", y, x), a, b)
            else:
                alt = _lift(lambda x, y: _expr("pct_change", y, x), a, b)
        except _CannotCompute:
            return []
        if isinstance(alt, _ByDdof) or isinstance(data, _ByDdof):
            return []
        if _agrees(alt, claim["claimed"], decimals, claim.get("relation", "=")):
            return [
                f"matches with the other base (percent of the other value): {_fmt(alt, decimals)}"
            ]
        if abs(alt - data) <= 0.2 * abs(data):
            return [f"with the other base: {_fmt(alt, decimals)}"]
        return []


def _truncated(value: Any, claimed: Any, decimals: int | None, relation: str) -> bool:
    if relation != "=" or decimals is None or isinstance(value, (str, _ByDdof)):
        return False
    if isinstance(claimed, str):
        return False
    scale = 10.0**decimals
    return abs(math.trunc(float(value) * scale) / scale - float(claimed)) < 1e-9


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, _ByDdof) or isinstance(b, _ByDdof):
        return a == b
    if isinstance(a, str) or isinstance(b, str):
        return a == b
    return math.isclose(float(a), float(b), rel_tol=1e-12, abs_tol=1e-15)


def _matching(value: Any, claimed: Any, decimals: int | None, relation: str) -> list[int]:
    """The ddofs (0, 1) under which ``value`` agrees with ``claimed``; [0] (or [0, 1]) for a
    value that does not depend on ddof and agrees; [] when it does not agree."""
    if isinstance(value, _ByDdof):
        return [d for d in (0, 1) if _agrees(value.get(d), claimed, decimals, relation)]
    return [0] if _agrees(value, claimed, decimals, relation) else []


def _agrees(value: Any, claimed: Any, decimals: int | None, relation: str) -> bool:
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


def _fmt(value: Any, decimals: int | None, extra: int = 1) -> str:
    """Display a value with one decimal more than the claim prints (6 significant digits if
    the claim has no rounding)."""
    if value is None:
        return "-"
    if isinstance(value, _ByDdof):
        pop, sample = _fmt(value.pop, decimals, extra), _fmt(value.sample, decimals, extra)
        return f"{pop} (ddof=0) / {sample} (ddof=1)"
    if isinstance(value, str):
        return value
    if isinstance(value, int):
        return str(value)
    if decimals is None:
        return f"{value:.6g}"
    return f"{value:.{decimals + extra}f}"


def _plain(value: Any) -> Any:
    if isinstance(value, _ByDdof):
        return {"0": _plain(value.pop), "1": _plain(value.sample)}
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    return value


# --------------------------------------------------------------------------------------------
# claims derived for a results.json
# --------------------------------------------------------------------------------------------


def _dig(node: Any, *keys: Any) -> Any:
    """``node[k1][k2]...`` or None when a key is missing or a container has the wrong type."""
    for key in keys:
        if isinstance(node, dict) and key in node:
            node = node[key]
        else:
            return None
    return node


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


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
        return _number(_dig(self.cell, "activations", activation, metric, stat))

    def comparison(self, *keys: str) -> Any:
        return _dig(self.cell, "val_loss_comparison", *keys)

    def tukey(self, act_a: str, act_b: str) -> float | None:
        pairs = _dig(self.cell, "val_loss_comparison", "pairs")
        for pair in pairs if isinstance(pairs, list) else []:
            if isinstance(pair, dict) and {pair.get("a"), pair.get("b")} == {act_a, act_b}:
                return _number(pair.get("tukey_p"))
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
        return all(_metric_value(t, metric) is not None for t in by_group[group])

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
            claimed = _number(stored)
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


# --------------------------------------------------------------------------------------------
# entry points
# --------------------------------------------------------------------------------------------


def load_document(path: str | Path) -> dict:
    """Read and validate FILE: a reference file (has ``claims``) against
    ``reference.schema.json``, otherwise a results.json's trials against ``trial.schema.json``.

    Raises:
        FileNotFoundError: FILE does not exist.
        ValueError: FILE is unreadable, not JSON, or invalid (one line saying where).
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file (give a results.json or a reference file)")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: cannot be read ({type(exc).__name__}: {exc})") from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(
            f"{path} is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})"
        ) from None
    if isinstance(doc, dict) and "claims" in doc:
        validate_reference(doc, str(path))
    else:
        validate_trials(doc, str(path))
    return doc


def audit_document(doc: dict) -> list[dict]:
    """Audit a loaded, validated document; returns one dict per claim.

    Row keys: id, about, sections, printed, claimed, decimals, relation, unit, recomputed (the
    value the verdict rests on: float, int, str or None), recomputed_by_ddof ({"0": .., "1": ..}
    when the SD/variance kind is open, else None), matched_ddof (0, 1 or None),
    recomputed_from_printed (the value from the report's printed inputs, where it differs),
    recomputed_text, verdict, basis ("trials", "printed" or "-"), note.
    """
    claims = doc["claims"] if "claims" in doc else derive_claims(doc)
    auditor = _Auditor(doc["trials"], claims)
    rows = []
    for claim in claims:
        out = auditor.outcome(claim["id"])
        data = out.data
        if isinstance(data, _ByDdof):
            by_ddof = {"0": _plain(data.pop), "1": _plain(data.sample)}
            primary = data.get(out.matched_ddof if out.matched_ddof is not None else 1)
        else:
            by_ddof, primary = None, data
        rows.append(
            {
                "id": claim["id"],
                "about": claim.get("about", ""),
                "sections": claim.get("sections", []),
                "printed": claim.get("printed", ""),
                "claimed": claim.get("claimed"),
                "decimals": claim.get("decimals"),
                "relation": claim.get("relation", "="),
                "unit": claim.get("unit"),
                "recomputed": _plain(primary),
                "recomputed_by_ddof": by_ddof,
                "matched_ddof": out.matched_ddof,
                "recomputed_from_printed": _plain(out.printed),
                "recomputed_text": _fmt(data, claim.get("decimals")),
                "verdict": out.verdict,
                "basis": out.basis,
                "note": out.note,
                "remark": claim.get("remark", ""),
            }
        )
    return rows


def audit_file(path: str | Path) -> list[dict]:
    """:func:`load_document` then :func:`audit_document`."""
    return audit_document(load_document(path))


def format_table(rows: list[dict], width: int | None = None) -> str:
    """The rows as a plain-text table: claim, claimed, recomputed, verdict, from, note.

    Args:
        rows: :func:`audit_document`'s rows.
        width: None for one line per claim at full length (as audit.md keeps it); a number of
            columns to fit the table into (the command's terminal): when the full table is
            wider, :func:`_fitted_table` wraps it.
    """
    header = ("claim", "claimed", "recomputed", "verdict", "from", "note")
    lines = []
    for row in rows:
        claimed = row["claimed"]
        if claimed is None:
            claimed_text = "-"
        else:
            claimed_text = _fmt(claimed, row["decimals"], extra=0)
            if len(claimed_text) > 24:
                claimed_text = claimed_text[:21] + "..."
            if row["relation"] != "=":
                claimed_text = f"{row['relation']} {claimed_text}"
        recomputed = row["recomputed_text"] if row["verdict"] != NOT_CHECKABLE else "-"
        lines.append(
            (row["id"], claimed_text, recomputed, row["verdict"], row["basis"], row["note"])
        )
    widths = [max(len(str(x)) for x in col) for col in zip(header, *lines, strict=True)]
    widths[-1] = 0
    out = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip()]
    out.append("  ".join("-" * max(w, len(h)) for h, w in zip(header, widths, strict=True)))
    out += [
        "  ".join(str(x).ljust(w) for x, w in zip(line, widths, strict=True)).rstrip()
        for line in lines
    ]
    counts = {}
    for row in rows:
        counts[row["verdict"]] = counts.get(row["verdict"], 0) + 1
    summary = f"{len(rows)} claims: " + ", ".join(f"{n} {v}" for v, n in counts.items())
    if width is not None and max(map(len, [*out, summary])) > width:
        out = _fitted_table(header[:4], lines, width)
        return "\n".join([*out, "", *terminal.wrap(summary, width, indent="  ", first="")])
    out.append("")
    out.append(summary)
    return "\n".join(out)


def _fitted_table(header: tuple[str, ...], lines: list[tuple], width: int) -> list[str]:
    """The table in ``width`` columns: claim, claimed, recomputed and verdict as columns whose
    cells wrap within them (narrowed one character at a time where that wraps the fewest
    cells, the widest first among equals), and each claim's note on
    indented lines under it. The "from" column is left out: every note of a claim checked on
    the report's printed figures says so, and the others are recomputed from its trials."""
    cells = [line[:4] for line in lines]
    notes = [line[5] for line in lines]
    natural = [max(len(str(x)) for x in col) for col in zip(header, *cells, strict=True)]
    widths = list(natural)
    minimum = [12, 12, 10, natural[3]]  # verdicts keep their width
    room = width - 2 * (len(widths) - 1)
    columns = list(zip(*cells, strict=True))
    while sum(widths) > room:
        shrinkable = [i for i in range(len(widths)) if widths[i] > minimum[i]]
        if not shrinkable:
            break

        def wrapped_if_narrowed(i: int) -> tuple[int, int]:
            return sum(len(str(x)) >= widths[i] for x in columns[i]), -widths[i]

        widths[min(shrinkable, key=wrapped_if_narrowed)] -= 1

    def row_lines(values: tuple) -> list[str]:
        wrapped = [
            textwrap.wrap(str(v), w, break_on_hyphens=True) or [""]
            for v, w in zip(values, widths, strict=True)
        ]
        return [
            "  ".join(part.ljust(w) for part, w in zip(parts, widths, strict=True)).rstrip()
            for parts in itertools.zip_longest(*wrapped, fillvalue="")
        ]

    out = row_lines(header)
    out.append("  ".join("-" * w for w in widths))
    for values, note in zip(cells, notes, strict=True):
        out += row_lines(values)
        if note:
            out += terminal.wrap(note, width, indent="    ")
    return out


def _run(args: argparse.Namespace) -> int:
    doc = load_document(args.file)
    rows = audit_document(doc)
    if args.json:
        print(json.dumps(rows, indent=2, ensure_ascii=False))
        return 0
    source = doc.get("source") or {}
    title = source.get("title") or "results"
    width = terminal.width()
    heading = (
        f"audit of {args.file}: {title}"
        + (f" (sha256 {source['sha256']})" if source.get("sha256") else "")
        + f", {len(doc['trials'])} trials"
    )
    print("\n".join(terminal.wrap(heading, width, indent="  ", first="")))
    if "claims" not in doc and not doc.get("statistics"):
        print("no claims and no stored statistics: recomputed summary only")
    print(format_table(rows, width))
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``audit`` command: ``python -m reproduce audit FILE [--json]``."""
    parser = subparsers.add_parser(
        "audit",
        help="recompute a report's claims from its own per-trial data",
        description="Recompute each claim in FILE (a reference file or a results.json) from its "
        "per-trial data and say whether it is consistent, inconsistent or not checkable. Exit "
        "status 0 when the audit ran (inconsistencies are findings), 2 for unreadable or "
        "invalid input.",
    )
    parser.add_argument("file", metavar="FILE", help="reference file or results.json")
    parser.add_argument("--json", action="store_true", help="print the rows as JSON")
    parser.set_defaults(func=_run)
