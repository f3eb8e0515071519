"""Evaluation of claim checks against trials and the verdict of each claim (the rules are in
the package docstring of :mod:`reproduce.audit`).

Formulas: one-way ANOVA with ``scipy.stats.f_oneway``; F p-values with ``scipy.stats.f.sf``;
Tukey HSD with ``scipy.stats.tukey_hsd``; the rest in :mod:`reproduce.audit.values`.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.stats

from reproduce.audit.values import (
    CONSISTENT,
    DDOF_NAME,
    INCONSISTENT,
    NOT_CHECKABLE,
    RECOMPUTED_ONLY,
    ByDdof,
    CannotCompute,
    agrees,
    expression,
    finite,
    fmt,
    lift,
    matching,
    pick_group,
    statistic,
    truncated,
)

FINAL_METRICS = ("val_loss", "train_loss", "val_accuracy", "train_accuracy")


@dataclass
class _Trace:
    """What an evaluation touched: per-trial data, and which other claims."""

    uses_trials: bool = False
    refs: list[str] = field(default_factory=list)


@dataclass
class _Outcome:
    data: Any = None  # recomputed value (float, int, str, ByDdof) or None
    printed: Any = None  # the same from the report's printed inputs, where it has claim inputs
    verdict: str = NOT_CHECKABLE
    basis: str = "-"
    note: str = ""
    matched_ddof: int | None = None


def metric_value(trial: dict, metric: str) -> Any:
    final = trial.get("final") or {}
    if metric in FINAL_METRICS:
        return final.get(metric)
    if metric == "train_val_accuracy_gap":
        if final.get("train_accuracy") is None or final.get("val_accuracy") is None:
            return None
        return final["train_accuracy"] - final["val_accuracy"]
    if metric in ("best_val_loss", "best_step"):
        return (trial.get("best") or {}).get(metric.removeprefix("best_"))
    return trial.get(metric)


class Auditor:
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
                raise CannotCompute(f"no trials in group {name!r}")
            for trial in self.groups[name]:
                value = metric_value(trial, metric)
                if value is None:
                    raise CannotCompute(f"trial {trial['id']} has no {metric}")
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
            return statistic(
                node["stat"], self.values(node["metric"], node["group"]), node.get("ddof")
            )
        if kind == "of_values":
            vals = [self.eval(v, mode, trace) for v in node["values"]]
            ddof = node.get("ddof")
            return lift(lambda *v: statistic(node["stat"], np.asarray(v, dtype=float), ddof), *vals)
        if kind == "expr":
            a = self.eval(node["a"], mode, trace)
            b = self.eval(node["b"], mode, trace)
            return lift(lambda x, y: expression(node["op"], x, y), a, b)
        if kind == "rank":
            return self._eval_rank(node, mode, trace)
        if kind == "anova":
            trace.uses_trials = True
            samples = self.samples(node["metric"], node["groups"])
            self._need_replicates(samples, "ANOVA")
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                result = scipy.stats.f_oneway(*samples)
            return finite(result.statistic if node["value"] == "F" else result.pvalue)
        if kind == "f_sf":
            f_value = self.eval(node["f"], mode, trace)
            trace.uses_trials = True
            samples = self.samples(node["metric"], node["groups"])
            self._need_replicates(samples, "an F test")
            dfn, dfd = len(samples) - 1, sum(s.size for s in samples) - len(samples)
            return lift(lambda f: finite(scipy.stats.f.sf(f, dfn, dfd)), f_value)
        if kind == "tukey":
            trace.uses_trials = True
            names = self._group_list(node["groups"])
            samples = self.samples(node["metric"], names)
            self._need_replicates(samples, "Tukey HSD")
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                result = scipy.stats.tukey_hsd(*samples)
            a, b = (names.index(g) for g in node["pair"])
            return finite(result.pvalue[a, b])
        if kind == "none":
            raise CannotCompute(node["reason"])
        raise ValueError(f"unknown check kind {kind!r}")

    @staticmethod
    def _need_replicates(samples: list[np.ndarray], what: str) -> None:
        if len(samples) < 2 or any(s.size < 2 for s in samples):
            raise CannotCompute(f"{what} needs at least 2 groups with at least 2 trials each")

    def _eval_ref(self, cid: str, mode: str, trace: _Trace) -> Any:
        trace.refs.append(cid)
        claim = self.claims[cid]
        if mode == "printed" or claim["check"]["kind"] == "none":
            if claim.get("claimed") is None:
                raise CannotCompute(f"claim {cid} has no claimed value")
            return claim["claimed"]
        outcome = self.outcome(cid)
        if outcome.basis == "trials":
            trace.uses_trials = True
        if outcome.data is None:
            raise CannotCompute(f"claim {cid} cannot be recomputed")
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
                statistic(node["stat"], self.values(node["metric"], g), node.get("ddof", 1))
                for g in names
            ]
        position_of = node.get("position_of")
        if position_of is not None and position_of not in names:
            raise CannotCompute(f"{position_of!r} is not among the ranked groups")
        return lift(lambda *v: pick_group(node.get("pick"), position_of, names, *v), *vals)

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
        except CannotCompute as exc:
            return _Outcome(verdict=NOT_CHECKABLE, note=f"cannot recompute: {exc}")
        out = _Outcome(data=data, basis="trials" if trace.uses_trials else "printed")
        claimed = claim.get("claimed")
        if claimed is None:
            out.verdict = RECOMPUTED_ONLY
            if isinstance(data, ByDdof):
                out.note = "no stored value to compare"
            return out
        decimals, relation = claim.get("decimals"), claim.get("relation", "=")
        matches = matching(data, claimed, decimals, relation)
        notes = []
        if out.basis == "printed":
            notes.append("arithmetic on the report's printed figures only")
        if matches:
            out.verdict = CONSISTENT
            if isinstance(data, ByDdof):
                if len(matches) == 1:
                    out.matched_ddof = matches[0]
                    other = 1 - matches[0]
                    notes.insert(
                        0,
                        f"matches the {DDOF_NAME[matches[0]]} value, not the "
                        f"{DDOF_NAME[other]} one, "
                        f"{fmt(data.get(other), decimals)}",
                    )
                else:
                    notes.insert(0, "matches both the sample and the population value")
            out.note = "; ".join(notes)
            return out
        out.verdict = INCONSISTENT
        if isinstance(data, ByDdof):
            notes.insert(0, "matches neither the sample (ddof=1) nor the population (ddof=0) value")
        refs = list(dict.fromkeys(trace.refs))
        printed = self._try_printed(claim) if refs else None
        if printed is not None and fmt(printed, decimals) != fmt(data, decimals):
            out.printed = printed
            bad = [r for r in refs if self.outcome(r).verdict == INCONSISTENT]
            if not matching(printed, claimed, decimals, relation):
                notes.append(
                    f"from the printed inputs ({self._inputs(refs)}): {fmt(printed, decimals)}"
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
                    f"unrounded {fmt(data, decimals)}"
                )
                return out
        if check["kind"] == "expr" and check["op"] in ("pct_change", "pct_less"):
            notes.extend(self._other_base(claim, data))
        if truncated(data, claimed, decimals, relation):
            notes.append(f"equals the value truncated (not rounded) to {decimals} decimals")
        out.note = "; ".join(notes)
        return out

    def _try_printed(self, claim: dict) -> Any:
        try:
            return self.eval(claim["check"], "printed", _Trace())
        except CannotCompute:
            return None

    def _inputs(self, refs: list[str]) -> str:
        return ", ".join(
            f"{r}={fmt(self.claims[r]['claimed'], self.claims[r].get('decimals'), extra=0)}"
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
                alt = lift(lambda x, y: expression("pct_less", y, x), a, b)
            else:
                alt = lift(lambda x, y: expression("pct_change", y, x), a, b)
        except CannotCompute:
            return []
        if isinstance(alt, ByDdof) or isinstance(data, ByDdof):
            return []
        if agrees(alt, claim["claimed"], decimals, claim.get("relation", "=")):
            return [
                f"matches with the other base (percent of the other value): {fmt(alt, decimals)}"
            ]
        if abs(alt - data) <= 0.2 * abs(data):
            return [f"with the other base: {fmt(alt, decimals)}"]
        return []
