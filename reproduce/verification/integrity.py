"""Integrity: the directory holds only what a publication holds, SHA256SUMS matches it,
results.json is valid and names its trials by what they are, and every shipped weights file
matches its recorded digest and loads into the recorded architecture.

Nothing outside the directory is opened: :func:`check_layout` refuses symbolic links and
special files before any file is read, SHA256SUMS entries and trial ids pass
:mod:`reproduce.verification.paths`, and a trial id must equal the id built from its
activation, seed and grid values (:func:`reproduce.config.trial_id`), so it cannot name a
directory elsewhere.
"""

from __future__ import annotations

from pathlib import Path

from charlm.checkpoint import load_weights
from charlm.io import sha256_file
from charlm.model import ModelConfig
from charlm.train import WEIGHTS_FILE
from reproduce import results
from reproduce.config import ConfigError, group_id, trial_id
from reproduce.manifest import check_manifest
from reproduce.sweep import TRIALS_DIR
from reproduce.verification.paths import UnsafePath, inside, regular_file, safe_component, scan
from reproduce.verification.rows import FAIL, NOT_DISTRIBUTED, PASS, Row

__all__ = [
    "check_layout",
    "check_manifest_rows",
    "check_trial_ids",
    "check_integrity",
    "check_trial_dirs",
    "weights_path",
]

MANIFEST_VERDICTS = {
    "missing": "listed but missing",
    "mismatch": "content does not match its digest",
    "unlisted": "present but not listed in SHA256SUMS",
    "not a regular file": "listed but not a regular file",
}


def check_layout(directory: Path) -> list[Row]:
    """A FAIL row for each symbolic link, FIFO, device or socket under ``directory`` (a
    publication has only files and directories; a link could lead a check outside)."""
    return [
        Row("layout", rel, FAIL, f"{kind}: a publication holds only files and directories")
        for rel, kind in scan(directory)
    ]


def check_manifest_rows(directory: Path) -> list[Row]:
    """SHA256SUMS: every entry inside the directory, present and matching; no unlisted file.

    Raises:
        FileNotFoundError, ValueError: as :func:`reproduce.manifest.check_manifest`.
    """
    manifest = check_manifest(directory)
    rows = []
    for path, verdict in manifest:
        if verdict == "ok":
            continue
        if verdict.startswith("outside: "):
            rows.append(Row("manifest", path, FAIL, verdict[len("outside: ") :] + "; not read"))
            continue
        rows.append(Row("manifest", path, FAIL, MANIFEST_VERDICTS[verdict]))
    if not rows:
        rows.append(Row("manifest", "SHA256SUMS", PASS, f"{len(manifest)} files match"))
    return rows


def check_trial_ids(trials: list[dict]) -> list[str]:
    """Why trial records cannot be trusted to name their directories: an id that is not the
    one built from the record's activation, seed and grid (:func:`reproduce.config.trial_id`),
    a group that is not :func:`reproduce.config.group_id`'s, or an id given twice. Empty if
    every id is canonical."""
    problems, seen = [], set()
    for number, trial in enumerate(trials):
        claimed = trial["id"]
        try:
            safe_component(claimed, "trial id")
            expected = trial_id(trial["activation"], trial["seed"], trial["grid"])
            group = group_id(trial["activation"], trial["grid"])
        except (UnsafePath, ConfigError, ValueError) as exc:
            problems.append(f"trials/{number}: {exc}")
            continue
        if claimed != expected:
            problems.append(
                f"trials/{number}: id {claimed!r} is not the id of its activation, seed and "
                f"grid ({expected!r})"
            )
        elif trial["group"] != group:
            problems.append(f"trials/{number}: group {trial['group']!r}, expected {group!r}")
        elif claimed in seen:
            problems.append(f"trials/{number}: id {claimed!r} given twice")
        seen.add(claimed)
        if "/" in expected or "\\" in expected or expected in (".", ".."):
            problems.append(f"trials/{number}: id {expected!r} is not a plain file name")
    return problems


def weights_path(directory: Path, trial: dict) -> Path:
    """``directory/trials/<id>/weights.safetensors`` for a trial whose id passed
    :func:`check_trial_ids`, checked again to stay inside ``directory``."""
    return inside(directory, f"{TRIALS_DIR}/{trial['id']}/{WEIGHTS_FILE}", f"trial {trial['id']}")


def _weights_row(directory: Path, trial: dict) -> Row:
    path = weights_path(directory, trial)
    if not regular_file(path):
        recorded = f"recorded sha256 {trial['weights_sha256'][:16]}..."
        return Row("weights", trial["id"], NOT_DISTRIBUTED, recorded)
    actual = sha256_file(path)
    if actual != trial["weights_sha256"]:
        return Row(
            "weights",
            trial["id"],
            FAIL,
            f"{path.relative_to(directory)} has sha256 {actual[:16]}..., "
            f"results.json records {trial['weights_sha256'][:16]}...",
        )
    try:
        model, _ = load_weights(path)
    except ValueError as exc:
        return Row("weights", trial["id"], FAIL, str(exc))
    if model.config != ModelConfig.from_dict(trial["model"]):
        detail = "architecture in the file differs from the trial's record"
        return Row("weights", trial["id"], FAIL, detail)
    return Row("weights", trial["id"], PASS, "digest matches; loads into its model")


def check_integrity(directory: Path) -> tuple[list[Row], dict | None]:
    """Layout, manifest, schema, trial ids and weights checks; returns the rows and
    results.json (None if it cannot be used: nothing else is then checked).

    A directory with a symbolic link or special file, or whose SHA256SUMS names a path
    outside it, stops here: nothing more of it is read.
    """
    rows = check_layout(directory)
    if rows:
        return rows, None
    try:
        rows += check_manifest_rows(directory)
    except ValueError as exc:
        return [Row("manifest", "SHA256SUMS", FAIL, str(exc))], None
    if any(r.check == "manifest" and "not read" in r.detail for r in rows):
        return rows, None
    try:
        data = results.load_results(directory)
    except (ValueError, FileNotFoundError) as exc:
        rows.append(Row("schema", "results.json", FAIL, str(exc)))
        return rows, None
    rows.append(Row("schema", "results.json", PASS, f"schema_version {data['schema_version']}"))
    problems = check_trial_ids(data["trials"])
    if problems:
        detail = "; ".join(problems[:3]) + " (a trial id names its directory)"
        rows.append(Row("trial ids", "results.json", FAIL, detail))
        return rows, None
    detail = "each built from its activation, seed and grid"
    rows.append(Row("trial ids", "results.json", PASS, detail))
    rows += [_weights_row(directory, trial) for trial in data["trials"]]
    return rows, data


def check_trial_dirs(directory: Path, data: dict) -> list[Row]:
    """A FAIL row for each ``trials/<id>`` directory that results.json does not describe."""
    known = {t["id"] for t in data["trials"]}
    trials_dir = directory / TRIALS_DIR
    present = (
        sorted(p.name for p in trials_dir.iterdir() if p.is_dir()) if trials_dir.is_dir() else []
    )
    return [
        Row(
            "trials",
            f"{TRIALS_DIR}/{name}",
            FAIL,
            "not in results.json: an unfinished trial or one of another config (finish it with "
            "`run`, or ship only results.json's trials with `publish`)",
        )
        for name in present
        if name not in known
    ]
