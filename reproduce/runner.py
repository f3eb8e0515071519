"""``python -m reproduce run --config C --out DIR``: train every trial of a sweep, then publish
results.json, the report and SHA256SUMS in DIR.

Layout of DIR::

    sweep.json                 base settings (a rerun with other base settings is refused)
    trials/<id>/               one trial (see charlm.train): trial.json, weights, log.jsonl
    results.json  report.*     written once every trial has finished
    SHA256SUMS                 over every file present

A finished trial (record + weights matching its digest) is skipped; an interrupted one resumes
from its saved state; new activations, seeds or grid values train only what is missing.

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
from dataclasses import dataclass
from pathlib import Path

import torch

from charlm import determinism
from charlm.data import TINY_SHAKESPEARE_SHA256, Corpus, resolve_data_path
from charlm.io import atomic_write_json, dumps_json
from charlm.memory import check_fits
from charlm.model import CharLM
from charlm.train import (
    LOG_FILE,
    RECORD_FILE,
    STATE_FILE,
    WEIGHTS_FILE,
    TrainingInterrupted,
    is_finished,
    train_trial,
)
from reproduce import estimate, merged, report, results, runlock, terminal
from reproduce.config import SweepConfig, Trial, add_override_option, load_config
from reproduce.errors import UserError
from reproduce.manifest import write_manifest
from reproduce.verification.paths import UnsafePath

__all__ = [
    "SWEEP_FILE",
    "TRIALS_DIR",
    "EXIT_TIME_LIMIT",
    "Sweep",
    "dry_run_listing",
    "command_options",
    "differences",
    "finalize",
    "run_sweep",
    "register",
    "train_trials",
]

SWEEP_FILE = "sweep.json"
TRIALS_DIR = "trials"
FAILED_FILE = "failed.json"
EXIT_TIME_LIMIT = 75  # EX_TEMPFAIL: stopped before a time limit; rerun to resume


def load_corpus(config: SweepConfig, config_path: str | Path, data: str | None = None) -> Corpus:
    """The sweep's corpus: tiny Shakespeare (``data`` or ``$CHARLM_DATA`` or the cache, checked
    against its digest), or the config's ``[data] path``, relative to the config file, whose
    digest is recorded instead."""
    if config.data_path is None:
        return Corpus.load(resolve_data_path(data))
    return Corpus.load(Path(config_path).parent / config.data_path)


@dataclass
class Sweep:
    """A sweep bound to its corpus and output directory."""

    config: SweepConfig
    corpus: Corpus
    out: Path
    only: frozenset[str] | None = None  # restrict the sweep to these trial ids
    reference: str | None = None  # a published report's reference file, for the verdict

    @classmethod
    def open(
        cls,
        config_path: str | Path,
        out: str | Path,
        data: str | None = None,
        *,
        overrides: tuple[str, ...] = (),
        only: list[str] | None = None,
        reference: str | None = None,
    ) -> Sweep:
        """Load the config and the corpus, and check ``out`` can take this sweep.

        ``data`` locates tiny Shakespeare (like ``$CHARLM_DATA``); a config whose ``[data] path``
        names another corpus uses that file instead. ``overrides`` are ``section.key=value``
        changes to the config (:func:`reproduce.config.apply_overrides`); ``only`` restricts the
        trials to train to some of the sweep's ids (results.json covers every finished one).

        Raises:
            ConfigError, FileNotFoundError, ValueError: bad config or data, a config the
                corpus cannot serve (:meth:`SweepConfig.check_corpus`) or a bad ``reference``.
            UserError: ``out`` is a file, or holds trained trials of other base settings.
        """
        config = load_config(config_path, overrides)
        corpus = load_corpus(config, config_path, data)
        config.check_corpus(corpus.chars, len(corpus.train), len(corpus.val))
        if reference is not None:  # the report step would fail on it after all the training
            from reproduce.compare import load_reference

            load_reference(reference)
        if Path(out).exists() and not Path(out).is_dir():
            raise UserError(f"--out {out} is a file; name a directory (new, or a run's)")
        sweep = cls(config, corpus, Path(out), frozenset(only) if only else None, reference)
        if sweep.only:
            known = [t.id for t in config.trials(corpus.vocab_size)]
            unknown = sorted(sweep.only - set(known))
            if unknown:
                raise UserError(f"unknown trial id(s) {unknown}; this sweep has {known}")
        sweep.check_base()
        return sweep

    @property
    def trials(self) -> list[Trial]:
        """The sweep's trials (those named by ``only``, if set), sorted by id."""
        trials = self.config.trials(self.corpus.vocab_size)
        return [t for t in trials if self.only is None or t.id in self.only]

    def base_settings(self) -> dict:
        return {**self.config.base_settings(), "data_sha256": self.corpus.sha256}

    def trial_dir(self, trial: Trial) -> Path:
        return self.out / TRIALS_DIR / trial.id

    def check_base(self) -> None:
        """Refuse an output directory that holds trained trials of other base settings.

        A directory whose sweep.json names other settings but that holds no trained or
        partly trained trial (every trial failed at once, say) is taken over.
        """
        path = self.out / SWEEP_FILE
        if not path.is_file():
            return
        kept = (STATE_FILE, WEIGHTS_FILE, RECORD_FILE)
        if not any(p.name in kept for p in (self.out / TRIALS_DIR).glob("*/*")):
            return
        recorded = json.loads(path.read_text(encoding="utf-8"))["base_settings"]
        mine = json.loads(dumps_json(self.base_settings()))
        if recorded != mine:
            diffs = differences(recorded, mine)
            shown = diffs[:MAX_DIFFERENCES_SHOWN]
            if len(diffs) > len(shown):
                shown.append(f"and {len(diffs) - len(shown)} more")
            raise UserError(
                f"{self.out} holds a sweep with other base settings ({'; '.join(shown)}); "
                "choose another --out directory or restore the original config"
            )

    def write_sweep_file(self) -> None:
        atomic_write_json(
            self.out / SWEEP_FILE,
            {
                "base_settings": self.base_settings(),
                "config": self.config.to_dict(),
            },
        )

    def status(self, trial: Trial) -> str:
        """``done`` (its weights match its record's digest, or ``merge`` brought its record
        without them: :func:`reproduce.merged.records_only`), ``resume`` (a saved state
        exists) or ``new``."""
        directory = self.trial_dir(trial)
        if is_finished(directory) or merged.records_only(self.out, trial.id):
            return "done"
        return "resume" if (directory / STATE_FILE).is_file() else "new"


MAX_DIFFERENCES_SHOWN = 12  # settings a refusal names before "and N more"


def differences(old: dict, new: dict, prefix: str = "") -> list[str]:
    """``"key: old recorded, new now"`` for each key whose values differ, nested dicts key by
    key (``train.lr: ...``), in key order: the base settings a directory refuses."""
    out = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out += differences(a, b, f"{prefix}{key}.")
        elif a != b:
            out.append(f"{prefix}{key}: {a!r} recorded, {b!r} now")
    return out


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


NO_RENDER_OPTIONS = {"compare": None, "reference": None}  # a fresh run's results.json


def kept_render_options(out: Path) -> dict:
    """The render options (``compare``, ``reference``, ``study``) of the results.json already
    in ``out`` that a plain ``render OUT`` would follow: inside ``out``, through no link, every
    file they imply there (:func:`reproduce.report.option_paths`). Finishing more trials, or a
    resumed run, keeps the sections an earlier ``render`` added (a publication's copies, say);
    options leading elsewhere are dropped, as before, and named again with ``render``. {}
    without a readable results.json."""
    try:
        options = results.load_results(out)["render"]["options"]
    except (OSError, ValueError):
        return {}
    kept = {}
    for key, value in options.items():
        if value is None:
            continue
        try:
            paths = report.option_paths(out, key, value)
        except UnsafePath:
            continue
        if all(p.exists() for p in paths):
            kept[key] = value
    return kept


def finalize(
    sweep: Sweep, log: Callable[[str], None] = print, device: str | torch.device | None = None
) -> dict:
    """Once the trials to run are finished: prediction differences, samples, results.json, the
    report and SHA256SUMS. Returns the results.

    ``device`` is where the prediction differences and samples run (default the CPU): the
    training device, so that they take seconds on a GPU instead of minutes on its host's CPU.

    results.json covers every finished trial of the sweep in the directory, not only those of
    ``--trials``, so running a few trials never drops earlier results from it; unfinished
    trials and directories of other sweeps are named in the log (``verify`` fails on them).
    The render options of an earlier results.json there are kept (:func:`kept_render_options`);
    a ``reference`` given to this run replaces its own.
    Trials that ``merge`` brought without weights count as finished; their groups' prediction
    differences and samples come from merged.json (:func:`reproduce.merged.group_values`).
    """
    every = sweep.config.trials(sweep.corpus.vocab_size)
    on_file = merged.read(sweep.out)
    weighted = {t.id: is_finished(sweep.trial_dir(t)) for t in every}  # digests each file once
    done = {t.id: weighted[t.id] or merged.records_only(sweep.out, t.id, on_file) for t in every}
    trials = [t for t in every if done[t.id]]
    missing = [t.id for t in every if not done[t.id]]
    if missing:
        log(f"results.json covers {len(trials)} finished trial(s); not yet trained: {missing}")
    trials_dir = sweep.out / TRIALS_DIR
    known = {t.id for t in every}
    strays = sorted(p.name for p in trials_dir.iterdir() if p.is_dir() and p.name not in known)
    if strays:
        log(f"warning: {trials_dir} also holds {strays}, trials of another config, left out")
    entries, finished = [], []
    for trial in trials:
        record = json.loads((sweep.trial_dir(trial) / RECORD_FILE).read_text(encoding="utf-8"))
        entries.append(results.trial_entry(trial.id, trial.group, trial.grid, record))
        weights = sweep.trial_dir(trial) / WEIGHTS_FILE if weighted[trial.id] else None
        finished.append((trial, record, weights))
    threads = trials[0].spec.train.threads
    torch.set_num_threads(threads)
    values = merged.group_values(
        sweep.out, finished, sweep.corpus, sweep.config.report, sweep.config.seeds, device, log
    )
    kept = kept_render_options(sweep.out)
    data = {
        "schema_version": results.SCHEMA_VERSION,
        "config": sweep.config.to_dict(),
        "base_settings": sweep.base_settings(),
        "data": {
            "sha256": sweep.corpus.sha256,
            "is_tiny_shakespeare": sweep.corpus.sha256 == TINY_SHAKESPEARE_SHA256,
            "n_chars": len(sweep.corpus.text),
            "n_train": len(sweep.corpus.train),
            "n_val": len(sweep.corpus.val),
            "vocab_size": sweep.corpus.vocab_size,
        },
        "trials": entries,
        "statistics": results.statistics(entries),
        "prediction_difference": values.pd,
        **({"prediction_difference_study": values.study_pd} if values.study_pd is not None else {}),
        "samples": values.samples,
        "render": {
            "stack": results.rendering_stack(),
            "threads": threads,
            "options": {**NO_RENDER_OPTIONS, **kept},
        },
    }
    results.write_results(sweep.out, data)
    values.progress.step("the report, its figures and audit.md")
    try:
        report.render_directory(sweep.out, reference=sweep.reference, log=log)
    except (UserError, ValueError, OSError) as exc:
        if not kept:
            raise
        # an earlier render's option no longer fits: the training is done, so say so and
        # render without it rather than fail here
        log(f"warning: the earlier render options could not be followed ({exc}); rendered")
        log("  without them: render again with --compare, --reference or --study")
        data["render"]["options"] = dict(NO_RENDER_OPTIONS)
        results.write_results(sweep.out, data)
        report.render_directory(sweep.out, reference=sweep.reference, log=log)
    values.progress.close()
    (sweep.out / FAILED_FILE).unlink(missing_ok=True)
    write_manifest(sweep.out)
    return data


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
    p.add_argument(
        "--data",
        default=None,
        help="tiny Shakespeare's file (default: $CHARLM_DATA, else the cache or a download)",
    )
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
