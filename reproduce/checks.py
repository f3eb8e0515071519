"""The determinism check a torchrun sweep runs among its own trials, and the snapshot of its
records that a cut-off run still leaves behind.

``run --determinism-check STEPS`` (under torchrun, :mod:`reproduce.distributed`) gives one more
share of the sweep this job, trained on the same device as the sweep's trials and at the same
time as them:

1. **stop and resume**: the sweep's first trial (sorted by id) at ``STEPS`` steps, trained once
   straight through, and once stopped at step ``STEPS // 2`` (state saved), reloaded from that
   file and continued; both weights digests must be equal (:func:`resume_check`). Recorded in
   ``checks/resume.json``; a run stopped by the time limit before the record is written
   redoes this part from the start, since an interrupted "straight" run would prove nothing;
2. **a second copy**: the same trial at full length in ``checks/replica/<id>/``, which resumes
   from its own saved state like any trial; its weights digest must equal the sweep's own
   trial's.

When every trial and the check are finished, rank 0 writes ``checks/determinism.json``
(:func:`verdict`). Everything lives in the run directory, so a rerun redoes neither a
finished trial nor a finished check.

``run --snapshot FILE`` rewrites FILE, a deterministic ``.tar.gz`` of every trial's
``trial.json`` and ``log.jsonl`` and the check's records (:func:`snapshot`), each time a trial
finishes and when the run ends; ranks take turns with an advisory lock on FILE's directory.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import gzip
import io
import json
import os
import shutil
import sys
import tarfile
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from charlm.io import atomic_write_bytes, atomic_write_json
from charlm.train import (
    LOG_FILE,
    RECORD_FILE,
    TrainingInterrupted,
    TrialSpec,
    is_finished,
    train_trial,
)
from reproduce.config import Trial

__all__ = [
    "CHECKS_DIR",
    "CHECK_ID",
    "CheckPlan",
    "VERDICT_FILE",
    "is_done",
    "plan",
    "replica_dir",
    "resume_check",
    "run_check",
    "snapshot",
    "summary",
    "verdict",
]

CHECKS_DIR = "checks"
CHECK_ID = "determinism-check"  # its name among failed trials
REPLICA_DIR = f"{CHECKS_DIR}/replica"
RESUME_DIR = f"{CHECKS_DIR}/resume"
RESUME_RECORD = f"{CHECKS_DIR}/resume.json"
VERDICT_FILE = f"{CHECKS_DIR}/determinism.json"
MIN_STEPS = 2


@dataclass(frozen=True)
class CheckPlan:
    """What the determinism check trains.

    Attributes:
        trial: the sweep's trial that is copied (the first by id).
        steps: length of the stop/resume check, in optimizer steps (>= 2).
    """

    trial: Trial
    steps: int

    @property
    def stop_at(self) -> int:
        """The step at which the resumed run is stopped and reloaded."""
        return self.steps // 2

    def describe(self) -> str:
        """One line saying what the check trains."""
        return (
            f"copy of {self.trial.id} ({self.trial.spec.train.max_iters} steps), "
            f"{self.steps} steps resumed at {self.stop_at}"
        )


def plan(trials: list[Trial], steps: int) -> CheckPlan:
    """The check of a sweep whose trials are ``trials``.

    Raises:
        ValueError: no trial, or ``steps`` not an integer >= 2.
    """
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < MIN_STEPS:
        raise ValueError(f"--determinism-check needs at least {MIN_STEPS} steps, got {steps!r}")
    if not trials:
        raise ValueError("--determinism-check: the sweep has no trial to copy")
    return CheckPlan(sorted(trials, key=lambda t: t.id)[0], steps)


def replica_dir(out: Path, check: CheckPlan) -> Path:
    """``out/checks/replica/<id>/``: the second copy of the checked trial."""
    return Path(out) / REPLICA_DIR / check.trial.id


def is_done(out: Path, check: CheckPlan) -> bool:
    """True when both parts of the check are finished in ``out`` (for this plan)."""
    recorded = _resume_recorded(Path(out) / RESUME_RECORD, check)
    return recorded and is_finished(replica_dir(out, check))


def resume_check(
    spec: TrialSpec,
    corpus,
    directory: Path,
    steps: int,
    *,
    device: str | None = None,
    stop_check: Callable[[int], bool] | None = None,
    log: Callable[[str], None] | None = None,
) -> dict:
    """Train ``spec`` for ``steps`` steps straight, and again stopped at ``steps // 2``,
    reloaded from its saved state and continued; compare the final weights.

    Args:
        spec: the trial (its ``max_iters`` and ``eval_interval`` are replaced by ``steps``).
        corpus: the sweep's corpus.
        directory: work directory (emptied first; removed again afterwards).
        steps: total optimizer steps, >= 2.
        device: the device both runs train on (default the spec's).
        stop_check: an outside stop (time limit, signal): raises TrainingInterrupted.
        log: where the runs' plain progress lines go.

    Returns:
        ``{"steps", "stopped_at", "uninterrupted_sha256", "resumed_sha256",
        "resumed_at_steps", "identical", "device", "seconds"}``.

    Raises:
        TrainingInterrupted: ``stop_check`` stopped a run (nothing is kept).
        ValueError: ``steps`` < 2.
    """
    if steps < MIN_STEPS:
        raise ValueError(f"the resume check needs at least {MIN_STEPS} steps, got {steps}")
    started = time.monotonic()
    short = replace(spec, train=replace(spec.train, max_iters=steps, eval_interval=steps))
    stop_at = steps // 2
    directory = Path(directory)
    shutil.rmtree(directory, ignore_errors=True)
    common = {"device": device, "progress": False, "log": log}
    straight = train_trial(
        short, corpus, directory / "uninterrupted", stop_check=stop_check, **common
    )
    outside = {"fired": False}

    def halt(step: int) -> bool:
        if stop_check is not None and stop_check(step):
            outside["fired"] = True
            return True
        return step >= stop_at

    try:
        train_trial(short, corpus, directory / "resumed", stop_check=halt, **common)
    except TrainingInterrupted as exc:
        if outside["fired"] or exc.step != stop_at:
            raise
    else:
        raise RuntimeError(f"the resume check's run did not stop at step {stop_at}")
    resumed = train_trial(short, corpus, directory / "resumed", stop_check=stop_check, **common)
    shutil.rmtree(directory, ignore_errors=True)
    return {
        "steps": steps,
        "stopped_at": stop_at,
        "uninterrupted_sha256": straight["weights_sha256"],
        "resumed_sha256": resumed["weights_sha256"],
        "resumed_at_steps": resumed["resumed_at_steps"],
        "identical": straight["weights_sha256"] == resumed["weights_sha256"]
        and resumed["resumed_at_steps"] == [stop_at],
        "device": resumed["train"]["device_used"],
        "seconds": time.monotonic() - started,
    }


def run_check(
    out: Path,
    corpus,
    check: CheckPlan,
    *,
    device: str | None = None,
    stop_check: Callable[[int], bool] | None = None,
    log: Callable[[str], None] = print,
    step_log: Callable[[str], None] | None = None,
    on_done: Callable[[], None] | None = None,
) -> None:
    """Train what of ``check`` is not finished in ``out``: the stop/resume check, then the
    second copy (resuming its saved state). ``on_done`` is called after each part finishes.

    Raises:
        TrainingInterrupted: ``stop_check`` stopped training (state saved where it resumes).
    """
    out = Path(out)
    record = out / RESUME_RECORD
    if not _resume_recorded(record, check):
        log(f"determinism check: {check.steps}-step run, stopped at {check.stop_at}, resumed")
        result = resume_check(
            check.trial.spec,
            corpus,
            out / RESUME_DIR,
            check.steps,
            device=device,
            stop_check=stop_check,
            log=step_log,
        )
        atomic_write_json(record, {"trial": check.trial.id, **result})
        same = "identical" if result["identical"] else "DIFFERENT"
        log(f"    resumed and uninterrupted weights: {same} ({result['seconds']:.1f}s)")
        if on_done is not None:
            on_done()
    directory = replica_dir(out, check)
    if not is_finished(directory):
        note = " (resuming)" if (directory / "state.safetensors").is_file() else ""
        log(f"determinism check: second copy of {check.trial.id}{note}")
        replica = train_trial(
            check.trial.spec,
            corpus,
            directory,
            device=device,
            stop_check=stop_check,
            progress=False,
            log=step_log,
        )
        log(f"    val_loss {replica['final']['val_loss']:.4f}  {replica['wall_time_s']:.1f}s")
        if on_done is not None:
            on_done()


def _resume_recorded(record: Path, check: CheckPlan) -> bool:
    try:
        kept = json.loads(record.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return kept.get("trial") == check.trial.id and kept.get("steps") == check.steps


def verdict(out: Path, check: CheckPlan, trial_dir: Path) -> dict:
    """Compare the finished check with the sweep's own trial and write ``checks/
    determinism.json``; returns what it wrote (``identical``: both parts agree).

    Args:
        out: the run directory.
        check: the plan that was trained.
        trial_dir: the sweep's own directory of ``check.trial``.

    Raises:
        FileNotFoundError: a part of the check, or the trial, is not finished.
    """
    out = Path(out)
    records = {}
    for name, directory in (("sweep", trial_dir), ("replica", replica_dir(out, check))):
        if not is_finished(directory):
            raise FileNotFoundError(f"{directory} holds no finished trial")
        records[name] = json.loads((directory / RECORD_FILE).read_text(encoding="utf-8"))
    resume = json.loads((out / RESUME_RECORD).read_text(encoding="utf-8"))
    digests = [records["sweep"]["weights_sha256"], records["replica"]["weights_sha256"]]
    copies = {
        "weights_sha256": digests,
        "identical": digests[0] == digests[1],
        "max_iters": records["replica"]["train"]["max_iters"],
        "devices": [r["train"]["device_used"] for r in records.values()],
        "resumed_at_steps": [r["resumed_at_steps"] for r in records.values()],
    }
    result = {
        "trial": check.trial.id,
        "identical": copies["identical"] and resume["identical"],
        "copies": copies,
        "resume": {k: v for k, v in resume.items() if k != "trial"},
        "environment": records["replica"]["environment"],
    }
    atomic_write_json(out / VERDICT_FILE, result)
    return result


@contextlib.contextmanager
def _locked(directory: Path):
    """An exclusive advisory lock on ``directory`` itself (no lock file is left behind)."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def _snapshot_members(run_dir: Path) -> list[str]:
    names = []
    for pattern in (f"trials/*/{RECORD_FILE}", f"trials/*/{LOG_FILE}", f"{CHECKS_DIR}/*.json"):
        names += [p.relative_to(run_dir).as_posix() for p in run_dir.glob(pattern)]
    for name in (RECORD_FILE, LOG_FILE):
        names += [
            p.relative_to(run_dir).as_posix() for p in run_dir.glob(f"{REPLICA_DIR}/*/{name}")
        ]
    return sorted(names)


def snapshot(run_dir: str | os.PathLike, target: str | os.PathLike) -> Path:
    """(Re)write ``target``, a gzip tar of the run's trial records, logs and check records.

    Members keep their paths under ``run_dir`` (``trials/<id>/trial.json``, ...), sorted, with
    times and owners zeroed, so the same files give the same bytes. The file is replaced
    atomically while holding a lock on its directory, so ranks that finish at once take turns
    and the last writer lists every file finished before it.

    Returns:
        ``target``.

    Raises:
        OSError: the target's directory cannot be written.
    """
    run_dir, target = Path(run_dir), Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    with _locked(target.parent):
        buffer = io.BytesIO()
        with gzip.GzipFile(filename="", mode="wb", fileobj=buffer, mtime=0) as gz:
            with tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar:
                for name in _snapshot_members(run_dir):
                    try:
                        payload = (run_dir / name).read_bytes()
                    except FileNotFoundError:  # replaced or removed meanwhile
                        continue
                    info = tarfile.TarInfo(name)
                    info.size, info.mtime, info.mode = len(payload), 0, 0o644
                    info.uid = info.gid = 0
                    info.uname = info.gname = ""
                    tar.addfile(info, io.BytesIO(payload))
        atomic_write_bytes(target, buffer.getvalue())
    return target


def summary(
    run_dir: str | os.PathLike,
    steps_file: str | os.PathLike | None = None,
    preflight_file: str | os.PathLike | None = None,
) -> dict:
    """What a GPU sweep measured: each script step's time against its budget, every finished
    trial's speed, and the throughput of all trials together.

    Args:
        run_dir: the run directory.
        steps_file: JSON lines ``{"step", "budget_s", "seconds", "status", "launch"}``
            written by scripts/gpu-sweep.sh (None: no steps).
        preflight_file: the JSON of :mod:`reproduce.preflight` (versions, GPUs), copied in.

    Returns:
        ``{"steps": [...], "trials": {id: {"tokens_per_s", "wall_time_s", "device"}},
        "together": {"tokens", "sweep_seconds", "tokens_per_s"}, "determinism": verdict or
        None, "preflight": what the preflight found or None}``. ``together`` counts every
        finished trial's and the check's copy's training tokens over the summed time of the
        script's sweep steps (all launches): the sweep's own throughput, evaluation and
        start-up included.
    """
    run_dir = Path(run_dir)
    steps = []
    if steps_file is not None and Path(steps_file).is_file():
        lines = Path(steps_file).read_text(encoding="utf-8").splitlines()
        steps = [json.loads(line) for line in lines if line.strip()]
    records = {}
    for path in sorted(run_dir.glob(f"trials/*/{RECORD_FILE}")) + sorted(
        run_dir.glob(f"{REPLICA_DIR}/*/{RECORD_FILE}")
    ):
        key = path.parent.name
        if path.parent.parent.name == "replica":
            key = f"{key} (copy)"
        records[key] = json.loads(path.read_text(encoding="utf-8"))
    tokens = sum(
        r["train"]["max_iters"] * r["train"]["batch_size"] * r["model"]["block_size"]
        for r in records.values()
    )
    sweep_seconds = sum(s["seconds"] for s in steps if s.get("step") == "sweep")
    verdict_path = run_dir / VERDICT_FILE
    return {
        "steps": steps,
        "trials": {
            key: {
                "tokens_per_s": r["tokens_per_s"],
                "wall_time_s": r["wall_time_s"],
                "device": r["train"]["device_used"],
                "precision": r["train"]["precision_used"],
            }
            for key, r in records.items()
        },
        "together": {
            "tokens": tokens,
            "sweep_seconds": sweep_seconds,
            "tokens_per_s": tokens / sweep_seconds if sweep_seconds > 0 else None,
        },
        "determinism": json.loads(verdict_path.read_text(encoding="utf-8"))
        if verdict_path.is_file()
        else None,
        "preflight": json.loads(Path(preflight_file).read_text(encoding="utf-8"))
        if preflight_file is not None and Path(preflight_file).is_file()
        else None,
    }


def main(argv: list[str] | None = None) -> int:
    """``python -m reproduce.checks snapshot RUN_DIR FILE`` or ``summary RUN_DIR STEPS OUT
    [--preflight FILE]``; returns the exit status (2 on a missing or unreadable file)."""
    parser = argparse.ArgumentParser(
        prog="python -m reproduce.checks",
        description="Helpers of scripts/gpu-sweep.sh: the snapshot of a run's records, and "
        "the summary of what the sweep measured.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    snap = sub.add_parser("snapshot", help="write the records and logs of RUN_DIR to FILE")
    snap.add_argument("run_dir")
    snap.add_argument("file")
    summ = sub.add_parser("summary", help="write the sweep's measurements to OUT (JSON)")
    summ.add_argument("run_dir")
    summ.add_argument("steps_file")
    summ.add_argument("out")
    summ.add_argument("--preflight", default=None, help="the preflight's JSON, copied in")
    args = parser.parse_args(argv)
    try:
        if args.command == "snapshot":
            if not Path(args.run_dir).is_dir():
                raise FileNotFoundError(f"run directory {args.run_dir} not found")
            snapshot(args.run_dir, args.file)
            return 0
        data = summary(args.run_dir, args.steps_file, args.preflight)
        atomic_write_json(args.out, data)
        together = data["together"]
        rate = together["tokens_per_s"]
        print(
            f"{len(data['trials'])} trained run(s), {together['tokens']:,} tokens in "
            f"{together['sweep_seconds']:.0f} s of sweep: "
            + (f"{rate:,.0f} tokens/s together" if rate else "no sweep time recorded")
        )
        return 0
    except (OSError, ValueError, KeyError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
