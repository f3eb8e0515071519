"""``python -m reproduce reference import``: the study's raw data into ``artifacts/reference/``;
``python -m reproduce reference trials DIR``: a study-protocol sweep trial by trial beside the
study's trials of the same configuration (:mod:`reproduce.studytrials`).

``import`` writes ``study-raw.json`` (:mod:`reproduce.rawdata.importer`) and ``provenance.json``
(:mod:`reproduce.rawdata.provenance`) from a copy of the study's repository, atomically, each
checked against its schema before it is written. The same copy always gives the same bytes.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

from charlm.io import atomic_write_text
from reproduce import results, terminal
from reproduce.rawdata import findings, importer, markdown, provenance

__all__ = [
    "AUDIT",
    "DEFAULT_SOURCE",
    "PROVENANCE",
    "RAW",
    "REPORT_REFERENCE",
    "audit_markdown",
    "import_reference",
    "register",
]

RAW = "study-raw.json"
PROVENANCE = "provenance.json"
AUDIT = "audit.md"
REPORT_REFERENCE = "charlm-full-20251208.json"  # the report's own numbers, beside the raw data
REPO = Path(__file__).resolve().parents[2]
DEFAULT_SOURCE = REPO.parent / "shared" / "original-study"
DEFAULT_OUT = REPO / "artifacts" / "reference"


def provenance_text(raw_text: str) -> str:
    """provenance.json's text for study-raw.json's text (its digest is recorded)."""
    raw = json.loads(raw_text)
    digest = hashlib.sha256(raw_text.encode("utf-8")).hexdigest()
    doc = provenance.build(raw, RAW, digest)
    try:
        results.validate(doc, provenance.SCHEMA)
    except ValueError as exc:
        raise ValueError(f"provenance: {exc}") from None
    return importer.dumps(doc)


def load_findings(raw_path: str | Path) -> tuple[dict, dict]:
    """The findings of :mod:`reproduce.rawdata.findings` for a study-raw.json, with
    provenance.json and the report's reference file read from the same directory.

    Raises:
        ValueError: a file is missing or invalid (one line).
    """
    raw_path = Path(raw_path)
    raw = importer.load(raw_path)
    prov_path, ref_path = raw_path.with_name(PROVENANCE), raw_path.with_name(REPORT_REFERENCE)
    for path in (prov_path, ref_path):
        if not path.is_file():
            raise ValueError(f"{path}: missing (it belongs beside {raw_path.name})")
    prov = json.loads(prov_path.read_text(encoding="utf-8"))
    results.validate(prov, provenance.SCHEMA)
    from reproduce import audit

    reference = audit.load_document(ref_path)
    return findings.collect(raw, prov, reference), prov


def audit_markdown(raw_path: str | Path, width: int = 80) -> str:
    """audit.md of the raw data in ``raw_path``'s directory, wrapped to ``width``."""
    found, prov = load_findings(raw_path)
    return markdown.markdown(found, prov, width)


def import_reference(source: str | Path, out: str | Path) -> dict[str, str]:
    """Build study-raw.json, provenance.json and audit.md from the study's copy at ``source``
    into ``out``, and set the ``raw_data`` verdicts of the report's reference file there.

    Returns:
        file name -> text written.

    Raises:
        ValueError: the copy is missing a file or a file cannot be parsed (one line).
    """
    out = Path(out)
    if not out.is_dir():
        raise ValueError(f"{out}: no such directory (create it or give --out)")
    reference_path = out / REPORT_REFERENCE
    if not reference_path.is_file():
        raise ValueError(f"{reference_path}: missing (the report's reference file goes beside)")
    from reproduce import audit

    reference = audit.load_document(reference_path)
    raw_text = importer.dumps(importer.build(source))
    prov_text = provenance_text(raw_text)
    prov = json.loads(prov_text)
    found = findings.collect(json.loads(raw_text), prov, reference)
    texts = {  # every text is made (and checked) before any file is written
        RAW: raw_text,
        PROVENANCE: prov_text,
        AUDIT: markdown.markdown(found, prov),
        REPORT_REFERENCE: _with_raw_verdicts(reference_path, raw_text, found),
    }
    for name, text in texts.items():
        atomic_write_text(out / name, text)
    return texts


def _with_raw_verdicts(reference_path: Path, raw_text: str, found: dict) -> str:
    """The report's reference file with its ``raw_data`` section (the verdicts of the raw
    data, so that they travel with the reference into every report rendered with it) set;
    everything else as it was (the file's own layout: 2-space JSON, UTF-8)."""
    reference = json.loads(reference_path.read_text(encoding="utf-8"))
    reference["raw_data"] = {
        "file": RAW,
        "sha256": hashlib.sha256(raw_text.encode("utf-8")).hexdigest(),
        "audit": AUDIT,
        "verdicts": found["verdicts"],
    }
    from reproduce import audit

    audit.validate_reference(reference, str(reference_path))
    return json.dumps(reference, indent=2, ensure_ascii=False) + "\n"


def _import(args: argparse.Namespace) -> int:
    texts = import_reference(args.source, args.out)
    prov = json.loads(texts[PROVENANCE])["summary"]
    lines = [
        f"wrote {', '.join(texts)} in {args.out} from {args.source}",
        f"provenance of {prov['runs']} runs: {prov['identified']} identified, "
        f"{prov['ambiguous']} ambiguous, {prov['unidentified']} unidentified; recomputed "
        f"step-0 losses {prov['step0_recomputed']}",
    ]
    for line in lines:
        print("\n".join(terminal.wrap(line, terminal.width(), indent="  ", first="")))
    return 0


def _trials(args: argparse.Namespace) -> int:
    from reproduce import studytrials  # scipy: only for this action

    raw_path = Path(args.raw)
    raw = importer.load(raw_path)
    prov = json.loads(raw_path.with_name(PROVENANCE).read_text(encoding="utf-8"))
    ours = results.load_results(args.dir)
    nanogpt = results.load_results(args.nanogpt) if args.nanogpt else None
    comparison = studytrials.compare_trials(ours, raw, prov)
    rows = studytrials.three_columns(raw, prov, comparison["config"]["name"], ours, nanogpt)
    print(studytrials.markdown(comparison))
    print(studytrials.three_columns_markdown(rows, comparison["config"]), end="")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``reference import`` and ``reference trials``."""
    parser = subparsers.add_parser(
        "reference",
        help="import the study's raw data as reference data",
        description="Reference data from the study's own repository: `reference import` "
        "writes artifacts/reference/study-raw.json, provenance.json and audit.md; `reference "
        "trials DIR` sets a study-protocol sweep beside the study's trials, seed by seed.",
    )
    sub = parser.add_subparsers(
        dest="reference_command", required=True, metavar="ACTION", help="import, trials"
    )
    p = sub.add_parser(
        "import",
        help="write study-raw.json and provenance.json",
        description="Read a copy of the study's repository (result files, summary tables, run "
        "log, configs) and write artifacts/reference/study-raw.json and provenance.json, "
        "deterministically.",
    )
    p.add_argument("--source", default=str(DEFAULT_SOURCE), help="the study's copy (%(default)s)")
    p.add_argument("--out", default=str(DEFAULT_OUT), help="directory to write (%(default)s)")
    p.set_defaults(func=_import)
    p = sub.add_parser(
        "trials",
        help="a study-protocol sweep trial by trial beside the study's trials",
        description="Print, as Markdown, each trial of a study-protocol run or published "
        "directory beside the study's published trial of the same configuration, activation "
        "and seed (step-0 losses, final losses, val accuracy, differences), the paired t-test "
        "per activation (n = the seeds), the rankings, and the three-column table (the "
        "study's trials, ours under its procedure, ours under nanoGPT's recipe).",
    )
    p.add_argument("dir", help="a study-protocol run or published directory (results.json)")
    p.add_argument(
        "--nanogpt",
        default=None,
        metavar="DIR",
        help="the same scale under nanoGPT's recipe, e.g. artifacts/partial-cpu",
    )
    p.add_argument(
        "--raw",
        default=str(DEFAULT_OUT / RAW),
        help="study-raw.json, provenance.json beside it (%(default)s)",
    )
    p.set_defaults(func=_trials)
