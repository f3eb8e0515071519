"""Statistics for the activation comparison: summaries, ANOVA, post-hoc tests, power.

Every distributional quantity comes from :mod:`scipy.stats` (t, noncentral t, F via
``f_oneway``, Kruskal-Wallis, Tukey HSD); only sums of squares, eta squared and Cohen's d are
computed here, from their textbook definitions (sources given at each function).

Undefined quantities
--------------------
One representation is used everywhere in this module's output: a quantity that cannot be
computed (n = 1, zero variance, fewer than two groups, ...) is ``None``, and the dict that holds
it has an ``"undefined"`` mapping from that field's name to a one-line reason, e.g.::

    {"sd": None, ..., "undefined": {"sd": "n=1: the sample SD needs at least 2 values"}}
    {"anova": None, ..., "undefined": {"anova": "group 'gelu' has n=1; ..."}}

Every such dict always has its ``"undefined"`` key (``{}`` when everything is defined). No value
is ever NaN or infinite, and an undefined test is never reported as significant. All output is
plain JSON (``json.dumps(x, allow_nan=False)`` works): Python floats/ints/str/bool/None only.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from itertools import combinations
from typing import Any

import numpy as np
from scipy import optimize
from scipy import stats as sps

__all__ = ["analyze_sweep", "cell_key", "compare_groups", "describe", "min_detectable_difference"]

ETA_SQUARED_SOURCE = (
    "eta^2 = SS_between / SS_total (Cohen 1988, Statistical Power Analysis for the Behavioral "
    "Sciences, 2nd ed., ch. 8; Lakens 2013, Front. Psychol. 4:863)"
)
COHENS_D_SOURCE = (
    "d = (mean_a - mean_b) / s_pooled, s_pooled = sqrt(((n_a-1) s_a^2 + (n_b-1) s_b^2) / "
    "(n_a + n_b - 2)) (Cohen 1988, ch. 2; Lakens 2013, Cohen's d_s)"
)
MDD_METHOD = (
    "smallest |mean_a - mean_b| at which a two-sided two-sample Student t-test "
    "(df = n_a + n_b - 2) at level alpha has the requested power, sigma = SD pooled over all "
    "groups (df = N - k); "
    "power from scipy.stats.nct / scipy.stats.t, solved with scipy.optimize.brentq"
)


# --------------------------------------------------------------------------------------------
# helpers


def _finite_array(values: Any, what: str) -> np.ndarray:
    """``values`` as a 1-D float64 array; ValueError if it is not 1-D or has NaN/inf."""
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{what}: expected a sequence of numbers ({exc})") from None
    if arr.ndim != 1:
        raise ValueError(f"{what}: expected a 1-D sequence of numbers, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{what}: contains NaN or infinite values; drop or fix those trials")
    return arr


def _num(x: Any) -> float:
    """A finite Python float (numpy scalars converted); ValueError on NaN/inf."""
    value = float(x)
    if not math.isfinite(value):
        raise ValueError(f"internal error: non-finite statistic {value!r}")
    return value


def _is_constant(arr: np.ndarray) -> bool:
    """True if every value is identical (exact test: float means of equal values may drift)."""
    return bool(arr.size == 0 or np.all(arr == arr[0]))


# --------------------------------------------------------------------------------------------
# describe


def describe(values: Sequence[float], confidence: float = 0.95) -> dict:
    """Summary of one sample: n, mean, sample SD, SEM, t confidence interval of the mean, min, max.

    Args:
        values: 1-D sequence of finite numbers (any unit; the output keeps it).
        confidence: level of the interval of the mean, in (0, 1).

    Returns:
        ``{"n": int, "mean": float, "sd": float|None, "sem": float|None, "ci_level": float,
        "ci_low": float|None, "ci_high": float|None, "min": float, "max": float,
        "undefined": {field: reason}}``.
        ``sd`` is the sample SD (``numpy.std(ddof=1)``), ``sem = sd / sqrt(n)``
        (``scipy.stats.sem(ddof=1)``), and the interval is ``scipy.stats.t.interval(confidence,
        df=n-1, loc=mean, scale=sem)`` (Student t). With n = 1, ``sd``/``sem``/``ci_*`` are None;
        with zero variance ``sd = sem = 0.0`` and ``ci_*`` are None (a t interval needs a
        positive scale); the reasons are under ``"undefined"`` (keys ``"sd"``, ``"sem"``,
        ``"ci"``).

    Raises:
        ValueError: empty input, non-finite values, or ``confidence`` outside (0, 1).
    """
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    arr = _finite_array(values, "describe()")
    n = int(arr.size)
    if n == 0:
        raise ValueError("describe(): no values; need at least one number")
    out: dict[str, Any] = {
        "n": n,
        "mean": _num(np.mean(arr)),
        "sd": None,
        "sem": None,
        "ci_level": float(confidence),
        "ci_low": None,
        "ci_high": None,
        "min": _num(np.min(arr)),
        "max": _num(np.max(arr)),
        "undefined": {},
    }
    if n == 1:
        reason = "n=1: the sample SD (ddof=1) needs at least 2 values"
        out["undefined"] = {"sd": reason, "sem": reason, "ci": reason}
        return out
    if _is_constant(arr):
        out["sd"] = 0.0
        out["sem"] = 0.0
        out["undefined"] = {"ci": "zero variance: all values identical, a t interval is degenerate"}
        return out
    sd = _num(np.std(arr, ddof=1))
    sem = _num(sps.sem(arr, ddof=1))
    low, high = sps.t.interval(confidence, df=n - 1, loc=out["mean"], scale=sem)
    out.update(sd=sd, sem=sem, ci_low=_num(low), ci_high=_num(high))
    return out


# --------------------------------------------------------------------------------------------
# power


def _two_sided_t_power(nc: float, df: float, alpha: float) -> float:
    """Power of a two-sided one-parameter t test with noncentrality ``nc`` (scipy.stats.nct).

    ``P(T > c) + P(T < -c)`` with ``T ~ nct(df, nc)``, ``c = t_{1-alpha/2}(df)``. The lower tail
    is evaluated as ``P(T' > c)`` with ``T' ~ nct(df, -nc)`` (same value by symmetry), because
    scipy's ``nct.cdf`` returns NaN far in the lower tail for some (df, nc) (seen with scipy
    1.17, e.g. df=4, nc=12).
    """
    crit = sps.t.ppf(1.0 - alpha / 2.0, df)
    power = float(sps.nct.sf(crit, df, nc) + sps.nct.sf(crit, df, -nc))
    if not math.isfinite(power):
        raise ValueError(f"scipy.stats.nct gave a non-finite power at df={df}, nc={nc}")
    return power


def min_detectable_difference(
    sd: float, n_a: int, n_b: int, alpha: float = 0.05, power: float = 0.8
) -> dict:
    """Smallest true mean difference a two-sided two-sample t-test detects with ``power``.

    With common SD ``sd`` and group sizes ``n_a``, ``n_b``, the test statistic follows a
    noncentral t with ``df = n_a + n_b - 2`` and noncentrality
    ``nc = delta / (sd * sqrt(1/n_a + 1/n_b))``; its power is
    ``P(T > t_{1-alpha/2}) + P(T < -t_{1-alpha/2})`` (scipy.stats.nct, scipy.stats.t).
    ``nc`` is solved for the requested power with scipy.optimize.brentq (no normal
    approximation).

    Returns:
        ``{"delta": float (same unit as sd), "noncentrality": float, "effect_size_d": float,
        "df_test": int, "achieved_power": float}``.

    Raises:
        ValueError: ``sd <= 0``, a group size below 2, ``alpha`` outside (0, 1) or ``power``
        outside (alpha, 1).
    """
    if not (math.isfinite(sd) and sd > 0):
        raise ValueError(f"sd must be a positive finite number, got {sd!r}")
    if n_a < 2 or n_b < 2:
        raise ValueError(f"group sizes must be at least 2, got {n_a} and {n_b}")
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha!r}")
    if not alpha < power < 1.0:
        raise ValueError(f"power must be in (alpha, 1) = ({alpha}, 1), got {power!r}")
    df = n_a + n_b - 2
    hi = 1.0
    while _two_sided_t_power(hi, df, alpha) < power:
        hi *= 2.0
        if hi > 1e6:  # pragma: no cover - impossible for power < 1
            raise ValueError("could not bracket the noncentrality for the requested power")
    nc = optimize.brentq(
        lambda x: _two_sided_t_power(x, df, alpha) - power, 0.0, hi, xtol=1e-12, rtol=1e-12
    )
    scale = math.sqrt(1.0 / n_a + 1.0 / n_b)
    return {
        "delta": _num(nc * sd * scale),
        "noncentrality": _num(nc),
        "effect_size_d": _num(nc * scale),
        "df_test": int(df),
        "achieved_power": _num(_two_sided_t_power(nc, df, alpha)),
    }


# --------------------------------------------------------------------------------------------
# compare_groups


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
    if not groups:
        raise ValueError("compare_groups(): no groups given; pass {name: [values, ...]}")
    names = sorted(groups)
    data: dict[str, np.ndarray] = {}
    for name in names:
        arr = _finite_array(groups[name], f"group {name!r}")
        if arr.size == 0:
            raise ValueError(f"group {name!r} has no values; remove it or add its trials")
        data[name] = arr
    arrays = [data[name] for name in names]
    k = len(names)
    n_total = int(sum(a.size for a in arrays))
    summaries = {name: describe(data[name]) for name in names}
    means = {name: summaries[name]["mean"] for name in names}

    undefined: dict[str, str] = {}
    out: dict[str, Any] = {
        "alpha": float(alpha),
        "power": float(power),
        "lower_is_better": bool(lower_is_better),
        "k": k,
        "n_total": n_total,
        "groups": summaries,
    }

    # ranking and spread (defined for any k >= 1)
    sign = 1.0 if lower_is_better else -1.0
    ranking = sorted(names, key=lambda nm: (sign * means[nm], nm))
    best, worst = ranking[0], ranking[-1]
    out.update(ranking=ranking, best=best, worst=worst)
    if means[best] == 0.0:
        out["spread_percent"] = None
        undefined["spread_percent"] = "best mean is 0: a percentage of it is undefined"
    else:
        out["spread_percent"] = _num(abs(means[worst] - means[best]) / abs(means[best]) * 100.0)

    # why the parametric tests are undefined, if they are
    small = [nm for nm in names if data[nm].size < 2]
    ss_within = float(sum(np.sum((a - a.mean()) ** 2) for a in arrays))
    all_constant = all(_is_constant(a) for a in arrays)
    if k < 2:
        para_reason = f"only {k} group ({names[0]!r}); comparisons need at least 2"
    elif small:
        para_reason = (
            f"group(s) {', '.join(repr(s) for s in small)} have n=1; every group needs at "
            "least 2 trials (seeds) to estimate its variance"
        )
    elif all_constant or ss_within == 0.0:
        para_reason = "zero within-group variance: every group's values are identical"
    else:
        para_reason = None

    # one-way ANOVA (scipy.stats.f_oneway) + eta squared
    grand_mean = float(np.mean(np.concatenate(arrays)))
    ss_between = float(sum(a.size * (a.mean() - grand_mean) ** 2 for a in arrays))
    ss_total = ss_between + ss_within
    if para_reason is None:
        res = sps.f_oneway(*arrays)
        f_stat, p_val = float(res.statistic), float(res.pvalue)
        if not (math.isfinite(f_stat) and math.isfinite(p_val)):
            para_reason = "scipy.stats.f_oneway returned a non-finite statistic"
    if para_reason is None:
        anova = {
            "F": _num(f_stat),
            "p": _num(p_val),
            "df_between": k - 1,
            "df_within": n_total - k,
            "ss_between": _num(ss_between),
            "ss_within": _num(ss_within),
            "ss_total": _num(ss_total),
            "eta_squared": _num(ss_between / ss_total),
            "eta_squared_source": ETA_SQUARED_SOURCE,
            "significant": bool(p_val < alpha),
            "method": "scipy.stats.f_oneway",
        }
        out["anova"] = anova
        out["significant"] = anova["significant"]
    else:
        out["anova"] = None
        out["significant"] = None
        undefined["anova"] = para_reason
        undefined["significant"] = f"ANOVA undefined: {para_reason}"

    # Kruskal-Wallis (scipy.stats.kruskal): rank based, so defined with zero within variance
    # as long as not every value is identical
    if k < 2 or small:
        kw_reason = para_reason
    elif _is_constant(np.concatenate(arrays)):
        kw_reason = "all values identical across groups: ranks carry no information"
    else:
        kw_reason = None
    if kw_reason is None:
        kw = sps.kruskal(*arrays)
        h, p_kw = float(kw.statistic), float(kw.pvalue)
        if not (math.isfinite(h) and math.isfinite(p_kw)):
            kw_reason = "scipy.stats.kruskal returned a non-finite statistic"
    if kw_reason is None:
        kw_sig = bool(p_kw < alpha)
        kw_out: dict[str, Any] = {
            "H": _num(h),
            "p": _num(p_kw),
            "df": k - 1,
            "significant": kw_sig,
            "agrees_with_anova": None,
            "method": "scipy.stats.kruskal",
            "undefined": {},
        }
        if out["anova"] is not None:
            kw_out["agrees_with_anova"] = kw_sig == out["anova"]["significant"]
        else:
            kw_out["undefined"]["agrees_with_anova"] = f"ANOVA undefined: {para_reason}"
        out["kruskal"] = kw_out
    else:
        out["kruskal"] = None
        undefined["kruskal"] = kw_reason

    # Tukey HSD (scipy.stats.tukey_hsd) and Cohen's d per pair, sorted name order
    tukey = None
    if para_reason is None:
        tukey = sps.tukey_hsd(*arrays)
        tukey_ci = tukey.confidence_interval(confidence_level=1.0 - alpha)
    else:
        undefined["tukey"] = para_reason
    pairs = []
    for i, j in combinations(range(k), 2):
        a, b = names[i], names[j]
        pair: dict[str, Any] = {
            "a": a,
            "b": b,
            "mean_diff": _num(means[a] - means[b]),
            "tukey_p": None,
            "tukey_ci_low": None,
            "tukey_ci_high": None,
            "tukey_significant": None,
            "cohens_d": None,
            "undefined": {},
        }
        if tukey is not None:
            p_t = _num(tukey.pvalue[i, j])
            pair.update(
                tukey_p=p_t,
                tukey_ci_low=_num(tukey_ci.low[i, j]),
                tukey_ci_high=_num(tukey_ci.high[i, j]),
                tukey_significant=bool(p_t < alpha),
            )
        else:
            pair["undefined"]["tukey"] = para_reason
        xa, xb = data[a], data[b]
        if xa.size < 2 or xb.size < 2:
            pair["undefined"]["cohens_d"] = "a group has n=1: its SD is undefined"
        else:
            ss_pair = float(np.sum((xa - xa.mean()) ** 2) + np.sum((xb - xb.mean()) ** 2))
            if ss_pair == 0.0 or (_is_constant(xa) and _is_constant(xb)):
                pair["undefined"]["cohens_d"] = "zero pooled SD: both groups are constant"
            else:
                s_pooled = math.sqrt(ss_pair / (xa.size + xb.size - 2))
                pair["cohens_d"] = _num((means[a] - means[b]) / s_pooled)
        pairs.append(pair)
    out["pairs"] = pairs
    out["tukey_ci_level"] = float(1.0 - alpha)
    out["cohens_d_source"] = COHENS_D_SOURCE

    # minimum detectable difference
    if para_reason is None:
        sizes = sorted(int(a.size) for a in arrays)
        n_a, n_b = sizes[0], sizes[1]
        sd_pooled = math.sqrt(ss_within / (n_total - k))
        mdd = min_detectable_difference(sd_pooled, n_a, n_b, alpha=alpha, power=power)
        best_mean = means[best]
        out["mdd"] = {
            "delta": mdd["delta"],
            "percent_of_best": (
                _num(mdd["delta"] / abs(best_mean) * 100.0) if best_mean != 0.0 else None
            ),
            "sd_pooled": _num(sd_pooled),
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
    else:
        out["mdd"] = None
        undefined["mdd"] = para_reason

    out["undefined"] = dict(sorted(undefined.items()))
    return out


# --------------------------------------------------------------------------------------------
# sweeps


def _format_grid_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, int | float | str):
        return repr(value) if not isinstance(value, str) else value
    raise ValueError(f"grid value {value!r}: expected a number, string, bool or null")


def cell_key(grid: Mapping[str, Any] | None) -> str:
    """Stable name of one grid cell: ``"dropout=0.1,lr=0.001"`` (keys sorted), ``"all"`` if empty.

    Numbers use Python's shortest round-trip ``repr`` (``0.001``, ``3e-04`` -> ``0.0003``),
    booleans ``true``/``false``, None ``null``, strings as is.
    """
    if not grid:
        return "all"
    return ",".join(f"{k}={_format_grid_value(grid[k])}" for k in sorted(grid))


_TRIAL_METRICS = ("val_loss", "val_accuracy", "train_accuracy")


def _trial_number(trial: Mapping[str, Any], path: tuple[str, ...]) -> float:
    node: Any = trial
    for part in path:
        if not isinstance(node, Mapping) or part not in node:
            raise ValueError(
                f"trial {trial.get('id', '?')!r}: missing field {'.'.join(path)!r} "
                "(trial records are described in docs/HELPERS.md)"
            )
        node = node[part]
    if isinstance(node, bool) or not isinstance(node, int | float) or not math.isfinite(node):
        raise ValueError(
            f"trial {trial.get('id', '?')!r}: field {'.'.join(path)!r} must be a finite number, "
            f"got {node!r}"
        )
    return float(node)


def analyze_sweep(trials: list[dict], alpha: float = 0.05, power: float = 0.8) -> dict:
    """Per-cell, per-activation summaries and the val-loss comparison of a sweep.

    Args:
        trials: trial records (docs/HELPERS.md): uses ``id``, ``activation``, ``seed``,
            ``grid`` (missing or ``{}`` = no grid), ``final.val_loss`` (nats),
            ``final.val_accuracy`` / ``final.train_accuracy`` (percent) and ``wall_time_s``.
        alpha, power: passed to :func:`compare_groups`.

    Returns (keys sorted at every level, so ``json.dumps`` output is byte-stable)::

        {"cells": {cell_key(grid): {
            "grid": {...},
            "activations": {activation: {
                "n": int, "seeds": [int, ...], "trial_ids": [str, ...],   # sorted by seed
                "val_loss": describe(), "val_accuracy": describe(),
                "train_accuracy": describe(), "wall_time_s": describe(),
                "train_val_accuracy_gap": describe()}},   # train - val accuracy, points
            "val_loss_comparison": compare_groups(val_loss by activation,
                                                  lower_is_better=True)}},
         "n_trials": int}

    Raises:
        ValueError: no trials, a missing/non-finite field, or two trials with the same cell,
        activation and seed.
    """
    if not trials:
        raise ValueError("analyze_sweep(): no trials; run the sweep first")
    cells: dict[str, dict[str, Any]] = {}
    for trial in trials:
        if not isinstance(trial, Mapping):
            raise ValueError(f"trial records must be dicts, got {type(trial).__name__}")
        tid = trial.get("id", "?")
        act = trial.get("activation")
        if not isinstance(act, str) or not act:
            raise ValueError(f"trial {tid!r}: missing or empty 'activation'")
        seed = trial.get("seed")
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise ValueError(f"trial {tid!r}: 'seed' must be an integer, got {seed!r}")
        grid = trial.get("grid") or {}
        if not isinstance(grid, Mapping):
            raise ValueError(f"trial {tid!r}: 'grid' must be a dict, got {grid!r}")
        key = cell_key(grid)
        row = {m: _trial_number(trial, ("final", m)) for m in _TRIAL_METRICS}
        row["wall_time_s"] = _trial_number(trial, ("wall_time_s",))
        row["train_val_accuracy_gap"] = row["train_accuracy"] - row["val_accuracy"]
        row["seed"] = seed
        row["id"] = str(tid)
        cell = cells.setdefault(key, {"grid": dict(sorted(grid.items())), "by_act": {}})
        runs = cell["by_act"].setdefault(act, [])
        if any(r["seed"] == seed for r in runs):
            raise ValueError(
                f"trial {tid!r}: duplicate of activation {act!r}, seed {seed} in cell {key!r}; "
                "remove the duplicate record"
            )
        runs.append(row)

    metrics = (*_TRIAL_METRICS, "wall_time_s", "train_val_accuracy_gap")
    out_cells: dict[str, Any] = {}
    for key in sorted(cells):
        cell = cells[key]
        acts: dict[str, Any] = {}
        for act in sorted(cell["by_act"]):
            runs = sorted(cell["by_act"][act], key=lambda r: r["seed"])
            entry: dict[str, Any] = {
                "n": len(runs),
                "seeds": [r["seed"] for r in runs],
                "trial_ids": [r["id"] for r in runs],
            }
            for m in metrics:
                entry[m] = describe([r[m] for r in runs])
            acts[act] = dict(sorted(entry.items()))
        comparison = compare_groups(
            {
                act: [r["val_loss"] for r in sorted(cell["by_act"][act], key=lambda r: r["seed"])]
                for act in sorted(cell["by_act"])
            },
            lower_is_better=True,
            alpha=alpha,
            power=power,
        )
        out_cells[key] = {
            "activations": acts,
            "grid": cell["grid"],
            "val_loss_comparison": comparison,
        }
    return {"cells": out_cells, "n_trials": len(trials)}
