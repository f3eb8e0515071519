"""The report: ``templates/report.md.j2`` rendered with jinja2 from results.json alone.

Every number, ranking and significance word comes from results.json through :func:`context`;
the template only lays them out. ``python -m reproduce render DIR`` re-renders (rendering twice
gives identical bytes) with the render options recorded in results.json unless told otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Callable
from pathlib import Path

import jinja2

from charlm.io import atomic_write_text
from reproduce import results
from reproduce.config import group_id
from reproduce.manifest import write_manifest

__all__ = ["TEMPLATE_DIR", "REPORT_MD", "context", "render_markdown", "render_directory"]

TEMPLATE_DIR = Path(__file__).resolve().parents[1] / "templates"
REPORT_MD = "report.md"
ALPHA = 0.05  # "significant" means p < ALPHA by one-way ANOVA (reproduce.stats)


def _fmt(value, digits: int = 4) -> str:
    """Fixed-point number, or an em dash for a missing value."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:.{digits}f}"


def _fmt_p(p) -> str:
    if p is None:
        return "—"
    return "< 0.0001" if p < 1e-4 else f"{p:.4f}"


def _environment(trials: list[dict]) -> list[dict]:
    """Each environment field with its distinct values across trials."""
    keys = sorted({k for t in trials for k in t["environment"]})
    rows = []
    for key in keys:
        values = sorted({json.dumps(t["environment"].get(key)) for t in trials})
        rows.append({"key": key, "values": [json.loads(v) for v in values]})
    return rows


def _curves(trials: list[dict]) -> dict[str, list[dict]]:
    """Per group: per eval step, the mean over seeds of train and val loss."""
    by_group: dict[str, dict[int, list[dict]]] = {}
    for trial in trials:
        for point in trial["curves"]:
            by_group.setdefault(trial["group"], {}).setdefault(point["step"], []).append(point)
    out = {}
    for group, steps in sorted(by_group.items()):
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


def _cells(data: dict) -> list[dict]:
    """Per grid cell: activation rows ranked by mean val loss, with tests and PD attached."""
    cells = []
    pd = data["prediction_difference"]
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
        cells.append(
            {
                "key": key,
                "grid": cell["grid"],
                "rows": rows,
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
        extra: further sections computed elsewhere from results.json (e.g. figures).
    """
    trials = sorted(data["trials"], key=lambda t: t["id"])
    return {
        "config": data["config"],
        "data": data["data"],
        "trials": trials,
        "cells": _cells(data),
        "curves": _curves(trials),
        "samples": data["samples"],
        "environment": _environment(trials),
        "alpha": ALPHA,
        "summary": _summary(data),
        "compare": _summary(compare) if compare else None,
        "render": data["render"],
        **(extra or {}),
    }


def environment() -> jinja2.Environment:
    """The jinja2 environment: templates/ on disk, StrictUndefined, number filters."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATE_DIR),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
    )
    env.filters["num"] = _fmt
    env.filters["p"] = _fmt_p
    env.filters["pct"] = lambda v, d=2: "—" if v is None else f"{v:.{d}f}%"
    env.filters["json"] = lambda v: json.dumps(v, sort_keys=True)
    return env


def render_markdown(ctx: dict) -> str:
    """The Markdown report for a :func:`context`."""
    return environment().get_template("report.md.j2").render(**ctx)


def _resolve(directory: Path, recorded: str | None) -> Path | None:
    return None if recorded is None else (directory / recorded).resolve()


def render_directory(
    directory: str | os.PathLike,
    *,
    compare: str | os.PathLike | None = None,
    log: Callable[[str], None] = print,
    write: bool = True,
) -> dict[str, bytes]:
    """Render the report files of a run directory from its results.json.

    ``compare`` (a directory with results.json) is recorded in results.json's render options,
    relative to ``directory``, and reused by later renders; without it the recorded option is
    used.

    Returns:
        file name -> bytes of every rendered file (written atomically when ``write``).
    """
    directory = Path(directory)
    data = results.load_results(directory)
    options = data["render"].setdefault("options", {"compare": None})
    if compare is not None:
        options["compare"] = os.path.relpath(Path(compare).resolve(), directory.resolve())
    compare_dir = _resolve(directory, options["compare"])
    compare_data = results.load_results(compare_dir) if compare_dir else None
    ctx = context(data, compare_data)
    files = {REPORT_MD: render_markdown(ctx).encode("utf-8")}
    if write:
        if compare is not None:
            results.write_results(directory, data)
        for name, payload in files.items():
            atomic_write_text(directory / name, payload.decode("utf-8"))
        log(f"rendered {', '.join(sorted(files))} in {directory}")
    return files


def _render_command(args: argparse.Namespace) -> int:
    directory = Path(args.dir)
    render_directory(directory, compare=args.compare)
    write_manifest(directory)
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``render`` command."""
    p = subparsers.add_parser("render", help="re-render the report of a run directory")
    p.add_argument("dir", help="a run or published directory with results.json")
    p.add_argument(
        "--compare",
        default=None,
        metavar="DIR",
        help="another run to compare with (recorded for later renders)",
    )
    p.set_defaults(func=_render_command)
