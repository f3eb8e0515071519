"""The study's raw data as our reference data: ``artifacts/reference/study-raw.json``.

:func:`build` reads a local copy of the study's repository (``../shared/original-study``: its
README maps each file to its path in the repository) and returns one document, schema
``study-raw.schema.json``, with the source of every file (repository, commit, path in the
repository, path in the copy, SHA-256 and size of the file), every CharLM result file's runs
(per trial: seed, final metrics, time, both loss curves; the PD pairs; the stored averages), the
summary tables' CharLM rows, the full run's log (every evaluation, progress line, final metric
and PD pair, as printed) and the study's configuration classes.

The import is deterministic: the same copy gives the same bytes (:func:`dumps`), which
``tests/test_rawdata.py`` checks against the committed file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from charlm.io import sha256_file
from reproduce import results
from reproduce.rawdata import sources

__all__ = [
    "COMMIT",
    "FORMAT",
    "REPOSITORY",
    "SCHEMA",
    "build",
    "dumps",
    "load",
    "validate",
]

FORMAT = "charlm-repro study raw data"
SCHEMA = "study-raw.schema.json"
REPOSITORY = "github.com/pankajtakawale/llm-reproducibility-activations"
COMMIT = "1551da0dbb6e0cc152163773f7cca40897fa13fd"
COMMIT_DATE = "2025-12-14"

# directory in the copy -> directory in the repository (the copy's README.md, "here / in the
# repository" table)
COPY_TO_REPOSITORY = {
    "results-full": "results-char",
    "results-partial": "results-Dec7-3hrs",
    "code": "",
    "": "",
}


def repository_path(copy_path: str) -> str:
    """The path in the study's repository of a file at ``copy_path`` in the copy."""
    parent, _, name = copy_path.rpartition("/")
    if parent not in COPY_TO_REPOSITORY:
        raise ValueError(f"{copy_path}: not a directory of the study's copy we know")
    base = COPY_TO_REPOSITORY[parent]
    return f"{base}/{name}" if base else name


def _source(root: Path, copy_path: str, kind: str) -> dict:
    path = root / copy_path
    if not path.is_file():
        raise ValueError(f"{path}: missing from the study's copy (is {root} the copy?)")
    return {
        "path": repository_path(copy_path),
        "copy_path": copy_path,
        "kind": kind,
        "sha256": sha256_file(path),
        "bytes": path.stat().st_size,
    }


def _scale_dir(copy_path: str) -> str:
    return "full" if copy_path.startswith("results-full/") else "partial"


def build(root: str | Path) -> dict:
    """The reference document from the study's copy at ``root``.

    Raises:
        ValueError: a file is missing or cannot be parsed (one line naming it).
    """
    root = Path(root)
    if not root.is_dir():
        raise ValueError(f"{root}: no such directory (give the study's copy)")
    files: list[dict] = []
    runs: list[dict] = []
    result_paths = sorted(
        p.relative_to(root).as_posix()
        for d in ("results-full", "results-partial")
        for p in (root / d).glob("*.json")
        if p.name.startswith("charlm-") or p.name == "all_experiments_summary.json"
    )
    for copy_path in result_paths:
        source = _source(root, copy_path, "result")
        files.append(source)
        for run in sources.parse_result_file(root / copy_path):
            if run["model"] != "charlm":
                continue
            stem = copy_path.rsplit("/", 1)[1].removesuffix(".json")
            run_id = f"{_scale_dir(copy_path)}/{stem}"
            if stem == "all_experiments_summary":
                run_id += f"/{run['activation']}"
            runs.append({"id": run_id, "file": source["path"], **run})
    tables = []
    for copy_path in ("results-full/summary.txt", "results-partial/summary.txt"):
        source = _source(root, copy_path, "summary-table")
        files.append(source)
        rows = sources.parse_summary_table(root / copy_path)
        tables.append({"file": source["path"], "model": "charlm", "rows": rows})
    log_source = _source(root, "charlm_full_run.log", "log")
    files.append(log_source)
    log = {"file": log_source["path"], **sources.parse_log(root / "charlm_full_run.log")}
    log["decimals"] = dict(sources.LOG_DECIMALS)
    configs = []
    for path in sorted((root / "code").glob("config*.py")):
        source = _source(root, path.relative_to(root).as_posix(), "config")
        files.append(source)
        for cls in sources.parse_configs(path):
            configs.append({"file": source["path"], **cls})
    doc = {
        "format": FORMAT,
        "format_version": 1,
        "source": {
            "repository": REPOSITORY,
            "commit": COMMIT,
            "commit_date": COMMIT_DATE,
            "copy": "../shared/original-study",
            "imported_by": "python -m reproduce reference import",
            "note": "Numbers as the study's files hold them: JSON floats exactly, the log's "
            "figures as printed (decimals under log.decimals). Seeds: trial k of a run had "
            f"seed {sources.SEED_BASE} + k - 1 (train.py, run_experiment).",
        },
        "files": files,
        "configs": configs,
        "runs": runs,
        "summary_tables": tables,
        "log": log,
    }
    validate(doc)
    return doc


def validate(doc: Any, what: str = "study raw data") -> None:
    """Validate against ``study-raw.schema.json`` plus what a schema cannot say: unique run
    ids, each run's file among ``files``, trial numbers 1..n in order.

    Raises:
        ValueError: one line naming the first problem and where it is.
    """
    try:
        results.validate(doc, SCHEMA)
    except ValueError as exc:
        raise ValueError(f"{what}: {exc}") from None
    known = {f["path"] for f in doc["files"]}
    seen: set[str] = set()
    for run in doc["runs"]:
        if run["id"] in seen:
            raise ValueError(f"{what}: duplicate run id {run['id']!r}")
        seen.add(run["id"])
        if run["file"] not in known:
            raise ValueError(f"{what}: run {run['id']} names a file not in 'files'")
        numbers = [t["trial"] for t in run["trials"]]
        if numbers != list(range(1, len(numbers) + 1)):
            raise ValueError(f"{what}: run {run['id']} has trials {numbers}, not 1..n")


def dumps(doc: dict) -> str:
    """The document as the committed file holds it: indented JSON, keys in build order,
    UTF-8 text, newline at the end (the same document always gives the same bytes)."""
    return json.dumps(doc, indent=1, ensure_ascii=False, allow_nan=False) + "\n"


def load(path: str | Path) -> dict:
    """Read and validate a study raw data file.

    Raises:
        ValueError: unreadable, not JSON or invalid (one line).
    """
    path = Path(path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: cannot be read as JSON ({exc})") from None
    validate(doc, str(path))
    return doc
