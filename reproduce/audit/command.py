"""The ``audit`` command: ``python -m reproduce audit FILE [--json]``.

It audits a report's own numbers (this package) and the study's raw data
(:mod:`reproduce.rawdata`, which uses this package): it sits above both, and
``reproduce.audit`` itself does not import it."""

from __future__ import annotations

import argparse
import json

from reproduce import terminal
from reproduce.audit.rows import audit_document
from reproduce.audit.schema import load_document
from reproduce.audit.table import format_table
from reproduce.rawdata import command as rawdata

__all__ = ["register"]


def _is_study_raw(path: str) -> bool:
    """True for the study's raw data (``artifacts/reference/study-raw.json``)."""
    try:
        with open(path, encoding="utf-8") as handle:
            head = handle.read(200)
    except (OSError, UnicodeDecodeError):
        return False  # load_document names the problem
    return '"format": "charlm-repro study raw data"' in head


def _run_study_raw(args: argparse.Namespace) -> int:

    if args.json:
        found, _ = rawdata.load_findings(args.file)
        print(json.dumps(found, indent=2, ensure_ascii=False))
    else:
        print(rawdata.audit_markdown(args.file, terminal.width()), end="")
    return 0


def _run(args: argparse.Namespace) -> int:
    if _is_study_raw(args.file):
        return _run_study_raw(args)
    doc = load_document(args.file)
    rows = audit_document(doc)
    if args.json:
        print(json.dumps(rows, indent=2, ensure_ascii=False))
        return 0
    source = doc.get("source") or {}
    title = source.get("title") or "results"
    width = terminal.width()
    heading = (
        f"audit of {args.file}: {title}"
        + (f" (sha256 {source['sha256']})" if source.get("sha256") else "")
        + f", {len(doc['trials'])} trials"
    )
    print("\n".join(terminal.wrap(heading, width, indent="  ", first="")))
    if "claims" not in doc and not doc.get("statistics"):
        print("no claims and no stored statistics: recomputed summary only")
    print(format_table(rows, width))
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``audit`` command: ``python -m reproduce audit FILE [--json]``."""
    parser = subparsers.add_parser(
        "audit",
        help="recompute a report's claims from its own per-trial data",
        description="Recompute each claim in FILE (a reference file or a results.json) from its "
        "per-trial data and say whether it is consistent, inconsistent or not checkable. Exit "
        "status 0 when the audit ran (inconsistencies are findings), 2 for unreadable or "
        "invalid input.",
    )
    parser.add_argument(
        "file",
        metavar="FILE",
        help="reference file, results.json, or the study's raw data (study-raw.json: the "
        "findings and verdicts of the report against it)",
    )
    parser.add_argument("--json", action="store_true", help="print the rows as JSON")
    parser.set_defaults(func=_run)
