"""The report's context: every number, ranking and significance word the templates show,
computed from results.json alone (:func:`context`); :mod:`reproduce.report` renders it.

Every section lists the activations in the config's order
(:func:`reproduce.figures.activation_order`), as the figures do; only the rank column and the
ranking sentences follow the results.
"""

from __future__ import annotations

import json

from charlm import platforms as platforms_mod
from reproduce import figures as figures_mod
from reproduce.config import MODEL_KEYS, TRAIN_KEYS, format_value, group_id

__all__ = ["ALPHA", "STUDY_STATED", "STUDY_UNSTATED", "context", "format_number", "format_p"]

ALPHA = 0.05  # "significant" means p < ALPHA by one-way ANOVA (reproduce.stats)

# What the published study ("Full-Scale CharLM Analysis Report", artifacts/reference/, its
# "Experimental Configuration") states of its settings, and the hyperparameters it leaves unstated
# (configs/full.toml takes nanoGPT's character-level Shakespeare values for those). Every other
# setting is a speed or bookkeeping choice of this package.
STUDY_STATED = frozenset(
    {
        "model.n_layer",
        "model.n_head",
        "model.n_embd",
        "model.block_size",
        "model.dropout",
        "train.max_iters",
        "train.batch_size",
        "train.lr",
        "train.eval_interval",
        "sweep.activations",
        "sweep.seeds",
    }
)
STUDY_UNSTATED = frozenset(
    {
        "model.bias",
        "model.dropout_sites",
        "train.min_lr",
        "train.warmup_iters",
        "train.lr_decay_iters",
        "train.beta1",
        "train.beta2",
        "train.weight_decay",
        "train.grad_clip",
        "train.precision",
    }
)
PRECISION_LABELS = {"fp32": "fp32", "bf16": "bf16 autocast"}


def format_number(value, digits: int = 4) -> str:
    """Fixed-point number, or an em dash for a missing value."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:.{digits}f}"


def format_p(p) -> str:
    if p is None:
        return "—"
    return f"{p:.1e}" if p < 1e-4 else f"{p:.4f}"


def _environment(trials: list[dict]) -> list[dict]:
    """Each environment field with its distinct values across trials (``values``) and how the
    report shows them (``text``): a CUDA or cuDNN version that is None is "not used" (a CPU
    trial), any other None an em dash."""
    keys = sorted({k for t in trials for k in t["environment"]})
    rows = []
    for key in keys:
        distinct = sorted({json.dumps(t["environment"].get(key)) for t in trials})
        values = [json.loads(v) for v in distinct]
        shown = [
            ("not used" if key in ("cuda", "cudnn") else "—") if v is None else str(v)
            for v in values
        ]
        rows.append({"key": key, "values": values, "text": ", ".join(shown)})
    return rows


def _platforms(trials: list[dict]) -> list[dict]:
    """The platforms the trials were trained on (one sweep may be merged from several
    machines, ``python -m reproduce merge``): one entry per distinct set of the bit-deciding
    keys (:data:`charlm.platforms.BIT_KEYS`) of the trials' records, ``{"platform":
    :func:`charlm.platforms.describe` of the first, "trials": ids}``, in order of first
    appearance in ``trials``."""
    out: dict[str, dict] = {}
    for t in trials:
        env = t["environment"]
        keys = platforms_mod.BIT_KEYS.get(env.get("device_type"), platforms_mod.BIT_KEYS["cpu"])
        key = json.dumps([env.get(k) for k in keys])
        entry = out.setdefault(key, {"platform": platforms_mod.describe(env), "trials": []})
        entry["trials"].append(t["id"])
    return list(out.values())


def _setting_text(value) -> str:
    """A setting's value as the settings table shows it: numbers as in trial ids (shortest
    round trip), booleans true/false, lists comma-separated, None "none"."""
    if value is None:
        return "none"
    if isinstance(value, list | tuple):
        return ", ".join(_setting_text(v) for v in value) if value else "(none)"
    if isinstance(value, dict):
        return "; ".join(f"{k}: {_setting_text(v)}" for k, v in sorted(value.items())) or "(none)"
    return format_value(value)


def _settings(data: dict, trials: list[dict], order: list[str]) -> list[dict]:
    """The settings table: every model and training setting the trials ran with (the trial
    records hold them all, defaults included), then the sweep's axes.

    Each row: ``setting`` (``section.key``), ``value`` (the distinct values across trials),
    ``source`` ("config": set in the sweep's config; "default": the package default;
    "resolved": chosen at run time from the configured value; "grid": a sweep.grid axis;
    "data": from the corpus) and ``study`` ("stated" or "not stated" by the published study,
    :data:`STUDY_STATED` / :data:`STUDY_UNSTATED`; "—" for a speed or bookkeeping setting).
    """
    config, grid = data["config"], data["config"]["sweep"].get("grid") or {}

    def study(name: str) -> str:
        if name in STUDY_STATED:
            return "stated"
        return "not stated" if name in STUDY_UNSTATED else "—"

    def row(section: str, key: str, record: str, source: str | None = None) -> dict:
        values = sorted({json.dumps(t[record].get(key)) for t in trials})
        if source is None:
            if key in grid:
                source = "grid"
            else:
                source = "config" if key in (config.get(section) or {}) else "default"
        name = f"{section}.{key}"
        text = ", ".join(_setting_text(json.loads(v)) for v in values)
        return {"setting": name, "value": text, "source": source, "study": study(name)}

    rows = []
    for key in MODEL_KEYS:
        if any(key in t["model"] for t in trials):
            rows.append(row("model", key, "model", "data" if key == "vocab_size" else None))
    for key in TRAIN_KEYS:
        if any(key in t["train"] for t in trials):
            rows.append(row("train", key, "train"))
        if any(f"{key}_used" in t["train"] for t in trials):
            rows.append(row("train", f"{key}_used", "train", "resolved"))
    sweep = config["sweep"]
    rows.append(
        {
            "setting": "sweep.activations",
            "value": _setting_text(order),
            "source": "config",
            "study": study("sweep.activations"),
        }
    )
    rows.append(
        {
            "setting": "sweep.seeds",
            "value": _setting_text(sweep["seeds"]),
            "source": "config",
            "study": study("sweep.seeds"),
        }
    )
    if sweep.get("data_seeds") is not None:
        rows.append(
            {
                "setting": "sweep.data_seeds",
                "value": _setting_text(sweep["data_seeds"]),
                "source": "config",
                "study": "—",
            }
        )
    return rows


def _precision(trials: list[dict]) -> list[dict]:
    """The precision the trials trained in: one entry per (configured, used) pair, with
    ``label`` ("fp32" or "bf16 autocast"), ``configured`` (train.precision), ``used``
    (train.precision_used), ``n`` (trials), ``all`` (every trial), and ``resolved``: for
    precision "auto", the device and the CPU's native bf16 (environment.cpu_bf16, where
    recorded) it was resolved on, else None."""
    groups: dict[tuple, list[dict]] = {}
    for t in trials:
        key = (t["train"]["precision"], t["train"]["precision_used"])
        groups.setdefault(key, []).append(t)
    out = []
    for (configured, used), members in sorted(groups.items()):
        resolved = None
        if configured == "auto":
            where = []
            for t in members:
                env = t["environment"]
                if env["device_type"] != "cpu":
                    text = env["device_type"]
                elif env.get("cpu_bf16") in (None, "none"):
                    text = "a CPU without native bf16" if env.get("cpu_bf16") else "the CPU"
                else:
                    text = f"a CPU with native bf16 ({env['cpu_bf16']})"
                if text not in where:
                    where.append(text)
            resolved = " and ".join(where)
        out.append(
            {
                "label": PRECISION_LABELS.get(used, used),
                "configured": configured,
                "used": used,
                "n": len(members),
                "all": len(members) == len(trials),
                "resolved": resolved,
            }
        )
    return out


def _setup(trials: list[dict]) -> dict:
    """What the trials are, for the report's opening: their number, distinct parameter counts,
    iterations and devices (from the trial records), and :func:`_precision`."""
    return {
        "n_trials": len(trials),
        "n_params": sorted({t["n_params"] for t in trials}),
        "max_iters": sorted({t["train"]["max_iters"] for t in trials}),
        "devices": sorted({t["train"]["device_used"] for t in trials}),
        "precision": _precision(trials),
    }


def _sampling(samples: dict) -> dict:
    """What the samples share: their sampling seeds and prompts (distinct values, sorted) and
    whether one seed and one prompt serve every sample (``shared``), in which case every model
    draws the same random numbers and the samples start alike where the models agree."""
    seeds = sorted({s["sample_seed"] for s in samples.values() if "sample_seed" in s})
    prompts = sorted({s["prompt"] for s in samples.values()})
    return {
        "seeds": seeds,
        "prompts": prompts,
        "shared": len(samples) > 1 and len(seeds) == 1 and len(prompts) == 1,
    }


def _curves(trials: list[dict]) -> dict[str, list[dict]]:
    """Per group (in the order of ``trials``): per eval step, the mean over seeds of train and
    val loss."""
    by_group: dict[str, dict[int, list[dict]]] = {}
    for trial in trials:
        for point in trial["curves"]:
            if "val_loss" in point:  # none in a skipped study-protocol evaluation
                by_group.setdefault(trial["group"], {}).setdefault(point["step"], []).append(point)
    out = {}
    for group, steps in by_group.items():
        out[group] = [
            {
                "step": step,
                "n": len(points),
                "train_loss": sum(p["train_loss"] for p in points) / len(points),
                "val_loss": sum(p["val_loss"] for p in points) / len(points),
            }
            for step, points in sorted(steps.items())
        ]
    return out


def _flip(pair: dict) -> dict:
    """A Tukey/Cohen pair with a and b swapped: the difference, its interval and d negated."""

    def neg(value):
        return -value if value else value  # None and 0.0 stay as they are (no "-0.0000")

    return {
        **pair,
        "a": pair["b"],
        "b": pair["a"],
        "mean_diff": neg(pair["mean_diff"]),
        "tukey_ci_low": neg(pair["tukey_ci_high"]),
        "tukey_ci_high": neg(pair["tukey_ci_low"]),
        "cohens_d": neg(pair["cohens_d"]),
    }


def _ordered_pairs(pairs: list[dict], order: list[str]) -> list[dict]:
    """results.json's pairs (a before b by name) with a the one listed first in ``order``, in
    ``order`` (a, then b)."""
    pos = {name: i for i, name in enumerate(order)}
    oriented = [_flip(p) if pos[p["a"]] > pos[p["b"]] else p for p in pairs]
    return sorted(oriented, key=lambda p: (pos[p["a"]], pos[p["b"]]))


def _cells(data: dict) -> list[dict]:
    """Per grid cell: activation rows ranked by mean val loss (``rows``) and the same rows in
    the config's activation order (``ordered``, :func:`reproduce.figures.activation_order`), with
    tests and PD attached; ``pairs`` are the Tukey pairs in that order."""
    cells = []
    pd = data["prediction_difference"]
    order = figures_mod.activation_order(data)
    for key, cell in sorted(data["statistics"]["cells"].items()):
        comparison = cell["val_loss_comparison"]
        rows = []
        for rank, activation in enumerate(comparison["ranking"], 1):
            stats = cell["activations"][activation]
            group = group_id(activation, cell["grid"])
            rows.append(
                {
                    "activation": activation,
                    "group": group,
                    "rank": rank,
                    "pd": pd.get(group),
                    **stats,
                }
            )
        gaps = sorted(rows, key=lambda r: (r["train_val_accuracy_gap"]["mean"], r["activation"]))
        with_pd = sorted(
            (r for r in rows if r["pd"]),
            key=lambda r: (r["pd"]["mean"]["relative_pd"], r["activation"]),
        )
        pos = {name: i for i, name in enumerate(order)}
        cells.append(
            {
                "key": key,
                "grid": cell["grid"],
                "rows": rows,
                "ordered": sorted(rows, key=lambda r: pos[r["activation"]]),
                "pairs": _ordered_pairs(comparison["pairs"], order),
                "comparison": comparison,
                "gap_order": [r["activation"] for r in gaps],
                "pd_order": [r["activation"] for r in with_pd],
            }
        )
    return cells


def _summary(data: dict) -> dict:
    """Headline figures of a run, for comparing two runs side by side."""
    cell = _cells(data)[0]
    comparison = cell["comparison"]
    rows = cell["rows"]
    pds = [r["pd"]["mean"]["relative_pd"] for r in rows if r["pd"]]
    return {
        "name": data["config"]["name"],
        "n_params": sorted({t["n_params"] for t in data["trials"]}),
        "max_iters": data["config"]["train"].get("max_iters"),
        "best": comparison["best"],
        "best_val_loss": rows[0]["val_loss"]["mean"],
        "worst": comparison["worst"],
        "spread_percent": comparison["spread_percent"],
        "anova_p": (comparison["anova"] or {}).get("p"),
        "best_val_accuracy": max(r["val_accuracy"]["mean"] for r in rows),
        "best_val_accuracy_activation": max(rows, key=lambda r: r["val_accuracy"]["mean"])[
            "activation"
        ],
        "relative_pd_range": [min(pds), max(pds)] if pds else None,
        "mean_wall_time_s": sum(t["wall_time_s"] for t in data["trials"]) / len(data["trials"]),
    }


def context(data: dict, compare: dict | None = None, extra: dict | None = None) -> dict:
    """Everything the templates show, derived from results.json ``data``.

    Args:
        data: a validated results.json.
        compare: another run's results.json to compare with (e.g. partial vs full), or None.
        extra: further sections computed elsewhere from results.json, e.g. ``{"figures":
            figure_context(...)}`` or ``{"replication": reproduce.compare.replication(...)}``;
            without them the reports show no figures and no replication verdict.
    """
    cells = _cells(data)
    groups = [row["group"] for cell in cells for row in cell["ordered"]]
    pos = {group: i for i, group in enumerate(groups)}
    trials = sorted(
        data["trials"], key=lambda t: (pos.get(t["group"], len(pos)), t["group"], t["seed"])
    )
    samples = {
        g: data["samples"][g]
        for g in sorted(data["samples"], key=lambda g: (pos.get(g, len(pos)), g))
    }
    return {
        "config": data["config"],
        "data": data["data"],
        "trials": trials,
        "cells": cells,
        "curves": _curves(trials),
        "samples": samples,
        "sampling": _sampling(data["samples"]),
        "setup": _setup(trials),
        "settings": _settings(data, trials, figures_mod.activation_order(data)),
        "environment": _environment(trials),
        "platforms": _platforms(trials),
        "alpha": ALPHA,
        "summary": _summary(data),
        "compare": _summary(compare) if compare else None,
        "render": data["render"],
        "figures": {},
        "replication": None,
        "beside": None,
        "protocol": _protocol(trials),
        "study_pd": _study_pd(data, cells),
        **(extra or {}),
    }


def _protocol(trials: list[dict]) -> str | None:
    """The training protocol the trials name (``nanogpt``, ``study``, or both joined); None for
    records written before protocols were recorded (their reports do not name one)."""
    named = sorted({t["protocol"] for t in trials if "protocol" in t})
    return " and ".join(named) or None


def _study_pd(data: dict, cells: list[dict]) -> list[dict] | None:
    """The study's own PD per group (results.json ``prediction_difference_study``) in the
    report's group order, or None when the sweep has none."""
    study = data.get("prediction_difference_study")
    if not study:
        return None
    order = [row["group"] for cell in cells for row in cell["ordered"]]
    return [{"group": g, **study[g]} for g in order if g in study]
