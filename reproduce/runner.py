"""``python -m reproduce run --config C --out DIR``: train every trial of a sweep, then publish
results.json, the report and SHA256SUMS in DIR (:func:`reproduce.finish.finalize`).

DIR's layout is :mod:`reproduce.sweep`'s. A finished trial (record + weights matching its
digest) is skipped; an interrupted one resumes from its saved state; new activations, seeds or
grid values train only what is missing.

Under ``torchrun`` (``WORLD_SIZE`` > 1) the trials are spread over the ranks and DIR must be on a
filesystem all ranks share: see :mod:`reproduce.distributed`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import torch

from charlm import determinism
from charlm.io import atomic_write_json
from charlm.memory import check_fits
from charlm.model import CharLM
from charlm.train import LOG_FILE, RECORD_FILE, TrainingInterrupted, train_trial
from reproduce import estimate, results, runlock, terminal
from reproduce.config import Trial, add_override_option
from reproduce.errors import UserError
from reproduce.finish import finalize
from reproduce.manifest import write_manifest
from reproduce.options import add_data_option
from reproduce.sweep import FAILED_FILE, Sweep

__all__ = [
    "EXIT_TIME_LIMIT",
    "command_options",
    "dry_run_listing",
    "estimate_seconds",
    "register",
    "run_sweep",
    "train_trials",
]

EXIT_TIME_LIMIT = 75  # EX_TEMPFAIL: stopped before a time limit; rerun to resume


def _start_step(sweep: Sweep, trial: Trial) -> int:
    """Steps a pending trial has taken: those of its last logged evaluation (where its saved
    state is, or just before), 0 for a new trial."""
    if sweep.status(trial) != "resume":
        return 0
    log_path = sweep.trial_dir(trial) / LOG_FILE
    try:
        lines = log_path.read_text(encoding="utf-8").splitlines()
        return min(json.loads(lines[-1])["step"], trial.spec.train.max_iters) if lines else 0
    except (OSError, ValueError, KeyError):
        return 0


def estimate_seconds(sweep: Sweep, pending: list[Trial]) -> tuple[float, str]:
    """Seconds the pending trials should take on this machine, and what that is based on.

    Times training steps and an evaluation at the config's real size
    (:func:`reproduce.estimate.measure`, a few seconds; once per distinct model and speed
    setting, :func:`reproduce.estimate.speed_key`, with the other activations' own cost timed
    alone) and applies the rule of
    :func:`reproduce.estimate.trial_seconds` to each pending trial from where it stands (a
    resumed one from its last evaluation), plus the first trial's extra ``once_s`` once per
    setting. A running sweep's ``about ... left`` uses the same
    rule with the times of the trials it has trained (:func:`_eta_note`).

    Returns:
        (seconds, a sentence naming the measurement); (0, "nothing to train") when nothing is
        pending.

    Raises:
        ValueError: a trial whose model cannot be built or stepped here (an unavailable
            device; out of memory, :class:`charlm.memory.TrainingOutOfMemory`): training would
            fail the same way.
    """
    if not pending:
        return 0.0, "nothing to train"
    by_key: dict[tuple, list[Trial]] = {}
    for trial in pending:
        by_key.setdefault(estimate.speed_key(trial.spec), []).append(trial)
    seconds, bases = 0.0, []
    for trials in by_key.values():
        activations = tuple(dict.fromkeys(t.activation for t in trials))
        timings = estimate.measure(trials[0].spec, sweep.corpus, activations)
        seconds += timings[trials[0].activation].once_s  # the first trial's extra, once
        for trial in trials:
            start = _start_step(sweep, trial)
            seconds += estimate.trial_seconds(trial.spec.train, timings[trial.activation], start)
        first, *others = timings.values()
        basis = f"{first.basis} with {trials[0].activation}"
        if others:
            basis += (
                "; the other activations' own cost, timed alone at the MLP's size: "
                + ", ".join(t.basis for t in others)
            )
        bases.append(basis)
    steps = sum(t.spec.train.max_iters - _start_step(sweep, t) for t in pending)
    basis = "; ".join(bases)
    if len(bases) > 1:
        basis = f"{len(bases)} model and speed settings: {basis}"
    return seconds, f"{len(pending)} trial(s), {steps:,} steps in all; {basis}"


def _eta_note(
    sweep: Sweep, remaining: list[Trial], trained: list[tuple[Trial, dict, float]]
) -> str:
    """``, about 1h05m of training left``: the rule of :func:`estimate_seconds` applied to the
    ``remaining`` trials (the current one included) with the times of the trials ``trained``
    in this run (trial, record, seconds its training call took;
    :func:`reproduce.estimate.timings_from_records`), those of the same model, activation and
    speed settings where there are any; empty before any trial has finished."""

    def timings(done: list[tuple[Trial, dict, float]]) -> estimate.Timings | None:
        return estimate.timings_from_records([r for _, r, _ in done], [c for _, _, c in done])

    every = timings(trained)
    if every is None or not remaining:
        return ""
    seconds = 0.0
    for trial in remaining:
        key = (estimate.speed_key(trial.spec), trial.activation)
        same = [d for d in trained if (estimate.speed_key(d[0].spec), d[0].activation) == key]
        these = timings(same) or every
        seconds += estimate.trial_seconds(trial.spec.train, these, _start_step(sweep, trial))
    return f", about {estimate.format_duration(seconds)} of training left"


def train_trials(
    sweep: Sweep,
    trials: list[Trial],
    *,
    device: str | Callable[[Trial], str] | None = None,
    deadline: float | None = None,
    log: Callable[[str], None] = print,
    stop_check: Callable[[int], bool] | None = None,
    failures: dict[str, str] | None = None,
    progress: bool | None = None,
    step_log: Callable[[str], None] | None = None,
    on_done: Callable[[Trial, dict], None] | None = None,
) -> dict[str, str]:
    """Train each trial that is not finished, in order; returns failures as id -> message.

    A failing trial is recorded and the next one starts; finished trials are never touched.

    Args:
        sweep, trials: the sweep and the trials to train (finished ones are skipped).
        device: overrides the configured device, for all trials or per trial (a function).
        deadline: ``time.monotonic()`` value after which training stops (state saved).
        log: receives one line per trial.
        stop_check: also stops training when it returns True (called with the step).
        failures: a dict to fill with the failures (kept when training is interrupted);
            default a new one.
        progress, step_log: passed to :func:`charlm.train.train_trial` as ``progress`` and
            ``log`` when given.
        on_done: called with each trial and its record as soon as the trial finishes.

    Raises:
        TrainingInterrupted: SIGINT/SIGTERM, the deadline or ``stop_check``; the current trial
            saved its state.
    """
    failures = {} if failures is None else failures
    todo = [t for t in trials if sweep.status(t) != "done"]
    trained: list[tuple[Trial, dict, float]] = []  # (trial, record, seconds): the ETA's times
    extra: dict = {}
    if progress is not None:
        extra["progress"] = progress
    if step_log is not None:
        extra["log"] = step_log
    stop = None
    if deadline is not None or stop_check is not None:

        def stop(step: int) -> bool:
            if deadline is not None and time.monotonic() > deadline:
                return True
            return stop_check is not None and stop_check(step)

    for number, trial in enumerate(todo, 1):
        state = sweep.status(trial)
        eta = _eta_note(sweep, todo[number - 1 :], trained)
        note = " (resuming)" if state == "resume" else ""
        if (sweep.trial_dir(trial) / RECORD_FILE).is_file():  # finished once; weights now differ
            note = (
                " (its weights are missing or do not match their recorded digest: training again)"
            )
        for line in terminal.wrap(
            f"[{number}/{len(todo)}] {trial.id}{note}{eta}", terminal.width(), indent="    "
        ):
            log(line)
        where = device(trial) if callable(device) else device
        called = time.perf_counter()
        try:
            record = train_trial(
                trial.spec,
                sweep.corpus,
                sweep.trial_dir(trial),
                device=where,
                stop_check=stop,
                **extra,
            )
        except TrainingInterrupted:
            raise
        except Exception as exc:  # a failed trial must not lose the others
            failures[trial.id] = f"{type(exc).__name__}: {exc}"
            for line in terminal.wrap(
                f"FAILED: {failures[trial.id]}", terminal.width(), indent="      ", first="    "
            ):
                log(line)
            continue
        trained.append((trial, record, time.perf_counter() - called))
        final = record["final"]
        log(
            f"    val_loss {final['val_loss']:.4f}  val acc {final['val_accuracy']:.2f}%  "
            f"{record['wall_time_s']:.1f}s"
        )
        if on_done is not None:
            on_done(trial, record)
    return failures


def dry_run_listing(
    sweep: Sweep,
    log: Callable[[str], None] = print,
    *,
    owners: dict[str, int] | None = None,
    world_size: int = 1,
) -> int:
    """List the models, the trials and the estimated training time; train nothing; returns 0.

    ``owners`` (trial id -> rank, for a torchrun launch of ``world_size`` ranks) adds each
    pending trial's rank, and the estimate becomes that of the busiest rank. The estimate
    (:func:`estimate_seconds`) times a few training steps and an evaluation here first; its
    basis is printed under it, wrapped to the terminal (80 columns when not a terminal).

    Raises:
        ValueError: as :func:`estimate_seconds`.
    """
    trials = sweep.trials
    pending = [t for t in trials if sweep.status(t) != "done"]
    width = terminal.width()
    heading = (
        f"sweep {sweep.config.name!r}: {len(trials)} trial(s), {len(pending)} to train, "
        f"output {sweep.out}"
    )
    for line in terminal.wrap(heading, width, indent="  ", first=""):
        log(line)
    with torch.device("meta"):  # counted, not allocated
        models = {t.spec.model: CharLM(t.spec.model).num_parameters() for t in trials}
    for model, n_params in models.items():
        text = (
            f"model {model.n_layer} layers x {model.n_embd} wide, {model.n_head} heads, "
            f"context {model.block_size}, {model.activation}: {n_params:,} parameters"
        )
        for line in terminal.wrap(text, width, indent="    ", first="  "):
            log(line)
    for trial in trials:
        where = f"  rank {owners[trial.id]}" if owners and trial.id in owners else ""
        log(f"  {trial.id:<32} {sweep.status(trial)}{where}")
    if pending:
        log("  timing training steps and an evaluation here for the estimate (none kept)")
    if owners is None:
        seconds, how = estimate_seconds(sweep, pending)
    else:
        shares = [[t for t in pending if owners[t.id] == r] for r in range(world_size)]
        busiest = max(shares, key=lambda share: sum(t.spec.train.max_iters for t in share))
        seconds, how = estimate_seconds(sweep, busiest)
        how = f"the busiest of {world_size} ranks (longer where ranks share a device): {how}"
    log(f"estimated training time: {estimate.format_duration(seconds)}; nothing trained")
    for line in terminal.wrap(how, width, indent="  "):
        log(line)
    return 0


def run_sweep(
    config_path: str | Path,
    out: str | Path,
    *,
    data: str | None = None,
    dry_run: bool = False,
    time_limit_s: float | None = None,
    log: Callable[[str], None] = print,
    sweep_options: dict | None = None,
    on_start: Callable[[Sweep], None] | None = None,
    on_trial_done: Callable[[Trial, dict], None] | None = None,
) -> int:
    """The ``run`` command in one process; returns the exit status (0 done, 1 a trial failed,
    :data:`EXIT_TIME_LIMIT` stopped at the time limit, 130 interrupted).

    ``sweep_options`` go to :meth:`Sweep.open` (``overrides``, ``only``, ``reference``).
    ``on_start`` is called with the sweep once its directory is prepared, before training;
    ``on_trial_done`` with each trial and its record as it finishes. The prediction
    differences and samples run on the first trial's device. Under torchrun the command
    line's ``run`` goes to :func:`reproduce.distributed.run_command` instead, which calls
    this for a single process.
    """
    start = time.monotonic()
    sweep = Sweep.open(config_path, out, data, **(sweep_options or {}))
    for device in sorted({t.spec.train.device for t in sweep.trials}):
        try:  # before anything is written or estimated
            determinism.resolve_device(device)
        except ValueError as exc:
            raise UserError(f"{config_path}: train.device: {exc}") from None
    for model in sorted({t.spec.model for t in sweep.trials}, key=repr):
        check_fits(model, str(config_path))  # before a model is built, for the estimate too
    if dry_run:
        return dry_run_listing(sweep, log)
    with runlock.locked(sweep.out, log), _sigterm_interrupts():
        sweep.check_base()  # again under the lock: another run may have written meanwhile
        return _run_locked(sweep, start, time_limit_s, log, on_start, on_trial_done)


@contextlib.contextmanager
def _sigterm_interrupts():
    """SIGTERM outside training (which saves its state on it, :class:`charlm.train.StopSignals`)
    raises KeyboardInterrupt, so the command prints its one line and exits 130 instead of
    vanishing silently; every file is written atomically, so nothing is left half-written."""

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _run_locked(
    sweep: Sweep,
    start: float,
    time_limit_s: float | None,
    log: Callable[[str], None],
    on_start: Callable[[Sweep], None] | None,
    on_trial_done: Callable[[Trial, dict], None] | None,
) -> int:
    """:func:`run_sweep` once the output directory's lock is held."""
    trials = sweep.trials
    pending = [t for t in trials if sweep.status(t) != "done"]
    log(
        f"sweep {sweep.config.name!r}: {len(trials)} trial(s), {len(pending)} to train, "
        f"output {sweep.out}"
    )
    sweep.write_sweep_file()
    if on_start is not None:
        on_start(sweep)
    deadline = start + time_limit_s if time_limit_s else None
    try:
        failures = train_trials(sweep, trials, deadline=deadline, log=log, on_done=on_trial_done)
    except TrainingInterrupted as exc:
        write_manifest(sweep.out)
        if deadline is not None and time.monotonic() > deadline:
            log(f"time limit reached: {exc}")
            return EXIT_TIME_LIMIT
        log(f"interrupted: {exc}")
        return 130
    if failures:
        atomic_write_json(sweep.out / FAILED_FILE, failures)
        write_manifest(sweep.out)
        names = ", ".join(sorted(failures))
        print(
            f"error: {len(failures)} trial(s) failed: {names} (details in "
            f"{sweep.out / FAILED_FILE}); the other trials are kept, rerun to retry",
            file=sys.stderr,
        )
        return 1
    device = determinism.resolve_device(trials[0].spec.train.device) if trials else None
    finalize(sweep, log=log, device=device)
    log(f"done: {sweep.out / results.RESULTS_FILE}")
    return 0


def command_options(a: argparse.Namespace) -> dict:
    """The :meth:`Sweep.open` options of parsed ``run`` arguments (``--set``, ``--trials``,
    ``--reference``)."""
    return {
        "overrides": tuple(a.overrides),
        "only": [s for s in a.trials.split(",") if s] if a.trials else None,
        "reference": a.reference,
    }


def register(
    subparsers: argparse._SubParsersAction,
    command: Callable[[argparse.Namespace], int] | None = None,
) -> argparse.ArgumentParser:
    """Add the ``run`` command and return its parser.

    ``command`` runs the parsed arguments (default: :func:`run_sweep` in this process);
    :func:`reproduce.distributed.register` passes its own, which adds options and spreads
    the sweep over torchrun's ranks.
    """
    p = subparsers.add_parser(
        "run",
        help="train every trial of a sweep and write its results",
        description="Train every trial of a sweep and write its results. Under torchrun "
        "(torchrun --nproc_per_node=N [--nnodes=M ...] -m reproduce run ...) the trials are "
        "spread over the ranks, --out must be on a filesystem all ranks share, and ranks wait "
        "for each other up to $REPRODUCE_DIST_TIMEOUT_S seconds (default 7 days).",
    )
    p.add_argument("--config", required=True, help="sweep config, e.g. configs/smoke.toml")
    p.add_argument("--out", required=True, help="output directory (created; reruns resume)")
    add_data_option(p)
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="list the trials and the time estimate; train nothing",
    )
    p.add_argument(
        "--time-limit",
        type=float,
        default=None,
        metavar="SECONDS",
        help=f"stop cleanly (state saved, exit {EXIT_TIME_LIMIT}) after this long",
    )
    add_override_option(p, "train.max_iters=30")
    p.add_argument(
        "--trials",
        default=None,
        metavar="ID,ID",
        help="run only these trials of the sweep (results.json covers every finished trial)",
    )
    p.add_argument(
        "--reference",
        default=None,
        metavar="FILE",
        help="a published report's reference file: the report adds the replication verdict",
    )

    def run(a: argparse.Namespace) -> int:
        return run_sweep(
            a.config,
            a.out,
            data=a.data,
            dry_run=a.dry_run,
            time_limit_s=a.time_limit,
            sweep_options=command_options(a),
        )

    p.set_defaults(func=command or run)
    return p
