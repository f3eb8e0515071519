"""The report: ``templates/report.md.j2`` and ``templates/report.html.j2`` rendered with jinja2
from results.json alone, with the figures of :mod:`reproduce.figures`.

Every number, ranking and significance word comes from results.json through
:func:`reproduce.report_context.context`; the templates only lay them out, and both are rendered
from the same context dict, so the Markdown and the HTML report never disagree. report.md links
the figures (``figures/*.png``); report.html is self-contained: figures embedded as base64
``data:`` URIs, inline CSS, no script and no network reference (its Content-Security-Policy
forbids any fetch).
``python -m reproduce render DIR`` re-renders (rendering twice gives identical bytes) with the
render options recorded in results.json unless told otherwise. The figures are derived files:
results.json does not record them.
"""

from __future__ import annotations

import argparse
import html
import json
import os
import posixpath
from collections.abc import Callable
from pathlib import Path

import jinja2

from charlm.io import atomic_write_bytes
from reproduce import audit, mdblocks, results, terminal
from reproduce import compare as compare_mod
from reproduce import figures as figures_mod
from reproduce.errors import UserError
from reproduce.manifest import write_manifest
from reproduce.rawdata.provenance import FILE as PROVENANCE_FILE
from reproduce.report_context import context, format_number, format_p
from reproduce.verification.paths import UnsafePath, inside

__all__ = [
    "TEMPLATE_DIR",
    "REPORT_MD",
    "REPORT_HTML",
    "context",
    "figure_context",
    "option_paths",
    "render_markdown",
    "render_html",
    "render_directory",
]

TEMPLATE_DIR = Path(__file__).resolve().parents[1] / "templates"
REPORT_MD = "report.md"
REPORT_HTML = "report.html"
AUDIT_MD = "audit.md"


def figure_context(rendered: list[figures_mod.RenderedFigure]) -> dict[str, dict]:
    """The templates' ``figures``: name -> :meth:`~reproduce.figures.RenderedFigure.as_context`
    (path, title, caption, alt, width, height, data_uri), in :data:`reproduce.figures.FIGURES`
    order."""
    return {f.name: f.as_context() for f in rendered}


def environment() -> jinja2.Environment:
    """The jinja2 environment: templates/ on disk, StrictUndefined, number filters; HTML
    templates (``*.html.j2``) are autoescaped (``jinja2.select_autoescape``), Markdown ones
    are not."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATE_DIR),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=jinja2.select_autoescape(
            enabled_extensions=("html", "html.j2"), default_for_string=False, default=False
        ),
    )
    env.filters["num"] = format_number
    env.filters["p"] = format_p
    env.filters["pct"] = lambda v, d=2: "—" if v is None else f"{v:.{d}f}%"
    env.filters["json"] = lambda v: json.dumps(v, sort_keys=True)
    env.filters["blocks"] = mdblocks.to_markdown
    env.filters["code_spans"] = code_spans
    return env


def code_spans(text: str) -> str:
    """HTML for a line of :mod:`reproduce.mdblocks` text: escaped (``html.escape``), with each
    Markdown code span (a pair of backticks) as ``<code>``; the template marks it ``safe``."""
    parts = html.escape(str(text)).split("`")
    if len(parts) % 2 == 0:  # an unpaired backtick stays as it is
        return html.escape(str(text))
    return "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts))


def render_markdown(ctx: dict) -> str:
    """The Markdown report for a :func:`context`."""
    return environment().get_template("report.md.j2").render(**ctx)


def render_html(ctx: dict) -> str:
    """The self-contained HTML report for a :func:`context` (the same dict as the Markdown)."""
    return environment().get_template("report.html.j2").render(**ctx)


def option_paths(
    directory: str | os.PathLike, key: str, recorded: str, what: str = "render option"
) -> list[Path]:
    """The paths a render reads for the render option ``key`` recorded as ``recorded``: the
    path itself and what it implies (``compare``: the results.json in that directory;
    ``study``: the provenance.json beside the raw data), each checked to stay inside
    ``directory`` (:func:`reproduce.verification.paths.inside`; ``what``, followed by
    ``key``, names the option in its message).

    Raises:
        UnsafePath: one of them leads outside ``directory`` or through a link.
    """
    implied = {
        "compare": posixpath.join(recorded, results.RESULTS_FILE),
        "study": posixpath.join(posixpath.dirname(recorded), PROVENANCE_FILE),
    }
    rels = [recorded] + ([implied[key]] if key in implied else [])
    return [inside(directory, rel, f"{what} {key}") for rel in rels]


def _resolve(directory: Path, recorded: str | None) -> Path | None:
    return None if recorded is None else (directory / recorded).resolve()


def render_directory(
    directory: str | os.PathLike,
    *,
    compare: str | os.PathLike | None = None,
    reference: str | os.PathLike | None = None,
    study: str | os.PathLike | None = None,
    log: Callable[[str], None] = print,
    write: bool = True,
    contained: bool = False,
) -> dict[str, bytes]:
    """Render the report files of a run directory from its results.json.

    ``compare`` (another run's directory), ``reference`` (a published report's reference
    file, for the replication verdict of :mod:`reproduce.compare`) and ``study`` (the study's
    raw data, ``study-raw.json`` with ``provenance.json`` beside it: a study-protocol sweep is
    then set beside the study's own trials, :mod:`reproduce.likeforlike`) are recorded in
    results.json's render options, relative to ``directory``, and reused by later renders;
    without them the recorded options are used. With ``contained``, a recorded option (not
    one given here) must lead to a path inside ``directory``
    (:func:`reproduce.verification.paths.inside`): the ``render`` command and ``verify`` read
    nothing outside a directory that results.json names.

    Renders report.md, report.html, every figure (``figures/<name>.png``, see
    :mod:`reproduce.figures`) and audit.md (:mod:`reproduce.audit` of results.json); results.json
    is only written when an option changes.

    Returns:
        relative POSIX path -> bytes of every rendered file (written atomically when ``write``),
        e.g. ``"report.md"``, ``"report.html"``, ``"figures/val_loss_curves.png"``.

    Raises:
        UserError: with ``contained``, a recorded option leading outside ``directory``; a
            ``study`` option for a sweep that cannot be set beside the study's trials, or
            naming files that are not the study's raw data.
    """
    directory = Path(directory)
    data = results.load_results(directory)
    options = data["render"]["options"]
    given = {"compare": compare, "reference": reference, "study": study}
    for key, value in given.items():
        if contained and value is None and options.get(key) is not None:
            try:
                option_paths(directory, key, options[key], "results.json's render option")
            except UnsafePath as exc:
                raise UserError(f"{exc}; name it with --{key} to follow it") from None
    for key, value in given.items():
        if value is not None:
            options[key] = os.path.relpath(Path(value).resolve(), directory.resolve())
    compare_dir = _resolve(directory, options.get("compare"))
    compare_data = results.load_results(compare_dir) if compare_dir else None
    reference_path = _resolve(directory, options.get("reference"))
    reference_data = None if reference_path is None else compare_mod.load_reference(reference_path)
    replication = None
    if reference_data is not None:
        replication = compare_mod.replication(data, reference_data)
    study_path = _resolve(directory, options.get("study"))
    beside = _beside_study(data, study_path, reference_data, compare_data)
    rendered = figures_mod.render_figures(data)
    extra = {"figures": figure_context(rendered), "replication": replication, "beside": beside}
    ctx = context(data, compare_data, extra=extra)
    files = {
        REPORT_MD: render_markdown(ctx).encode("utf-8"),
        REPORT_HTML: render_html(ctx).encode("utf-8"),
        AUDIT_MD: audit_markdown(data).encode("utf-8"),
        **{f.path: f.png for f in rendered},
    }
    if write:
        if any(v is not None for v in given.values()):
            results.write_results(directory, data)
        for name, payload in files.items():
            atomic_write_bytes(directory / name, payload)
        text = f"rendered {', '.join(sorted(files))} in {directory}"
        for line in terminal.wrap(text, terminal.width(), indent="  ", first=""):
            log(line)
    return files


def _beside_study(
    data: dict, study_path: Path | None, reference: dict | None, compared: dict | None
) -> dict | None:
    """:func:`reproduce.likeforlike.section` for the ``study`` render option (None without
    it), with the compared run as the nanoGPT-recipe column when it followed that recipe."""
    if study_path is None:
        return None
    from reproduce import likeforlike  # scipy: only for this section

    raw, prov = likeforlike.load_study(study_path)
    nanogpt = None
    if compared is not None and compare_mod.procedure(compared["trials"]) == "nanogpt":
        nanogpt = compared
    return likeforlike.section(data, raw, prov, reference, nanogpt)


def audit_markdown(data: dict) -> str:
    """audit.md: every checkable claim of results.json recomputed from its trial records
    (:func:`reproduce.audit.audit_document`), as a table."""
    rows = audit.audit_document(data)
    return (
        f'# Audit of results.json (sweep "{data["config"]["name"]}")\n\n'
        "Each summary figure stored in results.json, recomputed from the per-trial records by "
        "`python -m reproduce audit results.json`.\n\n```text\n"
        f"{audit.format_table(rows)}\n```\n"
    )


def _render_command(args: argparse.Namespace) -> int:
    directory = Path(args.dir)
    for key in ("compare", "reference", "study"):
        if getattr(args, key) == "":
            raise UserError(f"--{key} is empty; name a file or directory, or leave it out")
    render_directory(
        directory,
        compare=args.compare,
        reference=args.reference,
        study=args.study,
        contained=True,
    )
    write_manifest(directory)
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``render`` command."""
    p = subparsers.add_parser(
        "render",
        help="re-render the report of a run directory",
        description="Render report.md, report.html, the figures and audit.md of a run or "
        "published directory from its results.json alone, and rewrite its SHA256SUMS. "
        "--compare, --reference and --study are recorded in results.json and reused by later "
        "renders.",
    )
    p.add_argument("dir", help="a run or published directory with results.json")
    p.add_argument(
        "--compare",
        default=None,
        metavar="DIR",
        help="another run to compare with (recorded for later renders)",
    )
    p.add_argument(
        "--reference",
        default=None,
        metavar="FILE",
        help="a published report's reference file: adds the replication verdict (recorded)",
    )
    p.add_argument(
        "--study",
        default=None,
        metavar="FILE",
        help="the study's raw data (artifacts/reference/study-raw.json, provenance.json "
        "beside it): sets a study-protocol sweep beside the study's own trials (recorded)",
    )
    p.set_defaults(func=_render_command)
