"""Figures and the HTML report from a tiny real sweep: the files rendered, byte-identical renders
(in this process and in another one with a hostile matplotlibrc), PNG sizes, the plotted data
against values computed here, Markdown links, embedding, no network references, and the same
numbers in report.md and report.html."""

import base64
import copy
import hashlib
import json
import os
import re
import struct
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import matplotlib
import numpy as np
import pytest
from conftest import REPO
from matplotlib import font_manager
from matplotlib.collections import LineCollection
from PIL import Image
from scipy import stats as sps

from charlm.io import sha256_file
from reproduce import figures, report, results
from reproduce.cli import main
from reproduce.config import group_id

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# one grid cell: pixel sizes at 120 dpi (loss curves 8 x 4 inches, the others 8 x 4.5)
SINGLE_CELL_SIZES = {
    "train_loss_curves": (960, 480),
    "val_loss_curves": (960, 480),
    "final_val_loss": (960, 540),
    "accuracy_gap": (960, 540),
    "relative_pd": (960, 540),
}
EXPECTED_FIGURES = {
    "figures/train_loss_curves.png",
    "figures/val_loss_curves.png",
    "figures/final_val_loss.png",
    "figures/accuracy_gap.png",
    "figures/relative_pd.png",
}


@pytest.fixture(scope="module")
def run_dir(tiny_sweep):
    return tiny_sweep[1]


@pytest.fixture(scope="module")
def data(run_dir):
    return results.load_results(run_dir)


@pytest.fixture(scope="module")
def rendered(data):
    return figures.render_figures(data)


def png_size(payload: bytes) -> tuple[int, int]:
    """(width, height) from a PNG's IHDR chunk, which must come first (PNG spec, 5.3 / 11.2.2)."""
    assert payload[:8] == PNG_SIGNATURE
    length, kind = struct.unpack(">I4s", payload[8:16])
    assert kind == b"IHDR" and length == 13
    return struct.unpack(">II", payload[16:24])


def hex_rgb(colour: str) -> tuple[int, int, int]:
    return tuple(int(colour[i : i + 2], 16) for i in (1, 3, 5))


class Tables(HTMLParser):
    """Every <table> as a list of rows of cell texts; every <img> and every URL attribute."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tables, self.images, self.urls, self.tags = [], [], [], []
        self._cell = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append(tag)
        for name in ("src", "href", "srcset", "action", "poster", "data", "background"):
            if name in attrs:
                self.urls.append(attrs[name])
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell = []
        elif tag == "img":
            self.images.append(attrs)

    def handle_endtag(self, tag):
        if tag in ("td", "th"):
            self.tables[-1][-1].append(" ".join("".join(self._cell).split()))
            self._cell = None

    def handle_data(self, text):
        if self._cell is not None:
            self._cell.append(text)


def markdown_tables(text: str) -> list[list[list[str]]]:
    """The pipe tables of a Markdown text (separator rows dropped, ** and ` removed)."""
    tables, current = [], None
    for line in text.splitlines():
        if line.startswith("|"):
            if current is None:
                current = []
                tables.append(current)
            if re.fullmatch(r"\|(\s*:?-+:?\s*\|)+", line):
                continue
            cells = line.strip().strip("|").split("|")
            current.append([" ".join(c.replace("**", "").replace("`", "").split()) for c in cells])
        else:
            current = None
    return tables


def test_render_returns_every_file_identical_to_disk_and_twice(run_dir):
    first = report.render_directory(run_dir, write=False, log=lambda _: None)
    second = report.render_directory(run_dir, write=False, log=lambda _: None)
    assert set(first) == {"report.md", "report.html", "audit.md"} | EXPECTED_FIGURES
    assert first == second
    for name, payload in first.items():  # the run's finalize wrote the same bytes
        assert (run_dir / name).read_bytes() == payload, name
    listed = (run_dir / "SHA256SUMS").read_text()
    assert all(f"  {name}\n" in listed for name in first)


def test_render_command_leaves_results_json_unchanged(run_dir):
    before = sha256_file(run_dir / "results.json")
    figures_before = {p: sha256_file(run_dir / p) for p in EXPECTED_FIGURES}
    assert main(["render", str(run_dir)]) == 0
    assert sha256_file(run_dir / "results.json") == before
    assert {p: sha256_file(run_dir / p) for p in EXPECTED_FIGURES} == figures_before
    check = subprocess.run(["sha256sum", "--quiet", "-c", "SHA256SUMS"], cwd=run_dir)
    assert check.returncode == 0


def test_figures_identical_in_another_process_with_hostile_matplotlibrc(run_dir, tmp_path):
    rc = tmp_path / "matplotlibrc"
    rc.write_text(
        "font.family: serif\nfont.size: 23\nlines.linewidth: 6\nfigure.dpi: 41\n"
        "savefig.dpi: 53\nsavefig.bbox: tight\naxes.grid: False\ntext.antialiased: False\n"
        "axes.prop_cycle: cycler('color', ['r', 'g'])\n"
    )
    script = (
        "import hashlib, json, sys, matplotlib\n"
        "from reproduce import report\n"
        "assert matplotlib.rcParams['lines.linewidth'] == 6  # the hostile rc is in force\n"
        "files = report.render_directory(sys.argv[1], write=False, log=lambda _: None)\n"
        "assert matplotlib.rcParams['lines.linewidth'] == 6  # and restored afterwards\n"
        "print(json.dumps({k: hashlib.sha256(v).hexdigest() for k, v in files.items()}))\n"
    )
    env = {
        **os.environ,
        "MATPLOTLIBRC": str(rc),
        "MPLCONFIGDIR": str(tmp_path / "mplconfig"),  # an empty font cache
        "PYTHONHASHSEED": "12345",
        "PYTHONPATH": str(REPO),
    }
    proc = subprocess.run(
        [sys.executable, "-c", script, str(run_dir)],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    there = json.loads(proc.stdout.strip().splitlines()[-1])
    here = {name: sha256_file(run_dir / name) for name in there}
    assert set(there) == {"report.md", "report.html", "audit.md"} | EXPECTED_FIGURES
    assert there == here


def test_rc_changes_in_this_process_change_nothing_and_do_not_leak(data, rendered):
    with matplotlib.rc_context({"lines.linewidth": 7.0, "font.size": 31.0, "figure.dpi": 30.0}):
        again = figures.render_figures(data)
        assert matplotlib.rcParams["lines.linewidth"] == 7.0
    assert [f.png for f in again] == [f.png for f in rendered]


def test_figures_use_the_bundled_dejavu_sans():
    bundled = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
    with figures.style():
        found = font_manager.findfont(font_manager.FontProperties(family="DejaVu Sans"))
        assert matplotlib.rcParams["font.family"] == ["DejaVu Sans"]
    assert Path(found).resolve() == bundled.resolve()


def test_every_figure_is_a_png_of_the_stated_size(run_dir, rendered):
    assert [f.name for f in rendered] == list(figures.FIGURES)
    for fig in rendered:
        payload = (run_dir / fig.path).read_bytes()
        assert payload == fig.png
        size = SINGLE_CELL_SIZES[fig.name]
        assert png_size(payload) == (fig.width, fig.height) == size
        with Image.open(run_dir / fig.path) as image:
            image.verify()  # CRCs and structure
        with Image.open(run_dir / fig.path) as image:
            assert image.size == size and "Software" not in image.info
            pixels = np.asarray(image.convert("RGB"), dtype=np.float64)
        assert pixels.std() > 20  # not a blank canvas


def test_loss_curve_series_are_the_mean_and_range_over_seeds(data):
    series = figures.loss_series(data["trials"], "val_loss")
    assert list(series) == ["all"] and list(series["all"]) == ["gelu", "relu"]
    for activation in ("gelu", "relu"):
        trials = [t for t in data["trials"] if t["activation"] == activation]
        assert len(trials) == 2
        curve_a, curve_b = ({p["step"]: p["val_loss"] for p in t["curves"]} for t in trials)
        steps = sorted(curve_a)
        assert steps == [0, 4, 8] and sorted(curve_b) == steps
        got = series["all"][activation]
        assert got["step"] == steps and got["n"] == [2, 2, 2]
        for i, step in enumerate(steps):
            a, b = curve_a[step], curve_b[step]
            assert got["mean"][i] == pytest.approx((a + b) / 2, rel=1e-12)
            assert got["min"][i] == min(a, b) and got["max"][i] == max(a, b)
    train = figures.loss_series(data["trials"], "train_loss")["all"]["relu"]
    relu = [t for t in data["trials"] if t["activation"] == "relu"]
    assert train["mean"][-1] == pytest.approx(
        (relu[0]["curves"][-1]["train_loss"] + relu[1]["curves"][-1]["train_loss"]) / 2
    )
    with pytest.raises(ValueError, match="train_loss"):
        figures.loss_series(data["trials"], "val_accuracy")


@pytest.mark.parametrize(
    ("steps", "start"),
    [
        ([0, 4, 8], 4),
        ([0, 50, 100, 150], 100),
        ([0, 100, 200, 300, 400], 200),
        ([0, 10], 0),
        ([7], 7),
    ],
)
def test_zoomed_panel_starts_half_way(steps, start):
    assert figures.zoom_start(steps) == start


def test_final_val_loss_gap_and_pd_series_match_the_records(data):
    final = figures.final_val_loss_series(data)["all"]
    gap = figures.accuracy_gap_series(data)["all"]
    pd = figures.relative_pd_series(data)["all"]
    for activation in ("gelu", "relu"):
        trials = sorted(
            (t for t in data["trials"] if t["activation"] == activation), key=lambda t: t["seed"]
        )
        losses = [t["final"]["val_loss"] for t in trials]
        assert final[activation]["values"] == losses and final[activation]["seeds"] == [0, 1]
        mean = sum(losses) / 2
        sem = abs(losses[0] - losses[1]) / 2  # SD of two values / sqrt(2)
        low, high = sps.t.interval(0.95, df=1, loc=mean, scale=sem)
        assert final[activation]["mean"] == pytest.approx(mean, rel=1e-12)
        assert final[activation]["ci_low"] == pytest.approx(low, rel=1e-9)
        assert final[activation]["ci_high"] == pytest.approx(high, rel=1e-9)
        gaps = [t["final"]["train_accuracy"] - t["final"]["val_accuracy"] for t in trials]
        assert gap[activation]["values"] == pytest.approx(gaps, rel=1e-12)
        assert gap[activation]["mean"] == pytest.approx(sum(gaps) / 2, rel=1e-12)
        recorded = data["prediction_difference"][activation]["pairs"]["s0-s1"]["relative_pd"]
        assert pd[activation]["pairs"] == ["s0-s1"] and pd[activation]["values"] == [recorded]


def test_activation_colours_are_fixed_by_sorted_names_and_drawn(run_dir, data):
    colours = figures.activation_colours(data["trials"])
    assert list(colours) == ["gelu", "relu"]
    assert colours["gelu"][0] == figures.PALETTE[0] and colours["relu"][0] == figures.PALETTE[1]
    shuffled = list(reversed(data["trials"]))
    assert figures.activation_colours(shuffled) == colours
    with Image.open(run_dir / "figures/val_loss_curves.png") as image:
        pixels = np.asarray(image.convert("RGB"))
    for name in ("gelu", "relu"):  # the mean lines are opaque: their exact colour is present
        exact = np.all(pixels == hex_rgb(colours[name][0]), axis=-1)
        assert exact.sum() > 200, name


def test_markdown_links_every_figure_and_each_link_exists(run_dir):
    text = (run_dir / "report.md").read_text(encoding="utf-8")
    links = re.findall(r"!\[([^\]]+)\]\(([^)]+)\)", text)
    assert {path for _, path in links} == EXPECTED_FIGURES and len(links) == 5
    for alt, path in links:
        assert not path.startswith(("/", "http")) and (run_dir / path).is_file()
        assert f"*{alt}.*" in text  # each figure has its caption
    assert "range (minimum to maximum) over those seeds" in text  # the band is named
    assert "95% Student-t confidence interval" in text


def test_html_embeds_every_figure_and_references_no_network(run_dir):
    html = (run_dir / "report.html").read_text(encoding="utf-8")
    parser = Tables()
    parser.feed(html)
    embedded = {}
    for img in parser.images:
        prefix = "data:image/png;base64,"
        assert img["src"].startswith(prefix)
        payload = base64.b64decode(img["src"][len(prefix) :], validate=True)
        assert (int(img["width"]), int(img["height"])) == png_size(payload)
        assert img["alt"]
        embedded[hashlib.sha256(payload).hexdigest()] = payload
    on_disk = {sha256_file(run_dir / p) for p in EXPECTED_FIGURES}
    assert set(embedded) == on_disk and len(parser.images) == 5
    # no network: every URL is a data: URI or an in-page anchor, and no http(s) text at all
    assert all(u.startswith(("data:", "#")) for u in parser.urls)
    assert not re.search(r"https?:|//[a-z0-9.-]+\.[a-z]", html, flags=re.IGNORECASE)
    assert not {"script", "link", "iframe", "object", "embed"} & set(parser.tags)
    assert "default-src 'none'; img-src data:" in html  # the CSP forbids any other fetch


def test_markdown_and_html_show_the_same_numbers(run_dir):
    # compared with itself, so that the comparison table is shown too (nothing is written)
    files = report.render_directory(run_dir, compare=run_dir, write=False, log=lambda _: None)
    md = markdown_tables(files["report.md"].decode("utf-8"))
    parser = Tables()
    parser.feed(files["report.html"].decode("utf-8"))
    assert len(md) == len(parser.tables) >= 11
    assert md == parser.tables
    assert parser.tables[-3][0] == ["Figure", "tiny", "tiny"]  # the comparison table
    assert parser.tables[-2][0] == ["Setting", "Value", "Set by", "Published study"]
    summary = parser.tables[0]
    assert summary[0][:4] == ["Rank", "Activation", "n", "Val loss (mean ± SD)"]
    data = results.load_results(run_dir)
    stats = data["statistics"]["cells"]["all"]["activations"]
    for row in summary[1:]:
        s = stats[row[1]]["val_loss"]
        assert row[3] == f"{s['mean']:.4f} ± {s['sd']:.4f}"
        assert row[4] == f"[{s['ci_low']:.4f}, {s['ci_high']:.4f}]"


def test_html_escapes_what_it_shows(data):
    hostile = copy.deepcopy(data)
    hostile["config"]["description"] = "<script>alert(1)</script> & more"
    ctx = report.context(hostile)
    html = report.render_html(ctx)
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt; &amp; more" in html
    assert "<script>alert(1)</script> & more" in report.render_markdown(ctx)


def _regrid(data: dict, seeds=(0, 1), cells=(0.001, 0.01)) -> dict:
    """``data``'s trials copied into one grid cell per ``cells`` value of lr (statistics
    recomputed, PD copied per group): a multi-cell sweep without training."""
    out = copy.deepcopy(data)
    trials, pd = [], {}
    for lr in cells:
        for trial in data["trials"]:
            if trial["seed"] not in seeds:
                continue
            t = copy.deepcopy(trial)
            t["grid"] = {"lr": lr}
            t["group"] = group_id(t["activation"], t["grid"])
            t["id"] = f"{t['activation']}-s{t['seed']}-lr={lr!r}"
            trials.append(t)
            if trial["group"] in data["prediction_difference"] and len(seeds) > 1:
                pd[t["group"]] = data["prediction_difference"][trial["group"]]
    out["trials"], out["prediction_difference"] = trials, pd
    out["statistics"] = results.statistics(trials)
    return out


def test_grid_cells_become_facets(data):
    grid = _regrid(data)
    assert list(figures.loss_series(grid["trials"], "val_loss")) == ["lr=0.001", "lr=0.01"]
    faceted = figures.render_figures(grid)
    for fig in faceted:  # a row per cell, stacked: 8 x (3.3 x 2 + 0.6) inches at 120 dpi
        assert png_size(fig.png) == (fig.width, fig.height) == (960, 864)
        per_cell = "row" if fig.name.endswith("_curves") else "panel"
        assert f"One {per_cell} per grid cell." in fig.caption
    ctx = report.context(grid, extra={"figures": report.figure_context(faceted)})
    assert report.render_html(ctx).count("<img ") == 5


def test_one_seed_renders_without_intervals_or_pairs(data):
    single = _regrid(data, seeds=(0,), cells=(0.001,))
    rendered = figures.render_figures(single)
    assert figures.relative_pd_series(single) == {"lr=0.001": {}}
    assert figures.final_val_loss_series(single)["lr=0.001"]["gelu"]["ci_low"] is None
    by_name = {f.name: f for f in rendered}
    assert "No interval is drawn where it is undefined" in by_name["final_val_loss"].caption
    assert all(png_size(f.png) == SINGLE_CELL_SIZES[f.name] for f in rendered)


def test_figures_follow_the_config_order_and_keep_colours_by_name(data):
    assert data["config"]["sweep"]["activations"] == ["relu", "gelu"]
    order = figures.activation_order(data)
    assert order == ["relu", "gelu"]
    assert list(figures.final_val_loss_series(data)["all"]) == order
    assert list(figures.accuracy_gap_series(data)["all"]) == order
    assert list(figures.relative_pd_series(data)["all"]) == order
    assert list(figures.loss_series(data["trials"], "val_loss", order)["all"]) == order
    colours = figures.activation_colours(data["trials"], order)
    assert list(colours) == order  # the legend's order
    assert colours == figures.activation_colours(data["trials"])  # same colour per name
    # an activation the config no longer lists comes last
    extra = copy.deepcopy(data)
    extra["config"]["sweep"]["activations"] = ["gelu"]
    assert figures.activation_order(extra) == ["gelu", "relu"]


def _with_gaps(data: dict, gaps: dict[str, list[float]]) -> dict:
    """``data`` with each trial's train accuracy set to its val accuracy plus the given gap
    (percentage points; per activation, by seed) and the statistics recomputed."""
    out = copy.deepcopy(data)
    for trial in out["trials"]:
        trial["final"]["train_accuracy"] = (
            trial["final"]["val_accuracy"] + gaps[trial["activation"]][trial["seed"]]
        )
    out["statistics"] = results.statistics(out["trials"])
    return out


def test_gap_whiskers_are_the_t_interval_of_the_mean_and_the_caption_says_why(data):
    # two seeds whose gaps are both above 0: the t interval of their mean (1 degree of freedom,
    # 12.71 standard errors) reaches below 0, correctly
    wide = _with_gaps(data, {"relu": [0.2, 1.0], "gelu": [3.0, 3.1]})
    series = figures.accuracy_gap_series(wide)["all"]
    for activation, gaps in (("relu", [0.2, 1.0]), ("gelu", [3.0, 3.1])):
        got = series[activation]
        assert got["values"] == pytest.approx(gaps, abs=1e-9)
        mean, sem = sum(gaps) / 2, abs(gaps[1] - gaps[0]) / 2
        low, high = sps.t.interval(0.95, df=1, loc=mean, scale=sem)
        assert got["ci_low"] == pytest.approx(low, rel=1e-9)
        assert got["ci_high"] == pytest.approx(high, rel=1e-9)
    assert series["relu"]["ci_low"] < 0 < min(series["relu"]["values"])
    assert series["gelu"]["ci_low"] > 0
    # the drawn whisker spans exactly the stored interval
    with figures.style():
        fig = figures.draw._draw_points(
            {"all": series},
            figures.activation_colours(wide["trials"], ["relu", "gelu"]),
            "gap",
            "gap",
            zero_line=True,
        )
    whiskers = [
        c.get_segments()[0] for c in fig.axes[0].collections if isinstance(c, LineCollection)
    ]
    assert len(whiskers) == 2
    for segment, activation in zip(whiskers, ("relu", "gelu"), strict=True):
        (_, y0), (_, y1) = segment
        assert (y0, y1) == pytest.approx(
            (series[activation]["ci_low"], series[activation]["ci_high"])
        )
    note = figures.interval_note({"all": series}, zero_line=True)
    t_multiple = sps.t.ppf(0.975, df=1)
    assert f"with 2 seeds the interval is the mean ± {t_multiple:.2f} standard errors" in note
    assert "(Student t, 1 degree of freedom)" in note
    assert (
        "Here the interval of relu reaches below 0 although each of its trials is above 0" in note
    )
    caption = {f.name: f.caption for f in figures.render_figures(wide)}["accuracy_gap"]
    assert note in caption and "relu" not in figures.interval_note({"all": series})


def test_interval_note_of_the_tiny_sweep_names_no_crossing_where_none_is(data):
    series = figures.accuracy_gap_series(data)["all"]
    crossing = [a for a, s in series.items() if s["ci_low"] < 0 < min(s["values"])]
    note = figures.interval_note({"all": series}, zero_line=True)
    assert ("Here the interval" in note) == bool(crossing)
    assert f"mean ± {sps.t.ppf(0.975, df=1):.2f} standard errors" in note
