"""The figures' titles and captions, with the sweep's own numbers (:func:`interval_note`)."""

from __future__ import annotations

from reproduce.figures.series import accuracy_gap_series, final_val_loss_series, stat_cells

__all__ = ["captions", "interval_note"]


def interval_note(series: dict[str, dict[str, dict]], zero_line: bool = False) -> str:
    """What the whiskers of a points figure span, in the sweep's own numbers: the multiple of
    the standard error that each n's 95% Student-t interval of the mean is (``(ci_high - mean) /
    sem`` of the stored statistics), and, with ``zero_line``, which activations' intervals reach
    below 0 although every one of their trials is above 0 (the interval bounds the mean over
    seeds, not the trials, and with few seeds it is much wider than their spread).

    Args:
        series: :func:`final_val_loss_series` or :func:`accuracy_gap_series`.
        zero_line: also name the intervals that cross 0 above positive points.

    Returns:
        one or two sentences, each with a leading space, or "" when no interval is defined.
    """
    multiples: dict[int, list[float]] = {}
    crossing = []
    for by_act in series.values():
        for activation, s in by_act.items():
            if s["ci_low"] is None or s["ci_high"] is None or not s["sem"]:
                continue
            multiples.setdefault(s["n"], []).append((s["ci_high"] - s["mean"]) / s["sem"])
            if zero_line and s["ci_low"] < 0.0 < min(s["values"]) and activation not in crossing:
                crossing.append(activation)
    if not multiples:
        return ""
    parts = [
        f"with {n} seeds the interval is the mean ± {max(m):.2f} standard errors (Student t, "
        f"{n - 1} degree{'s' if n != 2 else ''} of freedom)"
        for n, m in sorted(multiples.items())
    ]
    note = f" The whiskers bound the mean over seeds, not the trials: {'; '.join(parts)}."
    if crossing:
        names = crossing[0] if len(crossing) == 1 else ", ".join(crossing[:-1])
        names += f" and {crossing[-1]}" if len(crossing) > 1 else ""
        one = len(crossing) == 1
        note += (
            f" Here the interval{'' if one else 's'} of {names} reach{'es' if one else ''} below 0"
            f" although each of {'its' if one else 'their'} trials is above 0: with so few seeds"
            " the interval of the mean is wider than the trials' spread."
        )
    return note


def captions(data: dict) -> dict[str, tuple[str, str]]:
    """Figure name -> (title, caption)."""
    cells = len(data["statistics"]["cells"])
    facets = " One panel per grid cell." if cells > 1 else ""
    rows = " One row per grid cell." if cells > 1 else ""
    band = (
        "Line: mean over the activation's seeds at each evaluation; shaded band: range "
        "(minimum to maximum) over those seeds. Left: every evaluation; right: the same from "
        "half-way through training (the first evaluations' high loss flattens the left panel)."
    )
    undefined = any(
        stats[m]["ci_low"] is None
        for _, cell in stat_cells(data)
        for stats in cell["activations"].values()
        for m in ("val_loss", "train_val_accuracy_gap")
    )
    no_ci = " No interval is drawn where it is undefined (n = 1 or zero variance)." * undefined
    interval = (
        "Points: each trial (seed); black tick with whiskers: mean over seeds with its 95% "
        "Student-t confidence interval from results.json's statistics." + no_ci
    )
    return {
        "train_loss_curves": (
            "Training loss curves",
            f"Train loss (nats per character, on the fixed training sample) against step. "
            f"{band}{rows}",
        ),
        "val_loss_curves": (
            "Validation loss curves",
            f"Val loss (nats per character, whole validation split) against step. {band}{rows}",
        ),
        "final_val_loss": (
            "Final validation loss per activation",
            f"Final val loss (nats per character). {interval}"
            f"{interval_note(final_val_loss_series(data))}{facets}",
        ),
        "accuracy_gap": (
            "Train − val accuracy gap per activation",
            "Final train accuracy minus val accuracy (percentage points; above 0 means better on "
            f"training text). {interval}"
            f"{interval_note(accuracy_gap_series(data), zero_line=True)}{facets}",
        ),
        "relative_pd": (
            "Relative prediction difference between seeds",
            "Relative PD (Shamir, Lin & Coviello 2020) between the models of two seeds of the "
            "same activation. Points: each seed pair; bar: mean over pairs (pairs share models, "
            f"so no interval is given).{facets}",
        ),
    }
