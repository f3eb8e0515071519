"""The report's figures, drawn with matplotlib from results.json alone (never from weights).

:func:`render_figures` returns every figure as PNG bytes with its caption; the report writes them
under ``figures/`` and embeds them in report.html. The figures are derived files: results.json
does not record them, and a re-render gives the same bytes for the same results.json and the same
rendering stack (matplotlib with its bundled FreeType and DejaVu fonts, Pillow's PNG encoder).

Determinism:

* no pyplot: each figure is a :class:`matplotlib.figure.Figure` drawn on its own
  :class:`~matplotlib.backends.backend_agg.FigureCanvasAgg`, so no global figure state exists;
* every figure is drawn and saved inside :func:`style`, which resets rcParams to matplotlib's
  built-in defaults (``matplotlib.style.context(..., after_reset=True)``) before applying
  :data:`RC`, so a user's matplotlibrc or style changes nothing and nothing leaks out;
* fixed size and :data:`DPI`, the bundled DejaVu Sans, no ``Software`` PNG text chunk (PNG
  output carries no time stamp), a fixed zlib level, and offsets of points computed from their
  order instead of random jitter;
* colours per activation are fixed by the sorted list of the sweep's activations
  (:func:`activation_colours`), so an activation keeps its colour whatever the config order;
  activations are laid out (axes, legends) in the config's order (:func:`activation_order`),
  the order every section of the report uses.

Figures (in :data:`FIGURES` order), each with one panel (or row of panels) per grid cell, stacked
("facets"; one for the usual single cell), always 960 pixels wide:

* ``train_loss_curves`` / ``val_loss_curves``: loss (nats per character) against step, one line
  per activation: the mean over its seeds, with the range (min to max) over seeds as a band;
  one row per cell, every evaluation on the left and the second half of training on the right
  (:func:`zoom_start`);
* ``final_val_loss``: final val loss per activation: every trial as a point, the mean with its
  95% Student-t confidence interval as stored in results.json's statistics
  (:func:`reproduce.stats.describe`);
* ``accuracy_gap``: train minus val accuracy (percentage points) per activation: every trial as
  a point, the mean with its stored 95% confidence interval (an interval of the mean over seeds:
  with three seeds it is the mean ± 4.30 standard errors, wider than the points' spread, so it
  can cross 0 while every trial is above it; the caption says so with the sweep's own numbers);
* ``relative_pd``: relative prediction difference (Shamir, Lin & Coviello 2020,
  arXiv:2010.09931) per activation: every seed pair as a point, the mean over pairs as a bar.
"""

from __future__ import annotations

import base64
import contextlib
import io
from collections.abc import Iterator
from dataclasses import dataclass

import matplotlib
import matplotlib.style
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from reproduce.config import group_id
from reproduce.stats import cell_key

__all__ = [
    "FIGURE_DIR",
    "FIGURES",
    "DPI",
    "RC",
    "PALETTE",
    "RenderedFigure",
    "style",
    "activation_order",
    "activation_colours",
    "interval_note",
    "loss_series",
    "zoom_start",
    "final_val_loss_series",
    "accuracy_gap_series",
    "relative_pd_series",
    "render_figures",
]

FIGURE_DIR = "figures"
FIGURES = (
    "train_loss_curves",
    "val_loss_curves",
    "final_val_loss",
    "accuracy_gap",
    "relative_pd",
)
DPI = 120
SINGLE_IN = (8.0, 4.5)  # inches: a figure of one cell (960 x 540 px)
CURVES_IN = (8.0, 4.0)  # inches: a loss-curve figure of one cell, two panels (960 x 480 px)
ROW_IN = 3.3  # inches: the height of each cell's row in a figure of several cells
PNG_COMPRESS_LEVEL = 9

#: rcParams applied on top of matplotlib's built-in defaults for every figure.
RC = {
    "font.family": ["DejaVu Sans"],
    "font.sans-serif": ["DejaVu Sans"],
    "font.size": 10.0,
    "axes.titlesize": 10.0,
    "axes.labelsize": 10.0,
    "figure.titlesize": 12.0,
    "legend.fontsize": 9.0,
    "axes.grid": True,
    "grid.alpha": 0.35,
    "grid.linewidth": 0.6,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.unicode_minus": True,
    "mathtext.fontset": "dejavusans",
    "figure.facecolor": "white",
    "axes.facecolor": "white",
    "savefig.facecolor": "white",
    "savefig.transparent": False,
    "lines.linewidth": 1.8,
    "path.simplify": False,
}

#: Okabe & Ito (2008, "Color Universal Design") colour-blind-safe palette, without its yellow
#: (too pale on white); cycled with marker shapes past its length.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#000000")
MARKERS = ("o", "s", "^", "D", "v", "P", "X")


@dataclass(frozen=True)
class RenderedFigure:
    """One figure: its PNG bytes and what the report says about it.

    Attributes:
        name: the figure's name, one of :data:`FIGURES`.
        path: where the report puts it, relative to the run directory (``figures/<name>.png``).
        title: a short heading.
        caption: what is plotted, in full (band, interval and point definitions).
        width, height: the PNG's size in pixels.
        png: the PNG file's bytes.
    """

    name: str
    path: str
    title: str
    caption: str
    width: int
    height: int
    png: bytes

    @property
    def data_uri(self) -> str:
        """The PNG as a ``data:image/png;base64,...`` URI, for embedding in HTML."""
        return "data:image/png;base64," + base64.b64encode(self.png).decode("ascii")

    def as_context(self) -> dict:
        """The template's view of the figure (everything but the raw bytes)."""
        return {
            "name": self.name,
            "path": self.path,
            "title": self.title,
            "caption": self.caption,
            "alt": f"{self.title}. {self.caption}",
            "width": self.width,
            "height": self.height,
            "data_uri": self.data_uri,
        }


@contextlib.contextmanager
def style() -> Iterator[None]:
    """rcParams reset to matplotlib's built-in defaults plus :data:`RC`, restored on exit
    (``matplotlib.style.context(RC, after_reset=True)``), so no matplotlibrc or earlier rcParams
    change affects a figure."""
    with matplotlib.style.context(RC, after_reset=True):
        yield


# --------------------------------------------------------------------------------------------
# the plotted data, from results.json


def activation_order(data: dict) -> list[str]:
    """The activations of results.json ``data`` in the order its config lists them
    (``config.sweep.activations``), then any other activation its trials have, sorted: the one
    order of every figure and every section of the report."""
    present = {t["activation"] for t in data["trials"]}
    listed = [a for a in data["config"]["sweep"]["activations"] if a in present]
    return listed + sorted(present - set(listed))


def activation_colours(
    trials: list[dict], order: list[str] | None = None
) -> dict[str, tuple[str, str]]:
    """Activation -> (colour, marker), assigned in sorted order of the sweep's activations (so
    a colour does not depend on the config's order); the dict lists the activations in
    ``order`` (e.g. :func:`activation_order`), else sorted."""
    names = sorted({t["activation"] for t in trials})
    styles = {
        name: (PALETTE[i % len(PALETTE)], MARKERS[(i // len(PALETTE)) % len(MARKERS)])
        for i, name in enumerate(names)
    }
    return {name: styles[name] for name in _ordered(styles, order)}


def _ordered(names, order: list[str] | None) -> list[str]:
    """``names`` in ``order``, then those ``order`` leaves out, sorted."""
    order = list(order or [])
    known = [n for n in order if n in names]
    return known + sorted(set(names) - set(known))


def _cells(data: dict) -> list[tuple[str, dict]]:
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
        for activation in _ordered(by_act, order):
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
    for key, cell in _cells(data):
        out[key] = {}
        for activation in _ordered(cell["activations"], order):
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
    for key, cell in _cells(data):
        out[key] = {}
        for activation in _ordered(cell["activations"], order):
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


# --------------------------------------------------------------------------------------------
# drawing


def _new_figure(n_cells: int) -> tuple[Figure, list]:
    """A figure with one panel per cell, stacked (the width stays that of one panel, so the
    HTML report shows every figure at its own size)."""
    size = SINGLE_IN if n_cells == 1 else (SINGLE_IN[0], ROW_IN * n_cells + 0.6)
    fig = Figure(figsize=size, dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    grid = fig.subplots(n_cells, 1, squeeze=False)
    return fig, [row[0] for row in grid]


def _offsets(n: int, width: float = 0.24) -> list[float]:
    """Evenly spread horizontal offsets for ``n`` points around a category (no randomness)."""
    if n <= 1:
        return [0.0] * n
    return [float(x) for x in np.linspace(-width / 2, width / 2, n)]


def _legend(fig: Figure, colours: dict[str, tuple[str, str]], kind: str) -> None:
    handles = []
    for name, (colour, marker) in colours.items():
        if kind == "line":
            handles.append(Line2D([], [], color=colour, label=name))
        else:
            handles.append(
                Line2D([], [], color=colour, marker=marker, linestyle="none", label=name)
            )
    fig.legend(handles=handles, loc="outside right upper", title="activation", frameon=False)


def _title_panels(fig: Figure, axes: list, keys: list[str], title: str) -> None:
    fig.suptitle(title)
    if len(keys) > 1 or keys[0] != "all":
        for ax, key in zip(axes, keys, strict=True):
            ax.set_title(key)


def _png(fig: Figure) -> tuple[bytes, int, int]:
    buffer = io.BytesIO()
    fig.savefig(
        buffer,
        format="png",
        dpi=DPI,
        metadata={"Software": None},
        pil_kwargs={"compress_level": PNG_COMPRESS_LEVEL},
    )
    width, height = fig.canvas.get_width_height(physical=True)
    return buffer.getvalue(), int(width), int(height)


def zoom_start(steps: list[int]) -> int:
    """First evaluation step shown in a loss-curve figure's zoomed (right) panel: the first step
    at or after half the last one, or the second-to-last step where that leaves fewer than two
    evaluations (the first step when there is only one)."""
    if len(steps) < 2:
        return steps[0] if steps else 0
    later = [s for s in steps if s >= steps[-1] / 2]
    return later[0] if len(later) >= 2 else steps[-2]


def _draw_curves(data: dict, metric: str, colours) -> Figure:
    """One row per cell: all evaluations on the left, the second half of training on the right
    (the first evaluations' high loss would otherwise flatten the differences)."""
    series = loss_series(data["trials"], metric, list(colours))
    keys = sorted(series)
    size = CURVES_IN if len(keys) == 1 else (CURVES_IN[0], ROW_IN * len(keys) + 0.6)
    fig = Figure(figsize=size, dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    grid = fig.subplots(len(keys), 2, squeeze=False)
    label = "Train loss" if metric == "train_loss" else "Val loss"
    for (full, zoom), key in zip(grid, keys, strict=True):
        steps = sorted({st for s in series[key].values() for st in s["step"]})
        start = zoom_start(steps)
        for activation, s in series[key].items():
            colour = colours[activation][0]
            later = [i for i, st in enumerate(s["step"]) if st >= start]
            for ax, idx in ((full, range(len(s["step"]))), (zoom, later)):
                x = [s["step"][i] for i in idx]
                low, high = [s["min"][i] for i in idx], [s["max"][i] for i in idx]
                ax.fill_between(x, low, high, color=colour, alpha=0.2, linewidth=0)
                ax.plot(x, [s["mean"][i] for i in idx], color=colour, label=activation)
        prefix = "" if keys == ["all"] else f"{key}: "
        full.set_title(f"{prefix}all evaluations")
        zoom.set_title(f"{prefix}from step {start:,}")
        for ax in (full, zoom):
            ax.set_xlabel("step")
        full.set_ylabel(f"{label.lower()} (nats/char)")
    what = "fixed training sample" if metric == "train_loss" else "validation split"
    fig.suptitle(f"{label} during training ({what})")
    _legend(fig, colours, "line")
    return fig


def _draw_points(series: dict, colours, ylabel: str, title: str, zero_line: bool) -> Figure:
    keys = sorted(series)
    fig, axes = _new_figure(len(keys))
    for ax, key in zip(axes, keys, strict=True):
        activations = list(series[key])
        for x, activation in enumerate(activations):
            s = series[key][activation]
            colour, marker = colours[activation]
            xs = [x - 0.12 + dx for dx in _offsets(len(s["values"]), 0.2)]
            ax.scatter(xs, s["values"], color=colour, marker=marker, s=28, alpha=0.85, zorder=3)
            if s["ci_low"] is not None and s["ci_high"] is not None:
                ax.errorbar(
                    [x + 0.2],
                    [s["mean"]],
                    yerr=[[s["mean"] - s["ci_low"]], [s["ci_high"] - s["mean"]]],
                    color="#333333",
                    capsize=4,
                    linewidth=1.4,
                    zorder=2,
                )
            ax.plot([x + 0.2], [s["mean"]], marker="_", markersize=16, color="#111111", mew=2.2)
        ax.set_xticks(range(len(activations)), activations)
        ax.set_xlim(-0.6, len(activations) - 0.4)
        ax.grid(False, axis="x")
        if zero_line:
            ax.axhline(0.0, color="#888888", linewidth=0.8, zorder=1)
        ax.set_ylabel(ylabel)
    _title_panels(fig, axes, keys, title)
    _legend(fig, colours, "points")
    return fig


def _draw_pd(data: dict, colours) -> Figure:
    series = relative_pd_series(data)
    keys = sorted(series)
    fig, axes = _new_figure(len(keys))
    for ax, key in zip(axes, keys, strict=True):
        activations = list(series[key])
        if not activations:
            ax.text(
                0.5,
                0.5,
                "no seed pairs: one seed per activation",
                ha="center",
                va="center",
                transform=ax.transAxes,
            )
            ax.set_axis_off()
            continue
        for x, activation in enumerate(activations):
            s = series[key][activation]
            colour, marker = colours[activation]
            ax.bar([x], [s["mean"]], width=0.6, color=colour, alpha=0.3, zorder=1)
            xs = [x + dx for dx in _offsets(len(s["values"]), 0.3)]
            ax.scatter(xs, s["values"], color=colour, marker=marker, s=28, zorder=3)
        ax.set_xticks(range(len(activations)), activations)
        ax.set_xlim(-0.6, len(activations) - 0.4)
        ax.grid(False, axis="x")
        ax.set_ylabel("relative PD between seeds")
    _title_panels(fig, axes, keys, "Relative prediction difference between seeds")
    _legend(fig, colours, "points")
    return fig


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


def _captions(data: dict) -> dict[str, tuple[str, str]]:
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
        for _, cell in _cells(data)
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


def render_figures(data: dict) -> list[RenderedFigure]:
    """Every figure of a validated results.json ``data``, in :data:`FIGURES` order.

    Returns:
        one :class:`RenderedFigure` per name in :data:`FIGURES`, with its PNG bytes; the same
        ``data`` and rendering stack always give the same bytes.
    """
    colours = activation_colours(data["trials"], activation_order(data))
    captions = _captions(data)
    builders = {
        "train_loss_curves": lambda: _draw_curves(data, "train_loss", colours),
        "val_loss_curves": lambda: _draw_curves(data, "val_loss", colours),
        "final_val_loss": lambda: _draw_points(
            final_val_loss_series(data),
            colours,
            "final val loss (nats/char)",
            "Final validation loss per activation",
            zero_line=False,
        ),
        "accuracy_gap": lambda: _draw_points(
            accuracy_gap_series(data),
            colours,
            "train − val accuracy (points)",
            "Train − val accuracy gap per activation",
            zero_line=True,
        ),
        "relative_pd": lambda: _draw_pd(data, colours),
    }
    out = []
    for name in FIGURES:
        with style():
            fig = builders[name]()
            png, width, height = _png(fig)
        title, caption = captions[name]
        out.append(
            RenderedFigure(
                name=name,
                path=f"{FIGURE_DIR}/{name}.png",
                title=title,
                caption=caption,
                width=width,
                height=height,
                png=png,
            )
        )
    return out
