"""The rows of the replication verdict: each claim of the report at one scale, judged by its
rule (:mod:`reproduce.verdicts`) on a set of trials.

:mod:`reproduce.compare` decides which scale a sweep is at and assembles the verdict from these
rows: :func:`full_rows` for the report's full-scale claims, :func:`partial_rows` for its
partial-scale ones, :func:`cross_scale_rows` for the claims that compare the two scales.
:func:`partial_trial_claims` judges the partial-scale claims that trained trials decide on any
set of trials (ours, or the study's own: :mod:`reproduce.likeforlike`). Each row is
``{"id", "claim", "claimed", "verdict", "detail", "rules"}``; details speak of "ours".
"""

from __future__ import annotations

from reproduce import stats
from reproduce import verdicts as rules
from reproduce.verdicts import CONTRADICTS, SUPPORTS, UNDECIDED

__all__ = [
    "CROSS_SCALE",
    "FULL",
    "PARTIAL",
    "PARTIAL_TRIAL_CLAIMS",
    "PD_CLAIMS",
    "Rows",
    "by_id",
    "cross_scale_rows",
    "full_rows",
    "partial_rows",
    "partial_trial_claims",
    "platform",
]


FULL, PARTIAL = "full", "partial"
# Claims that compare the partial and full scales (reference claim ids).
CROSS_SCALE = (
    "sensitivity-reduction-pct",
    "best-val-loss-change-pct",
    "best-val-acc-change-pct",
    "pd-change-pct",
    "time-ratio-range",
)


def by_id(reference: dict) -> dict[str, dict]:
    """The reference file's claims by id."""
    return {c["id"]: c for c in reference["claims"]}


class Rows(list):
    """Verdict rows: ``{"id", "claim", "claimed", "verdict", "detail", "rules"}``."""

    def __init__(self, claims: dict[str, dict]) -> None:
        super().__init__()
        self.claims = claims

    def add(self, claim_id, text, rule_ids, verdict_detail, claimed=None) -> None:
        claim = self.claims.get(claim_id)
        verdict, detail = verdict_detail
        if claimed is None and claim is not None:
            claimed = claim["printed"]
        self.append(
            {
                "id": claim_id,
                "claim": text,
                "claimed": claimed,
                "verdict": verdict,
                "detail": detail,
                "rules": list(rule_ids),
            }
        )


def by_activation(trials: list[dict], metric) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {}
    for t in trials:
        out.setdefault(t["activation"], []).append(metric(t["final"]))
    return out


def full_rows(rows: Rows, trials: list[dict], pd: dict, groups: list[str]) -> None:
    claims = rows.claims
    losses = by_activation(trials, lambda f: f["val_loss"])
    gaps = by_activation(trials, lambda f: f["train_accuracy"] - f["val_accuracy"])
    comparison = stats.compare_groups(losses, lower_is_better=True)
    gap_comparison = stats.compare_groups(gaps, lower_is_better=True)
    rows.add(
        "swish-best-val-loss",
        "Swish has the lowest val loss",
        ["best"],
        rules.extreme(comparison, "swish", True, "lowest mean val loss"),
    )
    for other, name in (("relu", "ReLU"), ("gelu", "GELU")):
        claim = claims[f"{other}-vs-swish-val-loss-pct"]
        rows.add(
            claim["id"],
            f"{name}'s val loss is {claim['claimed']}% above Swish's",
            ["percent"],
            rules.percent(comparison, other, "swish", claim["claimed"]),
        )
    rows.add(
        "val-loss-anova-significant",
        "The activations differ significantly in val loss (ANOVA)",
        ["significance"],
        rules.significance(comparison, claims["relu-vs-swish-val-loss-pct"]["claimed"]),
    )
    rows.add(
        "swish-least-overfitting",
        "Swish overfits least (smallest train-val accuracy gap)",
        ["best"],
        rules.extreme(gap_comparison, "swish", True, "smallest gap"),
    )
    rows.add(
        "relu-most-overfitting",
        "ReLU overfits most (largest train-val accuracy gap)",
        ["best"],
        rules.extreme(gap_comparison, "relu", False, "largest gap"),
    )
    rows.add(
        "swish-best-pd",
        "Swish is the most reproducible (lowest relative PD)",
        ["pd-rank"],
        rules.pd_rank(pd, groups, "swish", True),
    )
    rows.add(
        "relu-worst-pd",
        "ReLU is the least reproducible (highest relative PD)",
        ["pd-rank"],
        rules.pd_rank(pd, groups, "relu", False),
    )


# the partial-scale claims that trained trials decide (the others are counts and times)
PARTIAL_TRIAL_CLAIMS = (
    "partial-best-activation",
    "partial-worst-activation",
    "partial-best-val-loss",
    "partial-best-val-acc",
    "partial-min-pd",
    "partial-max-pd",
    "partial-pd-spread-pct",
)
PD_CLAIMS = PARTIAL_TRIAL_CLAIMS[4:]


def partial_trial_claims(
    trials: list[dict], pd: dict, groups: list[str], reference: dict
) -> list[dict]:
    """The verdicts on the report's partial-scale claims that trained trials decide
    (:data:`PARTIAL_TRIAL_CLAIMS`), of any set of trials: ours, or the study's own.

    Args:
        trials: ``{"activation", "final": {"val_loss", "val_accuracy"}}`` each.
        pd: group -> ``{"mean": {"relative_pd"}, "pairs": {pair: {"relative_pd"}}}`` (our
            results.json's ``prediction_difference``; any other PD measure in that form).
        groups: the groups whose PD counts.
        reference: the reference file (the claims and the partial scale's named activations).

    Returns:
        ``{"id", "claim", "claimed", "verdict", "detail", "rules"}`` per claim, in the order of
        :data:`PARTIAL_TRIAL_CLAIMS`; details speak of "ours" (:mod:`reproduce.verdicts`).
    """
    rows = Rows(by_id(reference))
    _partial_trial_rows(rows, trials, pd, groups, reference)
    return list(rows)


def partial_rows(rows: Rows, trials: list[dict], pd: dict, groups: list[str], ref: dict):
    _partial_trial_rows(rows, trials, pd, groups, ref)
    _partial_count_rows(rows, trials, ref)


def _partial_trial_rows(rows: Rows, trials: list[dict], pd: dict, groups: list[str], ref: dict):
    claims, partial = rows.claims, ref["config"]["partial_scale"]
    losses = stats.compare_groups(by_activation(trials, lambda f: f["val_loss"]))
    accuracy = stats.compare_groups(
        by_activation(trials, lambda f: f["val_accuracy"]), lower_is_better=False
    )
    best, worst = claims["partial-best-activation"], claims["partial-worst-activation"]
    rows.add(
        best["id"],
        f"{best['claimed']} has the lowest val loss",
        ["best"],
        rules.extreme(losses, best["claimed"], True, "lowest mean val loss"),
    )
    rows.add(
        worst["id"],
        f"{worst['claimed']} has the highest val loss",
        ["best"],
        rules.extreme(losses, worst["claimed"], False, "highest mean val loss"),
    )
    name, value = partial["best_val_loss_activation"], claims["partial-best-val-loss"]["claimed"]
    rows.add(
        "partial-best-val-loss",
        f"The best val loss is {value} ({name})",
        ["value"],
        rules.value_in_ci(losses["groups"].get(name), name, value, ".4f"),
    )
    name = partial["best_val_accuracy_activation"]
    value = claims["partial-best-val-acc"]["claimed"]
    rows.add(
        "partial-best-val-acc",
        f"{name} has the highest val accuracy, {value}%",
        ["best", "value"],
        rules.combine(
            rules.extreme(accuracy, name, False, "highest mean val accuracy"),
            rules.value_in_ci(accuracy["groups"].get(name), name, value, ".2f"),
        ),
    )
    spans = rules.pd_spans(pd, groups)
    for claim_id, which, text in (
        ("partial-min-pd", "lowest", "The lowest relative PD of an activation is {}"),
        ("partial-max-pd", "highest", "The highest relative PD of an activation is {}"),
        ("partial-pd-spread-pct", "spread_pct", "The PD spread across activations is {}%"),
    ):
        value = claims[claim_id]["claimed"]
        rows.add(claim_id, text.format(value), ["pd-range"], rules.pd_range(spans, which, value))


def _partial_count_rows(rows: Rows, trials: list[dict], ref: dict) -> None:
    claims, partial = rows.claims, ref["config"]["partial_scale"]
    n_params = sorted({t["n_params"] for t in trials})
    printed = claims["partial-n-params"]["claimed"]
    verdict = (
        SUPPORTS
        if [round(n / 1000) for n in n_params] == [round(printed / 1000)]
        else (CONTRADICTS)
    )
    model = trials[0]["model"] if trials and "model" in trials[0] else {}
    rows.add(
        "partial-n-params",
        "The partial model has 765K parameters",
        ["count"],
        (
            verdict,
            f"ours: {model.get('n_layer')} layers x {model.get('n_embd')} (the report's own "
            f"'3x shallower', '1.5x narrower') have {', '.join(f'{n:,}' for n in n_params)} "
            f"parameters, printed {printed:,.0f}",
        ),
    )
    low, high = partial["time_per_trial_s_range"]
    times = [t["wall_time_s"] for t in trials if t.get("wall_time_s") is not None]
    ours = f"{min(times):.0f}-{max(times):.0f} s" if times else "no times"
    rows.add(
        "partial-trial-time",
        f"A partial trial takes {low}-{high} s",
        ["not-comparable"],
        (
            UNDECIDED,
            f"ours: {ours} per trial, wall clock on {platform(trials)}; the report's ran"
            f" on {ref['config']['hardware']['gpu']}",
        ),
        claimed=f"{low}-{high} s",
    )
    full_params = ref["config"]["model"]["n_params"]
    ratio = full_params / n_params[0] if len(n_params) == 1 else None
    param_claim = claims["param-ratio"]
    if ratio is not None:
        verdict = SUPPORTS if round(ratio) == round(param_claim["claimed"]) else CONTRADICTS
        detail = f"ours: {full_params:,} / {n_params[0]:,} = {ratio:.2f}x (no training needed)"
        rows.add(
            param_claim["id"], "The full model is 14x the partial one", ["count"], (verdict, detail)
        )


def cross_scale_rows(rows: Rows, scale: str) -> None:
    other = PARTIAL if scale == FULL else FULL
    for claim_id in CROSS_SCALE:
        claim = rows.claims[claim_id]
        rows.add(
            claim_id,
            claim["about"][0].upper() + claim["about"][1:],
            ["cross-scale"],
            (
                UNDECIDED,
                f"needs our {other}-scale sweep (configs/{other}.toml) beside this "
                f"{scale}-scale one; none is given",
            ),
        )


def platform(trials: list[dict]) -> str:
    envs = {
        (t["environment"].get("device_name", "?"), t["train"].get("precision_used", "?"))
        for t in trials
        if "environment" in t and "train" in t
    }
    return "; ".join(f"{d} ({p})" for d, p in sorted(envs)) or "an unrecorded platform"
