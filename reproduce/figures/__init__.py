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

Modules: :mod:`reproduce.figures.series` computes what is plotted (no matplotlib),
:mod:`reproduce.figures.draw` draws it, :mod:`reproduce.figures.captions` writes the titles and
captions; this one renders them together.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass

from reproduce.figures.captions import captions, interval_note
from reproduce.figures.draw import DPI, PALETTE, RC, activation_colours, draw_figure, png, style
from reproduce.figures.series import (
    accuracy_gap_series,
    activation_order,
    final_val_loss_series,
    loss_series,
    relative_pd_series,
    zoom_start,
)

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


def render_figures(data: dict) -> list[RenderedFigure]:
    """Every figure of a validated results.json ``data``, in :data:`FIGURES` order.

    Returns:
        one :class:`RenderedFigure` per name in :data:`FIGURES`, with its PNG bytes; the same
        ``data`` and rendering stack always give the same bytes.
    """
    colours = activation_colours(data["trials"], activation_order(data))
    titles = captions(data)
    out = []
    for name in FIGURES:
        with style():
            png_bytes, width, height = png(draw_figure(name, data, colours))
        title, caption = titles[name]
        out.append(
            RenderedFigure(
                name=name,
                path=f"{FIGURE_DIR}/{name}.png",
                title=title,
                caption=caption,
                width=width,
                height=height,
                png=png_bytes,
            )
        )
    return out
