"""The figures' numbers, from results.json alone: what each figure plots, per grid cell and
activation, in the report's one order (:func:`activation_order`). No matplotlib here: the
numbers the figures draw can be read and tested without drawing them."""

from __future__ import annotations

import numpy as np

from reproduce.config import group_id
from reproduce.stats import cell_key

__all__ = [
    "accuracy_gap_series",
    "activation_order",
    "final_val_loss_series",
    "in_order",
    "loss_series",
    "relative_pd_series",
    "stat_cells",
    "zoom_start",
]


def activation_order(data: dict) -> list[str]:
    """The activations of results.json ``data`` in the order its config lists them
    (``config.sweep.activations``), then any other activation its trials have, sorted: the one
    order of every figure and every section of the report."""
    present = {t["activation"] for t in data["trials"]}
    listed = [a for a in data["config"]["sweep"]["activations"] if a in present]
    return listed + sorted(present - set(listed))


def in_order(names, order: list[str] | None) -> list[str]:
    """``names`` in ``order``, then those ``order`` leaves out, sorted."""
    order = list(order or [])
    known = [n for n in order if n in names]
    return known + sorted(set(names) - set(known))


def stat_cells(data: dict) -> list[tuple[str, dict]]:
    """(cell key, statistics cell) in sorted key order."""
    return sorted(data["statistics"]["cells"].items())


def _trials_by(trials: list[dict]) -> dict[str, dict[str, list[dict]]]:
    """cell key -> activation -> its trials sorted by seed."""
    out: dict[str, dict[str, list[dict]]] = {}
    for trial in trials:
        key = cell_key(trial.get("grid") or {})
        out.setdefault(key, {}).setdefault(trial["activation"], []).append(trial)
    for by_act in out.values():
        for runs in by_act.values():
            runs.sort(key=lambda t: t["seed"])
    return out


def loss_series(
    trials: list[dict], metric: str, order: list[str] | None = None
) -> dict[str, dict[str, dict]]:
    """The loss curves as plotted: per cell and activation, per evaluation step, the mean and the
    range over seeds.

    Args:
        trials: results.json trial records (their ``curves``).
        metric: ``"train_loss"`` or ``"val_loss"`` (nats per character).
        order: activations in the order to list them (:func:`activation_order`); those it
            leaves out follow, sorted (all sorted without it).

    Returns:
        cell key -> activation (in ``order``) -> ``{"step": [int], "mean": [float], "min": [float],
        "max": [float], "n": [int]}``, steps ascending; ``mean`` is ``numpy.mean`` over the seeds
        that evaluated at that step (``n`` of them), ``min``/``max`` their extremes.

    Raises:
        ValueError: ``metric`` is not a loss field.
    """
    if metric not in ("train_loss", "val_loss"):
        raise ValueError(f"metric must be 'train_loss' or 'val_loss', got {metric!r}")
    out: dict[str, dict[str, dict]] = {}
    for key, by_act in sorted(_trials_by(trials).items()):
        out[key] = {}
        for activation in in_order(by_act, order):
            runs = by_act[activation]
            by_step: dict[int, list[float]] = {}
            for trial in runs:
                for point in trial["curves"]:
                    if metric in point:  # not in a study-protocol evaluation that was skipped
                        by_step.setdefault(int(point["step"]), []).append(float(point[metric]))
            steps = sorted(by_step)
            values = [np.asarray(by_step[s], dtype=np.float64) for s in steps]
            out[key][activation] = {
                "step": steps,
                "mean": [float(np.mean(v)) for v in values],
                "min": [float(np.min(v)) for v in values],
                "max": [float(np.max(v)) for v in values],
                "n": [int(v.size) for v in values],
            }
    return out


def _per_trial_summary(data: dict, stat: str, value) -> dict[str, dict[str, dict]]:
    """Per cell and activation (in :func:`activation_order`): every trial's value and the
    stored summary ``stat``."""
    by_cell = _trials_by(data["trials"])
    order = activation_order(data)
    out: dict[str, dict[str, dict]] = {}
    for key, cell in stat_cells(data):
        out[key] = {}
        for activation in in_order(cell["activations"], order):
            runs = by_cell.get(key, {}).get(activation, [])
            summary = cell["activations"][activation][stat]
            out[key][activation] = {
                "seeds": [t["seed"] for t in runs],
                "values": [float(value(t)) for t in runs],
                "mean": summary["mean"],
                "sem": summary["sem"],
                "n": summary["n"],
                "ci_low": summary["ci_low"],
                "ci_high": summary["ci_high"],
                "ci_level": summary["ci_level"],
            }
    return out


def final_val_loss_series(data: dict) -> dict[str, dict[str, dict]]:
    """Final val loss as plotted: cell key -> activation (in :func:`activation_order`) ->
    ``{"seeds", "values"}`` (each trial's ``final.val_loss``, nats) and ``{"mean", "sem", "n",
    "ci_low", "ci_high", "ci_level"}`` copied from results.json's ``statistics`` (the interval is
    None where undefined: n = 1 or zero variance)."""
    return _per_trial_summary(data, "val_loss", lambda t: t["final"]["val_loss"])


def accuracy_gap_series(data: dict) -> dict[str, dict[str, dict]]:
    """Train minus val accuracy as plotted (percentage points), like
    :func:`final_val_loss_series`: each trial's ``final.train_accuracy - final.val_accuracy`` and
    the stored ``train_val_accuracy_gap`` summary."""
    return _per_trial_summary(
        data,
        "train_val_accuracy_gap",
        lambda t: t["final"]["train_accuracy"] - t["final"]["val_accuracy"],
    )


def relative_pd_series(data: dict) -> dict[str, dict[str, dict]]:
    """Relative PD as plotted: cell key -> activation (in :func:`activation_order`) ->
    ``{"group", "pairs": [pair key], "values": [relative PD of each seed pair], "mean": mean over
    pairs}`` from results.json's ``prediction_difference``; activations without a seed pair are
    left out."""
    pd = data["prediction_difference"]
    order = activation_order(data)
    out: dict[str, dict[str, dict]] = {}
    for key, cell in stat_cells(data):
        out[key] = {}
        for activation in in_order(cell["activations"], order):
            group = group_id(activation, cell["grid"])
            entry = pd.get(group)
            if not entry:
                continue
            pairs = sorted(entry["pairs"])
            out[key][activation] = {
                "group": group,
                "pairs": pairs,
                "values": [float(entry["pairs"][p]["relative_pd"]) for p in pairs],
                "mean": float(entry["mean"]["relative_pd"]),
            }
    return out


def zoom_start(steps: list[int]) -> int:
    """First evaluation step shown in a loss-curve figure's zoomed (right) panel: the first step
    at or after half the last one, or the second-to-last step where that leaves fewer than two
    evaluations (the first step when there is only one)."""
    if len(steps) < 2:
        return steps[0] if steps else 0
    later = [s for s in steps if s >= steps[-1] / 2]
    return later[0] if len(later) >= 2 else steps[-2]
