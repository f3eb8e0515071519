"""``python -m reproduce compare OURS REFERENCE``: the replication verdict.

For each headline claim of the published report (which activation is best, by how much, whether
the difference is significant, the overfitting ranking, the reproducibility ranking) it states
what our sweep shows, with intervals, and whether that **supports**, **contradicts** or **cannot
decide** the claim. The rules, all on our own statistics (:mod:`reproduce.stats`):

- best activation: supports if the claimed one has our lowest mean val loss and Tukey HSD
  separates it from every other (p < 0.05); contradicts if another activation is significantly
  better than it; otherwise cannot decide.
- by how much (percent of the best mean): supports if the claimed percentage lies inside our
  95% Tukey interval of the same difference, contradicts if outside.
- significance (ANOVA p < 0.05): supports if ours is significant; contradicts if ours is not
  although our minimum detectable difference is smaller than the claimed effect; otherwise
  cannot decide.
- overfitting ranking (train - val accuracy gap): as "best activation", on the gaps.
- reproducibility ranking (relative PD): supports if every seed pair of the claimed activation
  lies beyond every pair of each other activation; contradicts if another activation's pairs all
  lie beyond the claimed one's; otherwise cannot decide (pairs share models, so no interval).

A sweep at another scale than the report's can only say what holds at its own scale: the
verdict names both scales.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from reproduce import audit, results, stats
from reproduce.cli import UserError

__all__ = ["SUPPORTS", "CONTRADICTS", "UNDECIDED", "load_reference", "replication", "register"]

SUPPORTS, CONTRADICTS, UNDECIDED = "supports", "contradicts", "cannot decide"
ALPHA = 0.05


def _claims(reference: dict) -> dict[str, dict]:
    return {c["id"]: c for c in reference["claims"]}


def _tukey(comparison: dict, a: str, b: str) -> dict | None:
    """The Tukey pair of ``a`` and ``b`` oriented as mean(a) - mean(b)."""
    for pair in comparison["pairs"]:
        if (pair["a"], pair["b"]) == (a, b):
            return pair
        if (pair["a"], pair["b"]) == (b, a):
            flipped = dict(
                pair,
                a=a,
                b=b,
                mean_diff=-pair["mean_diff"],
                tukey_ci_low=-pair["tukey_ci_high"],
                tukey_ci_high=-pair["tukey_ci_low"],
            )
            return flipped
    return None


def _extreme_verdict(comparison: dict, claimed: str, lowest: bool, what: str) -> tuple[str, str]:
    """Verdict on "``claimed`` has the lowest (or highest) mean" from Tukey pairs."""
    names = comparison["ranking"] if lowest else comparison["ranking"][::-1]
    if claimed not in names:
        return UNDECIDED, f"{claimed} is not in our sweep"
    if comparison["anova"] is None:
        return UNDECIDED, f"our tests are undefined ({comparison['undefined']})"
    sign = 1 if lowest else -1
    others = [n for n in names if n != claimed]
    pairs = {n: _tukey(comparison, claimed, n) for n in others}
    beats_all = all(sign * p["mean_diff"] < 0 and p["tukey_p"] < ALPHA for p in pairs.values())
    beaten_by = [n for n, p in pairs.items() if sign * p["mean_diff"] > 0 and p["tukey_p"] < ALPHA]
    ours = names[0]
    detail = f"our {what}: {ours} (order {', '.join(names)}); Tukey p vs {claimed}: " + ", ".join(
        f"{n} {pairs[n]['tukey_p']:.3g}" for n in others
    )
    if beats_all:
        return SUPPORTS, detail
    if beaten_by:
        return (
            CONTRADICTS,
            detail + f"; significantly {'lower' if lowest else 'higher'}: " + ", ".join(beaten_by),
        )
    return UNDECIDED, detail + "; no significant separation"


def _percent_verdict(comparison: dict, worse: str, best: str, claimed: float) -> tuple[str, str]:
    pair = _tukey(comparison, worse, best)
    if pair is None:
        return UNDECIDED, f"{worse} or {best} is not in our sweep"
    base = comparison["groups"][best]["mean"]
    pct = 100 * pair["mean_diff"] / base
    low, high = 100 * pair["tukey_ci_low"] / base, 100 * pair["tukey_ci_high"] / base
    verdict = SUPPORTS if low <= claimed <= high else CONTRADICTS
    return verdict, (
        f"ours: {pct:+.2f}% (95% Tukey CI {low:+.2f}% to {high:+.2f}%), claimed {claimed:+.1f}%"
    )


def _significance_verdict(comparison: dict, claimed_effect_pct: float) -> tuple[str, str]:
    anova, mdd = comparison["anova"], comparison["mdd"]
    if anova is None:
        return UNDECIDED, f"our ANOVA is undefined ({comparison['undefined']})"
    detail = (
        f"ours: F({anova['df_between']}, {anova['df_within']}) = {anova['F']:.2f}, "
        f"p = {anova['p']:.3g}"
    )
    if anova["p"] < ALPHA:
        return SUPPORTS, detail
    if mdd is not None and mdd["percent_of_best"] < claimed_effect_pct:
        return CONTRADICTS, detail + (
            f"; we could detect {mdd['percent_of_best']:.2f}% "
            f"(80% power), smaller than the claimed "
            f"{claimed_effect_pct:.1f}%"
        )
    return UNDECIDED, detail + "; too few seeds to detect the claimed effect"


def _pd_verdict(pd: dict, groups: list[str], claimed: str, lowest: bool) -> tuple[str, str]:
    present = [g for g in groups if g in pd]
    if claimed not in present or len(present) < 2:
        return UNDECIDED, f"relative PD of {claimed} or the others is not in our results"
    values = {g: [p["relative_pd"] for p in pd[g]["pairs"].values()] for g in present}
    means = {g: pd[g]["mean"]["relative_pd"] for g in present}
    order = sorted(present, key=lambda g: (means[g] if lowest else -means[g], g))
    detail = "ours (mean over seed pairs): " + ", ".join(f"{g} {means[g]:.4f}" for g in order)

    def beyond(a: str, b: str) -> bool:  # every pair of a is more extreme than every pair of b
        return max(values[a]) < min(values[b]) if lowest else min(values[a]) > max(values[b])

    others = [g for g in present if g != claimed]
    if all(beyond(claimed, g) for g in others):
        return SUPPORTS, detail
    if any(beyond(g, claimed) for g in others):
        return CONTRADICTS, detail
    return UNDECIDED, detail + "; pair ranges overlap"


def replication(ours: dict, reference: dict) -> dict:
    """The replication verdict of our results.json against a reference file's claims.

    Returns:
        ``{"reference", "ours", "claims": [{"id", "claim", "claimed", "verdict", "detail"}]}``;
        only our grid cell "all" (or the first cell) is compared.
    """
    claims = _claims(reference)
    cells = ours["statistics"]["cells"]
    cell_key = "all" if "all" in cells else sorted(cells)[0]
    # only the report's own activations are compared, as the report compared them
    names = set(reference["config"]["training"]["activations"])
    trials = [
        t
        for t in ours["trials"]
        if stats.cell_key(t["grid"]) == cell_key and t["activation"] in names
    ]
    losses: dict[str, list[float]] = {}
    gaps: dict[str, list[float]] = {}
    for t in trials:
        losses.setdefault(t["activation"], []).append(t["final"]["val_loss"])
        gaps.setdefault(t["activation"], []).append(
            t["final"]["train_accuracy"] - t["final"]["val_accuracy"]
        )
    if not losses:
        raise UserError(f"our sweep has none of the report's activations {sorted(names)}")
    comparison = stats.compare_groups(losses, lower_is_better=True)
    gap_comparison = stats.compare_groups(gaps, lower_is_better=True)
    pd = {
        t["group"]: ours["prediction_difference"][t["group"]]
        for t in trials
        if t["group"] in ours["prediction_difference"]
    }
    groups = sorted({t["group"] for t in trials})
    rows = []

    def add(claim_id: str, text: str, verdict_detail: tuple[str, str]) -> None:
        claim = claims.get(claim_id)
        verdict, detail = verdict_detail
        rows.append(
            {
                "id": claim_id,
                "claim": text,
                "claimed": None if claim is None else claim["printed"],
                "verdict": verdict,
                "detail": detail,
            }
        )

    add(
        "swish-best-val-loss",
        "Swish has the lowest val loss",
        _extreme_verdict(comparison, "swish", True, "lowest mean val loss"),
    )
    for other, name in (("relu", "ReLU"), ("gelu", "GELU")):
        claim = claims[f"{other}-vs-swish-val-loss-pct"]
        add(
            claim["id"],
            f"{name}'s val loss is {claim['claimed']}% above Swish's",
            _percent_verdict(comparison, other, "swish", claim["claimed"]),
        )
    add(
        "val-loss-anova-significant",
        "The activations differ significantly in val loss (ANOVA)",
        _significance_verdict(comparison, claims["relu-vs-swish-val-loss-pct"]["claimed"]),
    )
    add(
        "swish-least-overfitting",
        "Swish overfits least (smallest train-val accuracy gap)",
        _extreme_verdict(gap_comparison, "swish", True, "smallest gap"),
    )
    add(
        "relu-most-overfitting",
        "ReLU overfits most (largest train-val accuracy gap)",
        _extreme_verdict(gap_comparison, "relu", False, "largest gap"),
    )
    add(
        "swish-best-pd",
        "Swish is the most reproducible (lowest relative PD)",
        _pd_verdict(pd, groups, "swish", True),
    )
    add(
        "relu-worst-pd",
        "ReLU is the least reproducible (highest relative PD)",
        _pd_verdict(pd, groups, "relu", False),
    )
    n_params = sorted({t["n_params"] for t in ours["trials"]})
    model = ours["config"]["model"]
    ref_cfg = reference["config"]
    return {
        "reference": {
            "title": reference["source"].get("title"),
            "sha256": reference["source"].get("sha256"),
            "scale": _scale_text(ref_cfg),
        },
        "ours": {
            "name": ours["config"]["name"],
            "cell": cell_key,
            "activations": sorted(losses),
            "n_params": n_params,
            "scale": f"{model.get('n_layer')} layers x {model.get('n_embd')}, "
            f"{ours['config']['train'].get('max_iters')} iterations, "
            f"{', '.join(f'{n:,}' for n in n_params)} parameters",
        },
        "claims": rows,
    }


def _scale_text(cfg: dict) -> str:
    """The reference file's scale: layers, width, iterations, parameters."""
    model, training = cfg["model"], cfg["training"]
    return (
        f"{model['n_layer']} layers x {model['n_embd']}, {training['max_iters']} "
        f"iterations, {model['n_params']:,} parameters"
    )


def format_verdict(verdict: dict) -> str:
    """The verdict as printed by the command."""
    lines = [
        f"replication of {verdict['reference']['title']} ({verdict['reference']['scale']})",
        f"by our sweep {verdict['ours']['name']!r} ({verdict['ours']['scale']})",
        "",
    ]
    for row in verdict["claims"]:
        lines.append(f"{row['verdict']:<14} {row['claim']}")
        lines.append(f"{'':<14} {row['detail']}")
    return "\n".join(lines)


def load_reference(path: str | Path) -> dict:
    """Read and validate a reference file (``reference.schema.json``).

    Raises:
        FileNotFoundError: no such file. UserError: unreadable or not JSON. ValueError: not
            valid against the schema.
    """
    if not Path(path).is_file():
        raise FileNotFoundError(f"reference file {path} not found")
    try:
        reference = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise UserError(f"cannot read reference {path}: {exc}") from None
    audit.validate_reference(reference, str(path))
    return reference


def _command(args: argparse.Namespace) -> int:
    ours = results.load_results(args.ours)
    print(format_verdict(replication(ours, load_reference(args.reference))))
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``compare`` command."""
    p = subparsers.add_parser("compare", help="replication verdict of a run against a report")
    p.add_argument("ours", help="our run or published directory (with results.json)")
    p.add_argument(
        "reference", help="reference file, e.g. artifacts/reference/charlm-full-20251208.json"
    )
    p.set_defaults(func=_command)
