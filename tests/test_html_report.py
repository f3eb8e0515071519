"""report.html as a reader sees it: a tiny real sweep's report opened in headless Chromium.

Two Chromium runs, each with a fresh profile and no network services:

1. ``--dump-dom`` of a probe copy of the report (its Content-Security-Policy dropped so that an
   appended script may run; nothing that affects layout changes) that records, once the page
   has loaded, each image's decoded size and position and each table's rows and position;
2. ``--screenshot`` of the report itself, unmodified, at the page's full height.

The screenshot must not be blank, and at each image's position it must show that figure (the
figure's PNG and the screenshot's pixels agree after both are averaged over 8 x 8 blocks); at
each table's position it must show text. Skipped where Chromium is not installed.
"""

import json
import re
import shutil
import subprocess
import tempfile
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from reproduce.results import load_results

WIDTH = 1200
MAX_HEIGHT = 16000  # Chromium's screenshots stay reliable below its 16384 px texture limit
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
    "--force-device-scale-factor=1",
)
CSP = re.compile(r'<meta http-equiv="Content-Security-Policy"[^>]*>\n?')
PROBE = """<script>
window.addEventListener("load", function () {
  function box(el) {
    var r = el.getBoundingClientRect();
    return {x: r.left + window.scrollX, y: r.top + window.scrollY, w: r.width, h: r.height};
  }
  var out = {height: document.documentElement.scrollHeight, images: [], tables: []};
  document.querySelectorAll("img").forEach(function (img) {
    out.images.push({id: img.parentElement.id, complete: img.complete,
                     natural: [img.naturalWidth, img.naturalHeight],
                     src: img.getAttribute("src").slice(0, 22), box: box(img)});
  });
  document.querySelectorAll("table").forEach(function (t) {
    out.tables.push({rows: t.tBodies[0].rows.length, box: box(t)});
  });
  document.documentElement.setAttribute("data-probe", JSON.stringify(out));
});
</script>
"""


def find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser"):
        if path := shutil.which(name):
            return path
    return "/usr/bin/chromium" if Path("/usr/bin/chromium").is_file() else None


def chromium_run(chromium: str, url: str, height: int, *extra: str) -> str:
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        proc = subprocess.run(
            [
                chromium,
                *FLAGS,
                f"--user-data-dir={profile}",
                f"--window-size={WIDTH},{height}",
                *extra,
                url,
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


class ProbeAttribute(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.value = None

    def handle_starttag(self, tag, attrs):
        if tag == "html":
            self.value = dict(attrs).get("data-probe")


@pytest.fixture(scope="module")
def chromium():
    path = find_chromium()
    if path is None:
        pytest.skip(
            "chromium not installed: `apt-get install -y chromium` (Debian) to check report.html "
            "in a browser"
        )
    return path


@pytest.fixture(scope="module")
def page(chromium, tiny_sweep, tmp_path_factory):
    """The run directory, the probe's measurements and the screenshot's pixels."""
    root = tmp_path_factory.mktemp("html")
    out = tiny_sweep[1]
    html = (out / "report.html").read_text(encoding="utf-8")
    assert len(CSP.findall(html)) == 1
    probe = root / "probe.html"
    probe.write_text(CSP.sub("", html).replace("</body>", PROBE + "</body>"), encoding="utf-8")
    parser = ProbeAttribute()
    parser.feed(chromium_run(chromium, probe.as_uri(), 900, "--dump-dom"))
    assert parser.value, "the probe found nothing: the page did not load"
    measured = json.loads(parser.value)
    height = min(int(measured["height"]), MAX_HEIGHT)
    shot = root / "report.png"
    chromium_run(chromium, (out / "report.html").as_uri(), height, f"--screenshot={shot}")
    with Image.open(shot) as image:
        pixels = np.asarray(image.convert("RGB"), dtype=np.float64)
    return out, measured, pixels, shot


def crop(pixels: np.ndarray, box: dict, inset: int = 2) -> np.ndarray:
    x0, y0 = int(np.ceil(box["x"])) + inset, int(np.ceil(box["y"])) + inset
    x1, y1 = int(box["x"] + box["w"]) - inset, int(box["y"] + box["h"]) - inset
    assert 0 <= x0 < x1 <= pixels.shape[1] and 0 <= y0 < y1 <= pixels.shape[0], box
    return pixels[y0:y1, x0:x1]


def blocks(pixels: np.ndarray, size: int = 8) -> np.ndarray:
    """Mean over size x size blocks (edges trimmed): tolerant of sub-pixel placement."""
    h, w = (pixels.shape[0] // size) * size, (pixels.shape[1] // size) * size
    return pixels[:h, :w].reshape(h // size, size, w // size, size, -1).mean(axis=(1, 3))


def test_every_figure_is_decoded_and_every_table_has_rows(page):
    out, measured, _, _ = page
    ids = [image["id"] for image in measured["images"]]
    assert sorted(ids) == sorted(f"figure-{p.stem}" for p in (out / "figures").glob("*.png"))
    assert len(ids) == 5
    for image in measured["images"]:
        with Image.open(out / "figures" / f"{image['id'].removeprefix('figure-')}.png") as png:
            size = [png.width, png.height]
        assert image["src"] == "data:image/png;base64,"
        assert image["complete"] and image["natural"] == size, image  # decoded
        # shown at its own size (the page is wide enough), plus a 1 px border
        assert [image["box"]["w"], image["box"]["h"]] == [size[0] + 2, size[1] + 2], image
    data = load_results(out)
    rows = [table["rows"] for table in measured["tables"]]
    assert rows[0] == len(data["statistics"]["cells"]["all"]["activations"]) == 2
    assert len(rows) >= 10 and all(n >= 1 for n in rows)
    assert rows[-1] == len({k for t in data["trials"] for k in t["environment"]})


def expected_pixels(path: Path, box: dict, shape: tuple[int, int]) -> np.ndarray:
    """The part of the figure at ``path`` that :func:`crop` cuts from an image shown in ``box``
    (1 px border, 2 px inset), resized to ``shape`` (rows, columns) as RGB."""
    with Image.open(path) as figure:
        sx, sy = figure.width / (box["w"] - 2), figure.height / (box["h"] - 2)
        left, top = round(sx), round(sy)
        part = figure.convert("RGB").crop(
            (left, top, left + round((box["w"] - 4) * sx), top + round((box["h"] - 4) * sy))
        )
        return np.asarray(part.resize((shape[1], shape[0])), dtype=np.float64)


def test_screenshot_shows_the_figures_and_tables(page):
    out, measured, pixels, shot = page
    height = min(int(measured["height"]), MAX_HEIGHT)
    assert pixels.shape == (height, 1200, 3), shot
    assert pixels.std() > 25, f"{shot} looks blank"
    figures = sorted((out / "figures").glob("*.png"))
    for image in measured["images"]:
        region = crop(pixels, image["box"])
        candidates = {p.stem: expected_pixels(p, image["box"], region.shape) for p in figures}
        candidates["(blank)"] = np.full_like(region, 255.0)
        distance = {k: np.abs(blocks(region) - blocks(v)).mean() for k, v in candidates.items()}
        name = image["id"].removeprefix("figure-")
        inked = (region.min(axis=-1) < 200).mean()
        expected_ink = (candidates[name].min(axis=-1) < 200).mean()
        assert expected_ink > 0.005 and inked > expected_ink / 2, f"{name} blank in {shot}"
        # the screenshot shows this figure: closest to its own PNG, and close in absolute terms
        assert min(distance, key=distance.get) == name, f"{name}: {distance} in {shot}"
        assert distance[name] < 3, f"{name} differs from its PNG: {distance} in {shot}"
    for table in measured["tables"]:
        if table["box"]["y"] + table["box"]["h"] > height:
            continue  # below a capped screenshot
        region = crop(pixels, table["box"], inset=1)
        dark = (region.mean(axis=-1) < 110).mean()
        assert dark > 0.01, f"table at y={table['box']['y']:.0f} shows no text in {shot}"
