"""A sweep's statistics: per grid cell and activation, the summaries of every final metric, and
the val-loss comparison of the activations (:func:`analyze_sweep`, stored in results.json)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from reproduce.stats.groups import compare_groups
from reproduce.stats.sample import describe

__all__ = ["analyze_sweep", "cell_key"]


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
                "(trial records: reproduce/schemas/results.schema.json)"
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
        trials: trial records (reproduce/schemas/results.schema.json): uses ``id``,
            ``activation``, ``seed``, ``grid`` (missing or ``{}`` = no grid),
            ``final.val_loss`` (nats), ``final.val_accuracy`` / ``final.train_accuracy``
            (percent) and ``wall_time_s``.
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
    cells = _rows_by_cell(trials)
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


def _rows_by_cell(trials: list[dict]) -> dict[str, dict[str, Any]]:
    """Cell key -> ``{"grid", "by_act": {activation: [row]}}``, a row holding a trial's final
    metrics, wall time, accuracy gap, seed and id; ValueError (naming the trial) for a missing or
    non-finite field or a duplicate cell, activation and seed."""
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
    return cells
