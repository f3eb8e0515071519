"""``python -m reproduce publish RUN_DIR DEST [--with-weights]``: the shipped copy of a run.

DEST receives results.json, the report files and figures, the training logs as one
deterministic ``logs.tar.gz``, and, only with ``--with-weights``, each trial's
``trials/<id>/weights.safetensors`` (the run directory's layout, so ``verify`` reads both). A
report rendered with ``--reference``, ``--compare`` or ``--study`` takes what it read along
(``reference.json``, ``compare/results.json``, ``study/study-raw.json`` with the
``provenance.json`` beside it), so DEST re-renders anywhere it is copied. Its SHA256SUMS lists
exactly what it ships. DEST is assembled beside itself and swapped in whole, so a reader never
sees a half-published directory.
"""

from __future__ import annotations

import argparse
import gzip
import io
import os
import shutil
import tarfile
import tempfile
from pathlib import Path

from charlm.io import atomic_write_bytes
from charlm.train import LOG_FILE, WEIGHTS_FILE
from reproduce import results
from reproduce.errors import UserError
from reproduce.manifest import MANIFEST, write_manifest
from reproduce.rawdata.provenance import FILE as PROVENANCE_FILE
from reproduce.sweep import TRIALS_DIR
from reproduce.verification.integrity import check_trial_ids
from reproduce.verification.paths import scan

__all__ = ["SHIPPED_FILES", "SHIPPED_DIRS", "LOGS_ARCHIVE", "logs_archive", "publish"]

SHIPPED_FILES = ("results.json", "report.md", "report.html", "audit.md")
SHIPPED_DIRS = ("figures",)
LOGS_ARCHIVE = "logs.tar.gz"
REFERENCE_COPY = "reference.json"  # the --reference file a report was rendered with
COMPARE_COPY = "compare"  # the results.json of the --compare run, as compare/results.json
STUDY_COPY = "study"  # the --study raw data and the provenance.json beside it, in study/
STUDY_RAW_COPY = "study-raw.json"  # the raw data's name in study/ (load_study checks its digest)
# the only files publish writes below its copy directories
COPIES = {
    f"{COMPARE_COPY}/{results.RESULTS_FILE}",
    f"{STUDY_COPY}/{STUDY_RAW_COPY}",
    f"{STUDY_COPY}/{PROVENANCE_FILE}",
}
RENDER_OPTIONS = ("reference", "compare", "study")


def _unexpected_file(dest: Path) -> str | None:
    """The first file in ``dest`` that :func:`publish` never writes (None: a publication)."""
    top = {*SHIPPED_FILES, *SHIPPED_DIRS, LOGS_ARCHIVE, MANIFEST, REFERENCE_COPY}
    for path in sorted(p for p in dest.rglob("*") if not p.is_dir()):
        parts = path.relative_to(dest).parts
        weights = len(parts) == 3 and parts[0] == TRIALS_DIR and parts[2] == WEIGHTS_FILE
        if not weights and parts[0] not in top and "/".join(parts) not in COPIES:
            return "/".join(parts)
    return None


def logs_archive(run_dir: Path, trial_ids: list[str]) -> bytes:
    """A gzip-compressed tar of ``trials/<id>/log.jsonl`` for each trial, byte-identical for the
    same logs: members sorted, times, owners and gzip header zeroed."""
    buffer = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buffer, mtime=0) as gz:
        with tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar:
            for trial_id in sorted(trial_ids):
                rel = f"{TRIALS_DIR}/{trial_id}/{LOG_FILE}"
                payload = (run_dir / rel).read_bytes()
                info = tarfile.TarInfo(rel)
                info.size, info.mtime, info.mode = len(payload), 0, 0o644
                info.uid = info.gid = 0
                info.uname = info.gname = ""
                tar.addfile(info, io.BytesIO(payload))
    return buffer.getvalue()


def _check_sources(run_dir: Path, data: dict) -> None:
    """Refuse a run directory whose files could lead publish to copy something else: a
    symbolic link or special file in it, or a trial id that is not the one its record
    builds (it names the directory weights and logs are copied from and to)."""
    odd = scan(run_dir)
    if odd:
        rel, kind = odd[0]
        raise UserError(f"{run_dir}/{rel} is {kind}; a run directory holds only files")
    problems = check_trial_ids(data["trials"])
    if problems:
        raise UserError(f"{run_dir}/results.json: {problems[0]}")
    for key in RENDER_OPTIONS:
        value = data["render"]["options"].get(key)
        if value is not None and os.path.isabs(value):
            raise UserError(f"{run_dir}/results.json: render option {key} {value!r} is absolute")


def _check_weights(run_dir: Path, trial_ids: list[str]) -> None:
    """Refuse ``--with-weights`` when a trial's weights are not in ``run_dir`` (a trial that
    ``merge`` brought without them), before anything is copied."""
    absent = [i for i in trial_ids if not (run_dir / TRIALS_DIR / i / WEIGHTS_FILE).is_file()]
    if absent:
        more = f" and {len(absent) - 1} more" if len(absent) > 1 else ""
        raise UserError(
            f"{run_dir} lacks the weights of {absent[0]}{more} (merged without them): "
            "publish without --with-weights"
        )


def publish(
    run_dir: str | os.PathLike, dest: str | os.PathLike, with_weights: bool = False
) -> Path:
    """Copy the shipped set of ``run_dir`` into ``dest`` and write its SHA256SUMS.

    results.json is copied with its render options (``compare``, ``reference``, ``study``) naming
    the copies shipped beside it, so a re-render finds them wherever ``dest`` is moved.

    Raises:
        FileNotFoundError: ``run_dir`` has no results.json (the sweep is not finished).
        UserError: ``dest`` is ``run_dir`` or inside it, a file, or an existing directory that
            is not a previous publication (one with SHA256SUMS and only the files publish
            writes), which is never overwritten; ``run_dir`` holds a symbolic link or special
            file, a trial id that is not its record's, or an absolute render option; with
            ``with_weights``, a trial whose weights are not in ``run_dir``. (Relative
            render options may lead outside ``run_dir``: ``render --reference FILE`` records
            them so, and publish copies what they name into DEST.)
    """
    run_dir, dest = Path(run_dir), Path(dest)
    data = results.load_results(run_dir)
    _check_sources(run_dir, data)
    if dest.resolve().is_relative_to(run_dir.resolve()):
        raise UserError("DEST must be outside RUN_DIR: publish copies a subset of a run")
    if dest.exists() and not dest.is_dir():
        raise UserError(f"DEST {dest} is a file; name a new directory or an earlier publication")
    if dest.exists() and any(dest.iterdir()):
        unexpected = None if (dest / MANIFEST).is_file() else MANIFEST + " (missing)"
        unexpected = unexpected or _unexpected_file(dest)
        if unexpected:
            raise UserError(
                f"{dest} exists and is not a published directory (it has {unexpected}); "
                "choose an empty or new DEST"
            )
    if with_weights:
        _check_weights(run_dir, [t["id"] for t in data["trials"]])
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent))
    try:
        for name in SHIPPED_FILES:
            if (run_dir / name).is_file() and name != results.RESULTS_FILE:
                shutil.copyfile(run_dir / name, staging / name)
        # the files a report was rendered with travel with it (render options are relative)
        options = data["render"]["options"]
        if options["reference"] is not None:
            shutil.copyfile(run_dir / options["reference"], staging / REFERENCE_COPY)
            options["reference"] = REFERENCE_COPY
        if options["compare"] is not None:
            (staging / COMPARE_COPY).mkdir()
            compared = run_dir / options["compare"] / results.RESULTS_FILE
            shutil.copyfile(compared, staging / COMPARE_COPY / results.RESULTS_FILE)
            options["compare"] = COMPARE_COPY
        if options.get("study") is not None:
            raw = run_dir / options["study"]
            (staging / STUDY_COPY).mkdir()
            shutil.copyfile(raw, staging / STUDY_COPY / STUDY_RAW_COPY)
            shutil.copyfile(raw.with_name(PROVENANCE_FILE), staging / STUDY_COPY / PROVENANCE_FILE)
            options["study"] = f"{STUDY_COPY}/{STUDY_RAW_COPY}"
        results.write_results(staging, data)
        for name in SHIPPED_DIRS:
            if (run_dir / name).is_dir():
                shutil.copytree(run_dir / name, staging / name)
        ids = [t["id"] for t in data["trials"]]
        atomic_write_bytes(staging / LOGS_ARCHIVE, logs_archive(run_dir, ids))
        if with_weights:
            for trial_id in ids:
                rel = Path(TRIALS_DIR) / trial_id / WEIGHTS_FILE
                (staging / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(run_dir / rel, staging / rel)
        write_manifest(staging)
        old = None
        if dest.exists():
            old = dest.with_name(f".{dest.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            dest.rename(old)
        staging.rename(dest)
        if old is not None:
            shutil.rmtree(old)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return dest


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``publish`` command."""
    p = subparsers.add_parser(
        "publish",
        help="copy a finished run's shipped files to DEST",
        description="Copy what a finished run ships (results.json, the report and figures, "
        "audit.md, the training logs as logs.tar.gz, the reference or compared results the "
        "report was rendered with, and with --with-weights every trial's weights) into DEST "
        "with its own SHA256SUMS. DEST must be new, empty or an earlier publication; nothing "
        "else is ever replaced.",
    )
    p.add_argument("run_dir", help="a finished run directory")
    p.add_argument("dest", help="destination directory (new, empty, or a previous publication)")
    p.add_argument(
        "--with-weights", action="store_true", help="also ship every trial's weights.safetensors"
    )

    def run(args: argparse.Namespace) -> int:
        dest = publish(args.run_dir, args.dest, args.with_weights)
        print(
            f"published {args.run_dir} to {dest}"
            + (" with weights" if args.with_weights else " (weights not shipped)")
        )
        return 0

    p.set_defaults(func=run)
