"""The comparison of one metric across groups (activations): ranking, one-way ANOVA with eta
squared, Kruskal-Wallis, Tukey HSD, Cohen's d and the minimum detectable difference
(:func:`compare_groups`). Distributions come from :mod:`scipy.stats`; only sums of squares, eta
squared and Cohen's d are computed here, from the sources named at each."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from itertools import combinations
from typing import Any

import numpy as np
from scipy import stats as sps

from reproduce.stats.sample import (
    MDD_METHOD,
    describe,
    finite,
    finite_array,
    is_constant,
    min_detectable_difference,
)

__all__ = ["COHENS_D_SOURCE", "ETA_SQUARED_SOURCE", "compare_groups"]

ETA_SQUARED_SOURCE = (
    "eta^2 = SS_between / SS_total (Cohen 1988, Statistical Power Analysis for the Behavioral "
    "Sciences, 2nd ed., ch. 8; Lakens 2013, Front. Psychol. 4:863)"
)
COHENS_D_SOURCE = (
    "d = (mean_a - mean_b) / s_pooled, s_pooled = sqrt(((n_a-1) s_a^2 + (n_b-1) s_b^2) / "
    "(n_a + n_b - 2)) (Cohen 1988, ch. 2; Lakens 2013, Cohen's d_s)"
)


def compare_groups(
    groups: Mapping[str, Sequence[float]],
    lower_is_better: bool = True,
    alpha: float = 0.05,
    power: float = 0.8,
) -> dict:
    """Compare one metric (e.g. final val_loss, nats) across groups (activations).

    Args:
        groups: group name -> values (one per seed/trial). Names are processed in sorted order.
        lower_is_better: ranking direction (True for losses, False for accuracies).
        alpha: significance level for ANOVA, Kruskal-Wallis and Tukey HSD; Tukey intervals are
            at confidence ``1 - alpha``.
        power: target power of the minimum detectable difference.

    Returns (all keys always present; see the module docstring for ``None`` + ``"undefined"``)::

        {"alpha": float, "power": float, "lower_is_better": bool,
         "k": int, "n_total": int,
         "groups": {name: describe(values)},                 # sorted by name
         "ranking": [name, ...],                             # best mean first, ties by name
         "best": name, "worst": name,
         "spread_percent": float|None,   # |worst_mean - best_mean| / |best_mean| * 100
         "significant": bool|None,       # ANOVA p < alpha; None when the ANOVA is undefined
         "anova": {"F", "p", "df_between", "df_within", "ss_between", "ss_within",
                   "ss_total", "eta_squared", "eta_squared_source", "significant",
                   "method"} | None,
         "kruskal": {"H", "p", "df", "significant", "agrees_with_anova": bool|None,
                     "method", "undefined"} | None,
         "pairs": [{"a", "b",            # a < b by name; differences are a - b
                    "mean_diff": float,
                    "tukey_p", "tukey_ci_low", "tukey_ci_high": float|None,
                    "tukey_significant": bool|None,
                    "cohens_d": float|None, "undefined": {...}}, ...],
         "tukey_ci_level": float,
         "cohens_d_source": str,
         "mdd": {"delta", "percent_of_best", "sd_pooled", "sd_pooled_df", "n_a", "n_b",
                 "df_test", "noncentrality", "effect_size_d", "achieved_power",
                 "method"} | None,
         "undefined": {"anova"|"kruskal"|"tukey"|"mdd"|"significant"|"spread_percent": reason}}

    Sources: ANOVA = scipy.stats.f_oneway (sums of squares here only for eta squared, see
    ``ETA_SQUARED_SOURCE``); Kruskal-Wallis = scipy.stats.kruskal (tie-corrected H, chi-square
    p); Tukey HSD = scipy.stats.tukey_hsd and its ``confidence_interval()``; Cohen's d =
    ``COHENS_D_SOURCE``; minimum detectable difference = :func:`min_detectable_difference` with
    the SD pooled over all groups (``sqrt(SS_within / (N - k))``) and the two smallest group
    sizes (equal n: the common n).

    Degenerate input (fewer than 2 groups, a group with n < 2, zero within-group variance) makes
    the affected tests ``None`` with a reason; none is then significant.

    Raises:
        ValueError: no groups, an empty group, non-finite values, ``alpha`` outside (0, 1) or
        ``power`` outside (alpha, 1).
    """
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha!r}")
    if not alpha < power < 1.0:
        raise ValueError(f"power must be in (alpha, 1) = ({alpha}, 1), got {power!r}")
    data = _group_arrays(groups)
    arrays = list(data.values())
    summaries = {name: describe(values) for name, values in data.items()}
    means = {name: summaries[name]["mean"] for name in data}
    undefined: dict[str, str] = {}
    out: dict[str, Any] = {
        "alpha": float(alpha),
        "power": float(power),
        "lower_is_better": bool(lower_is_better),
        "k": len(data),
        "n_total": int(sum(a.size for a in arrays)),
        "groups": summaries,
        **_ranking(means, lower_is_better, undefined),
    }
    ss_within = float(sum(np.sum((a - a.mean()) ** 2) for a in arrays))
    anova, para_reason = _anova(data, ss_within, alpha)
    out["anova"] = anova
    out["significant"] = None if anova is None else anova["significant"]
    if anova is None:
        undefined["anova"] = para_reason
        undefined["significant"] = f"ANOVA undefined: {para_reason}"
    out["kruskal"] = _kruskal(data, alpha, anova, para_reason, undefined)
    out["pairs"] = _pairs(data, means, alpha, para_reason, undefined)
    out["tukey_ci_level"] = float(1.0 - alpha)
    out["cohens_d_source"] = COHENS_D_SOURCE
    out["mdd"] = _mdd(data, ss_within, means[out["best"]], alpha, power, para_reason)
    if out["mdd"] is None:
        undefined["mdd"] = para_reason
    out["undefined"] = dict(sorted(undefined.items()))
    return out


def _group_arrays(groups: Mapping[str, Sequence[float]]) -> dict[str, np.ndarray]:
    """Group name -> its values as a finite 1-D array, names sorted; ValueError for no groups,
    an empty group or non-finite values."""
    if not groups:
        raise ValueError("compare_groups(): no groups given; pass {name: [values, ...]}")
    data: dict[str, np.ndarray] = {}
    for name in sorted(groups):
        arr = finite_array(groups[name], f"group {name!r}")
        if arr.size == 0:
            raise ValueError(f"group {name!r} has no values; remove it or add its trials")
        data[name] = arr
    return data


def _ranking(means: dict[str, float], lower_is_better: bool, undefined: dict) -> dict:
    """``ranking`` (best mean first, ties by name), ``best``, ``worst`` and ``spread_percent``
    (``|worst - best| / |best| * 100``; undefined for a best mean of 0): defined for any k."""
    sign = 1.0 if lower_is_better else -1.0
    ranking = sorted(means, key=lambda nm: (sign * means[nm], nm))
    best, worst = ranking[0], ranking[-1]
    out: dict[str, Any] = {"ranking": ranking, "best": best, "worst": worst}
    if means[best] == 0.0:
        out["spread_percent"] = None
        undefined["spread_percent"] = "best mean is 0: a percentage of it is undefined"
    else:
        out["spread_percent"] = finite(abs(means[worst] - means[best]) / abs(means[best]) * 100.0)
    return out


def _parametric_reason(data: dict[str, np.ndarray], ss_within: float) -> str | None:
    """Why ANOVA, Tukey HSD and the MDD are undefined for these groups, or None."""
    names = list(data)
    small = [nm for nm in names if data[nm].size < 2]
    if len(names) < 2:
        return f"only {len(names)} group ({names[0]!r}); comparisons need at least 2"
    if small:
        return (
            f"group(s) {', '.join(repr(s) for s in small)} have n=1; every group needs at "
            "least 2 trials (seeds) to estimate its variance"
        )
    if all(is_constant(a) for a in data.values()) or ss_within == 0.0:
        return "zero within-group variance: every group's values are identical"
    return None


def _anova(
    data: dict[str, np.ndarray], ss_within: float, alpha: float
) -> tuple[dict | None, str | None]:
    """One-way ANOVA (scipy.stats.f_oneway) with eta squared (:data:`ETA_SQUARED_SOURCE`):
    ``(result, None)``, or ``(None, reason)`` where it is undefined; that reason then also
    holds for Tukey HSD and the MDD."""
    reason = _parametric_reason(data, ss_within)
    if reason is not None:
        return None, reason
    arrays = list(data.values())
    k, n_total = len(arrays), int(sum(a.size for a in arrays))
    grand_mean = float(np.mean(np.concatenate(arrays)))
    ss_between = float(sum(a.size * (a.mean() - grand_mean) ** 2 for a in arrays))
    ss_total = ss_between + ss_within
    res = sps.f_oneway(*arrays)
    f_stat, p_val = float(res.statistic), float(res.pvalue)
    if not (math.isfinite(f_stat) and math.isfinite(p_val)):
        return None, "scipy.stats.f_oneway returned a non-finite statistic"
    anova = {
        "F": finite(f_stat),
        "p": finite(p_val),
        "df_between": k - 1,
        "df_within": n_total - k,
        "ss_between": finite(ss_between),
        "ss_within": finite(ss_within),
        "ss_total": finite(ss_total),
        "eta_squared": finite(ss_between / ss_total),
        "eta_squared_source": ETA_SQUARED_SOURCE,
        "significant": bool(p_val < alpha),
        "method": "scipy.stats.f_oneway",
    }
    return anova, None


def _kruskal(
    data: dict[str, np.ndarray],
    alpha: float,
    anova: dict | None,
    para_reason: str | None,
    undefined: dict,
) -> dict | None:
    """Kruskal-Wallis (scipy.stats.kruskal): rank based, so defined with zero within-group
    variance as long as not every value is identical; None with its reason in ``undefined``."""
    arrays = list(data.values())
    if len(arrays) < 2 or any(a.size < 2 for a in arrays):
        reason = para_reason
    elif is_constant(np.concatenate(arrays)):
        reason = "all values identical across groups: ranks carry no information"
    else:
        reason = None
    if reason is None:
        kw = sps.kruskal(*arrays)
        h, p_kw = float(kw.statistic), float(kw.pvalue)
        if not (math.isfinite(h) and math.isfinite(p_kw)):
            reason = "scipy.stats.kruskal returned a non-finite statistic"
    if reason is not None:
        undefined["kruskal"] = reason
        return None
    kw_sig = bool(p_kw < alpha)
    out: dict[str, Any] = {
        "H": finite(h),
        "p": finite(p_kw),
        "df": len(arrays) - 1,
        "significant": kw_sig,
        "agrees_with_anova": None,
        "method": "scipy.stats.kruskal",
        "undefined": {},
    }
    if anova is not None:
        out["agrees_with_anova"] = kw_sig == anova["significant"]
    else:
        out["undefined"]["agrees_with_anova"] = f"ANOVA undefined: {para_reason}"
    return out


def _pairs(
    data: dict[str, np.ndarray],
    means: dict[str, float],
    alpha: float,
    para_reason: str | None,
    undefined: dict,
) -> list[dict]:
    """Every pair ``a < b`` by name: mean difference ``a - b``, Tukey HSD (scipy.stats.tukey_hsd,
    intervals at ``1 - alpha``) and Cohen's d (:data:`COHENS_D_SOURCE`)."""
    names = list(data)
    tukey = tukey_ci = None
    if para_reason is None:
        tukey = sps.tukey_hsd(*data.values())
        tukey_ci = tukey.confidence_interval(confidence_level=1.0 - alpha)
    else:
        undefined["tukey"] = para_reason
    pairs = []
    for i, j in combinations(range(len(names)), 2):
        a, b = names[i], names[j]
        pair: dict[str, Any] = {
            "a": a,
            "b": b,
            "mean_diff": finite(means[a] - means[b]),
            "tukey_p": None,
            "tukey_ci_low": None,
            "tukey_ci_high": None,
            "tukey_significant": None,
            "cohens_d": None,
            "undefined": {},
        }
        if tukey is not None:
            p_t = finite(tukey.pvalue[i, j])
            pair.update(
                tukey_p=p_t,
                tukey_ci_low=finite(tukey_ci.low[i, j]),
                tukey_ci_high=finite(tukey_ci.high[i, j]),
                tukey_significant=bool(p_t < alpha),
            )
        else:
            pair["undefined"]["tukey"] = para_reason
        d, why = _cohens_d(data[a], data[b])
        if why is None:
            pair["cohens_d"] = d
        else:
            pair["undefined"]["cohens_d"] = why
        pairs.append(pair)
    return pairs


def _cohens_d(xa: np.ndarray, xb: np.ndarray) -> tuple[float | None, str | None]:
    """Cohen's d of two groups with the pooled SD (:data:`COHENS_D_SOURCE`): ``(d, None)``
    or ``(None, reason)``."""
    if xa.size < 2 or xb.size < 2:
        return None, "a group has n=1: its SD is undefined"
    ss_pair = float(np.sum((xa - xa.mean()) ** 2) + np.sum((xb - xb.mean()) ** 2))
    if ss_pair == 0.0 or (is_constant(xa) and is_constant(xb)):
        return None, "zero pooled SD: both groups are constant"
    s_pooled = math.sqrt(ss_pair / (xa.size + xb.size - 2))
    return finite((float(np.mean(xa)) - float(np.mean(xb))) / s_pooled), None


def _mdd(
    data: dict[str, np.ndarray],
    ss_within: float,
    best_mean: float,
    alpha: float,
    power: float,
    para_reason: str | None,
) -> dict | None:
    """The minimum detectable difference (:func:`min_detectable_difference`) with the SD pooled
    over all groups (``sqrt(SS_within / (N - k))``) and the two smallest group sizes; None
    where the parametric tests are undefined."""
    if para_reason is not None:
        return None
    arrays = list(data.values())
    k, n_total = len(arrays), int(sum(a.size for a in arrays))
    n_a, n_b = sorted(int(a.size) for a in arrays)[:2]
    sd_pooled = math.sqrt(ss_within / (n_total - k))
    mdd = min_detectable_difference(sd_pooled, n_a, n_b, alpha=alpha, power=power)
    return {
        "delta": mdd["delta"],
        "percent_of_best": (
            finite(mdd["delta"] / abs(best_mean) * 100.0) if best_mean != 0.0 else None
        ),
        "sd_pooled": finite(sd_pooled),
        "sd_pooled_df": n_total - k,
        "n_a": n_a,
        "n_b": n_b,
        "df_test": mdd["df_test"],
        "noncentrality": mdd["noncentrality"],
        "effect_size_d": mdd["effect_size_d"],
        "achieved_power": mdd["achieved_power"],
        "method": MDD_METHOD,
        "undefined": {} if best_mean != 0.0 else {"percent_of_best": "best mean is 0"},
    }
