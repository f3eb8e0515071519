"""The rules of the replication verdict: one claim of the report against our statistics.

Each rule returns ``(verdict, detail)``: **supports**, **contradicts** or **cannot decide**, and
the numbers behind it. All work on our own statistics (:mod:`reproduce.stats`) with three seeds
per activation, so every rule says how it decides with n = 3:

- ``best`` (an activation has the lowest, or highest, mean): supports if it has our most extreme
  mean and Tukey HSD separates it from every other activation (p < 0.05); contradicts if another
  activation is significantly more extreme; otherwise cannot decide.
- ``percent`` (one mean is X% above another): supports if X lies inside our 95% Tukey interval of
  the same difference, contradicts if outside.
- ``significance`` (ANOVA p < 0.05): supports if ours is significant; contradicts if ours is not
  although our minimum detectable difference (80% power) is smaller than the claimed effect;
  otherwise cannot decide.
- ``value`` (a mean equals V): supports if V lies inside our 95% Student-t interval of that mean
  (n = 3, 2 degrees of freedom), contradicts if outside.
- ``pd-rank`` (an activation has the lowest, or highest, relative PD): supports if each of its
  seed pairs lies beyond every pair of every other activation; contradicts if another
  activation's pairs all lie beyond its; otherwise cannot decide. Three models give three seed
  pairs that share models, so there is no interval: the pairs' range stands for the spread.
- ``pd-range`` (the lowest or highest activation PD, or their spread, equals V): with each
  activation's mean known only to within the range of its seed pairs, the lowest activation
  mean can be anywhere from the smallest pair minimum to the smallest pair maximum (likewise the
  highest); supports if V lies in that span, contradicts if outside.
- ``count`` (a parameter count or other exact quantity): supports if ours rounds to the printed
  figure, contradicts otherwise.
- ``cross-scale`` (a claim comparing the partial and full scales): cannot decide unless both
  scales were run; the detail names what is missing.
"""

from __future__ import annotations

__all__ = [
    "ALPHA",
    "CONTRADICTS",
    "RULES",
    "SUPPORTS",
    "UNDECIDED",
    "combine",
    "extreme",
    "pd_range",
    "pd_rank",
    "percent",
    "significance",
    "tukey_pair",
    "value_in_ci",
]

SUPPORTS, CONTRADICTS, UNDECIDED = "supports", "contradicts", "cannot decide"
ALPHA = 0.05

# rule id -> the sentence the report prints under the verdict table
RULES = {
    "best": "best or worst activation: supports if it has our most extreme mean and Tukey HSD "
    "separates it from every other (p < 0.05); contradicts if another is significantly more "
    "extreme; otherwise cannot decide.",
    "percent": "percent difference: supports if the claimed figure lies inside our 95% Tukey "
    "interval of the same difference, contradicts if outside.",
    "significance": "significance: supports if our ANOVA has p < 0.05; contradicts if not although "
    "three seeds could detect (80% power) a smaller effect than the claimed one; otherwise "
    "cannot decide.",
    "value": "value of a mean: supports if it lies inside our 95% Student-t interval of that mean "
    "(n = 3), contradicts if outside.",
    "pd-rank": "PD ranking: supports if every seed pair of the activation lies beyond every pair "
    "of the others; contradicts if another's pairs all lie beyond its; otherwise cannot decide "
    "(three seed pairs share models: no interval, their range is the spread).",
    "pd-range": "PD range: each activation's mean PD is known to within the range of its three "
    "seed pairs, so the lowest (highest) activation mean lies between the smallest (largest) "
    "pair minimum and pair maximum; supports if the claimed figure is in that span, contradicts "
    "if outside.",
    "count": "exact quantity: supports if ours rounds to the printed figure, contradicts "
    "otherwise.",
    "cross-scale": "claims comparing the two scales: cannot decide until both scales have been "
    "run; the detail names what is missing.",
    "not-comparable": "wall-clock times on other hardware: cannot decide.",
}


def tukey_pair(comparison: dict, a: str, b: str) -> dict | None:
    """The Tukey pair of ``a`` and ``b`` oriented as mean(a) - mean(b), or None."""
    for pair in comparison["pairs"]:
        if (pair["a"], pair["b"]) == (a, b):
            return pair
        if (pair["a"], pair["b"]) == (b, a):
            return dict(
                pair,
                a=a,
                b=b,
                mean_diff=-pair["mean_diff"],
                tukey_ci_low=-pair["tukey_ci_high"],
                tukey_ci_high=-pair["tukey_ci_low"],
            )
    return None


def extreme(comparison: dict, claimed: str, lowest: bool, what: str) -> tuple[str, str]:
    """Rule ``best``: "``claimed`` has the lowest (or highest) mean" from Tukey pairs."""
    by_mean = sorted(comparison["groups"], key=lambda n: comparison["groups"][n]["mean"])
    names = by_mean if lowest else by_mean[::-1]
    if claimed not in names:
        return UNDECIDED, f"{claimed} is not in our sweep"
    if comparison["anova"] is None:
        return UNDECIDED, f"our tests are undefined ({comparison['undefined'].get('anova')})"
    sign = 1 if lowest else -1
    others = [n for n in names if n != claimed]
    pairs = {n: tukey_pair(comparison, claimed, n) for n in others}
    beats_all = all(sign * p["mean_diff"] < 0 and p["tukey_p"] < ALPHA for p in pairs.values())
    beaten_by = [n for n, p in pairs.items() if sign * p["mean_diff"] > 0 and p["tukey_p"] < ALPHA]
    detail = f"our {what}: {names[0]} (order {', '.join(names)}); Tukey p vs {claimed}: " + (
        ", ".join(f"{n} {pairs[n]['tukey_p']:.3g}" for n in others)
    )
    if beats_all:
        return SUPPORTS, detail
    word = "lower" if lowest else "higher"
    if beaten_by:
        return CONTRADICTS, detail + f"; significantly {word}: " + ", ".join(beaten_by)
    ahead = [n for n in others if pairs[n]["tukey_p"] < ALPHA]
    level = [n for n in others if n not in ahead]
    if not ahead:
        return UNDECIDED, detail + f"; not separated from any (every Tukey p >= {ALPHA})"
    return UNDECIDED, (
        f"{detail}; {claimed} significantly {word} than {', '.join(ahead)} only, not "
        f"separated from {', '.join(level)} (Tukey p >= {ALPHA})"
    )


def percent(comparison: dict, worse: str, best: str, claimed: float) -> tuple[str, str]:
    """Rule ``percent``: mean(worse) is ``claimed`` percent above mean(best)."""
    pair = tukey_pair(comparison, worse, best)
    if pair is None:
        return UNDECIDED, f"{worse} or {best} is not in our sweep"
    base = comparison["groups"][best]["mean"]
    pct = 100 * pair["mean_diff"] / base
    low, high = 100 * pair["tukey_ci_low"] / base, 100 * pair["tukey_ci_high"] / base
    verdict = SUPPORTS if low <= claimed <= high else CONTRADICTS
    return verdict, (
        f"ours: {pct:+.2f}% (95% Tukey CI {low:+.2f}% to {high:+.2f}%), claimed {claimed:+.1f}%"
    )


def significance(comparison: dict, claimed_effect_pct: float) -> tuple[str, str]:
    """Rule ``significance``: the groups differ (one-way ANOVA, p < 0.05)."""
    anova, mdd = comparison["anova"], comparison["mdd"]
    if anova is None:
        return UNDECIDED, f"our ANOVA is undefined ({comparison['undefined'].get('anova')})"
    detail = (
        f"ours: F({anova['df_between']}, {anova['df_within']}) = {anova['F']:.2f}, "
        f"p = {anova['p']:.3g}"
    )
    if anova["p"] < ALPHA:
        return SUPPORTS, detail
    if mdd is not None and mdd["percent_of_best"] < claimed_effect_pct:
        return CONTRADICTS, detail + (
            f"; we could detect {mdd['percent_of_best']:.2f}% (80% power), smaller than the "
            f"claimed {claimed_effect_pct:.1f}%"
        )
    return UNDECIDED, detail + "; too few seeds to detect the claimed effect"


def value_in_ci(summary: dict | None, name: str, claimed: float, fmt: str) -> tuple[str, str]:
    """Rule ``value``: ``claimed`` lies in the 95% t interval of ``name``'s mean.

    ``summary`` is :func:`reproduce.stats.describe` of that group (None: not in our sweep);
    ``fmt`` formats the numbers (e.g. ``".4f"``).
    """
    if summary is None:
        return UNDECIDED, f"{name} is not in our sweep"
    low, high = summary["ci_low"], summary["ci_high"]
    if low is None:
        return UNDECIDED, f"{name}: no interval ({summary['undefined'].get('ci')})"
    verdict = SUPPORTS if low <= claimed <= high else CONTRADICTS
    return verdict, (
        f"ours: {name} mean {summary['mean']:{fmt}} (95% CI {low:{fmt}} to {high:{fmt}}, "
        f"n = {summary['n']}), claimed {claimed:{fmt}}"
    )


def _pair_values(pd: dict, groups: list[str]) -> dict[str, list[float]]:
    return {g: [p["relative_pd"] for p in pd[g]["pairs"].values()] for g in groups if g in pd}


def pd_rank(pd: dict, groups: list[str], claimed: str, lowest: bool) -> tuple[str, str]:
    """Rule ``pd-rank``: ``claimed`` has the lowest (or highest) relative PD."""
    values = _pair_values(pd, groups)
    if claimed not in values or len(values) < 2:
        return UNDECIDED, f"relative PD of {claimed} or the others is not in our results"
    means = {g: pd[g]["mean"]["relative_pd"] for g in values}
    order = sorted(values, key=lambda g: (means[g] if lowest else -means[g], g))
    detail = "ours (mean over seed pairs): " + ", ".join(f"{g} {means[g]:.4f}" for g in order)

    def beyond(a: str, b: str) -> bool:  # every pair of a is more extreme than every pair of b
        return max(values[a]) < min(values[b]) if lowest else min(values[a]) > max(values[b])

    others = [g for g in values if g != claimed]
    if all(beyond(claimed, g) for g in others):
        return SUPPORTS, detail
    if any(beyond(g, claimed) for g in others):
        return CONTRADICTS, detail
    return UNDECIDED, detail + "; pair ranges overlap"


def pd_spans(pd: dict, groups: list[str]) -> dict | None:
    """Where the lowest and highest activation mean PDs, and their spread, can lie.

    Returns ``{"lowest": (low, high), "highest": (low, high), "spread_pct": (low, high),
    "means": {group: mean}}`` from each group's seed-pair range, or None with fewer than two
    groups. The spread is (highest - lowest) / lowest in percent, bounded by the spans.
    """
    values = _pair_values(pd, groups)
    if len(values) < 2:
        return None
    lows, highs = [min(v) for v in values.values()], [max(v) for v in values.values()]
    lowest, highest = (min(lows), min(highs)), (max(lows), max(highs))
    spread_low = max(0.0, 100 * (highest[0] - lowest[1]) / lowest[1])
    spread_high = 100 * (highest[1] - lowest[0]) / lowest[0]
    means = {g: pd[g]["mean"]["relative_pd"] for g in values}
    return {
        "lowest": lowest,
        "highest": highest,
        "spread_pct": (spread_low, spread_high),
        "means": means,
    }


def pd_range(spans: dict | None, which: str, claimed: float) -> tuple[str, str]:
    """Rule ``pd-range``: ``claimed`` against :func:`pd_spans`'s ``which`` span."""
    if spans is None:
        return UNDECIDED, "relative PD of fewer than two activations in our results"
    low, high = spans[which]
    means = spans["means"]
    order = sorted(means, key=lambda g: (means[g], g))
    fmt = ".1f" if which == "spread_pct" else ".4f"
    unit = "%" if which == "spread_pct" else ""
    detail = (
        f"ours: {which.replace('_pct', '').replace('_', ' ')} between {low:{fmt}}{unit} and "
        f"{high:{fmt}}{unit} given the seed-pair ranges (means: "
        + ", ".join(f"{g} {means[g]:.4f}" for g in order)
        + f"), claimed {claimed:{fmt}}{unit}"
    )
    return (SUPPORTS if low <= claimed <= high else CONTRADICTS), detail


def combine(*parts: tuple[str, str]) -> tuple[str, str]:
    """One verdict from several rules: contradicts if any part does, supports if all do."""
    verdicts = [v for v, _ in parts]
    if CONTRADICTS in verdicts:
        verdict = CONTRADICTS
    elif all(v == SUPPORTS for v in verdicts):
        verdict = SUPPORTS
    else:
        verdict = UNDECIDED
    return verdict, "; ".join(f"[{v}] {d}" for v, d in parts)
