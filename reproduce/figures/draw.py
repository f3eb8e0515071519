"""The figures drawn: matplotlib without pyplot, each :class:`~matplotlib.figure.Figure` on its
own Agg canvas, inside :func:`style`, saved by :func:`png` without a time stamp (the determinism
rules are listed in :mod:`reproduce.figures`)."""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterator

import matplotlib
import matplotlib.style
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from reproduce.figures.series import (
    accuracy_gap_series,
    final_val_loss_series,
    in_order,
    loss_series,
    relative_pd_series,
    zoom_start,
)

__all__ = ["DPI", "MARKERS", "PALETTE", "RC", "activation_colours", "draw_figure", "png", "style"]

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


@contextlib.contextmanager
def style() -> Iterator[None]:
    """rcParams reset to matplotlib's built-in defaults plus :data:`RC`, restored on exit
    (``matplotlib.style.context(RC, after_reset=True)``), so no matplotlibrc or earlier rcParams
    change affects a figure."""
    with matplotlib.style.context(RC, after_reset=True):
        yield


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
    return {name: styles[name] for name in in_order(styles, order)}


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


def png(fig: Figure) -> tuple[bytes, int, int]:
    """``fig`` saved as PNG: ``(bytes, width, height)``, the size in pixels, at :data:`DPI`,
    with no ``Software`` text chunk and a fixed zlib level (:data:`PNG_COMPRESS_LEVEL`)."""
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


def draw_figure(name: str, data: dict, colours: dict[str, tuple[str, str]]) -> Figure:
    """Figure ``name`` (one of :data:`reproduce.figures.FIGURES`) of a validated results.json
    ``data``, with ``colours`` from :func:`activation_colours`; call it inside :func:`style`.

    Raises:
        KeyError: ``name`` is not a figure.
    """
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
    return builders[name]()
