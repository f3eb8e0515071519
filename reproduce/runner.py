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
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from charlm import determinism
from charlm.data import TINY_SHAKESPEARE_SHA256, Corpus, resolve_data_path
from charlm.io import atomic_write_json, dumps_json
from charlm.model import CharLM
from charlm.train import (
    RECORD_FILE,
    STATE_FILE,
    WEIGHTS_FILE,
    TrainingInterrupted,
    is_finished,
    train_trial,
)
from reproduce import analysis, report, results
from reproduce.cli import UserError
from reproduce.config import SweepConfig, Trial, load_config
from reproduce.manifest import write_manifest

__all__ = [
    "SWEEP_FILE",
    "TRIALS_DIR",
    "EXIT_TIME_LIMIT",
    "Sweep",
    "dry_run_listing",
    "finalize",
    "run_sweep",
    "register",
    "train_trials",
]

SWEEP_FILE = "sweep.json"
TRIALS_DIR = "trials"
FAILED_FILE = "failed.json"
ESTIMATE_BATCH = 4  # windows per timed step of a time estimate
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
            ConfigError, FileNotFoundError, ValueError: bad config or data.
            UserError: ``out`` is a file, or holds trained trials of other base settings.
        """
        config = load_config(config_path, overrides)
        corpus = load_corpus(config, config_path, data)
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
            diffs = _differences(recorded, mine)
            raise UserError(
                f"{self.out} holds a sweep with other base settings ({'; '.join(diffs[:4])}); "
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
        """``done``, ``resume`` (a saved state exists) or ``new``."""
        directory = self.trial_dir(trial)
        if is_finished(directory):
            return "done"
        return "resume" if (directory / STATE_FILE).is_file() else "new"


def _differences(old: dict, new: dict, prefix: str = "") -> list[str]:
    out = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out += _differences(a, b, f"{prefix}{key}.")
        elif a != b:
            out.append(f"{prefix}{key}: {a!r} recorded, {b!r} now")
    return out


def estimate_seconds(sweep: Sweep, pending: list[Trial]) -> tuple[float, str]:
    """Seconds the pending trials should take, and how that was estimated.

    From the finished trials' recorded time per step when there are any; otherwise from timing
    one training step of the first pending trial's model on a batch of at most
    :data:`ESTIMATE_BATCH` windows after one warm-up step, scaled linearly to the batch size (a
    rough figure, cheap even for the full model on a CPU).
    """
    if not pending:
        return 0.0, "nothing to train"
    steps = sum(t.spec.train.max_iters for t in pending)
    finished = [
        json.loads((sweep.trial_dir(t) / RECORD_FILE).read_text(encoding="utf-8"))
        for t in sweep.trials
        if sweep.status(t) == "done"
    ]
    if finished:
        per_step = sum(r["wall_time_s"] for r in finished) / sum(
            r["train"]["max_iters"] for r in finished
        )
        return steps * per_step, f"from {len(finished)} finished trial(s)"
    spec = pending[0].spec
    device = determinism.resolve_device(spec.train.device)
    torch.set_num_threads(spec.train.threads)
    model = CharLM(spec.model).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=spec.train.lr)
    batch = min(spec.train.batch_size, ESTIMATE_BATCH)
    x = torch.zeros(batch, spec.model.block_size, dtype=torch.int64, device=device)
    times = []
    for _ in range(2):
        start = time.perf_counter()
        _, loss = model(x, x)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - start)
    per_step = times[-1] * spec.train.batch_size / batch
    # evaluation: two forward passes over val-sized text (~1/3 of a training step per token)
    evals = spec.train.max_iters // spec.train.eval_interval + 1
    eval_tokens = 2 * len(sweep.corpus.val)
    per_trial_eval = (
        evals * eval_tokens / (spec.train.batch_size * spec.model.block_size) * (per_step / 3)
    )
    total = steps * per_step + len(pending) * per_trial_eval
    return total, f"from one timed training step at batch {batch}, scaled"


def _fmt_duration(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s"


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

    Raises:
        TrainingInterrupted: SIGINT/SIGTERM, the deadline or ``stop_check``; the current trial
            saved its state.
    """
    failures = {} if failures is None else failures
    todo = [t for t in trials if sweep.status(t) != "done"]
    started = time.monotonic()
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
        eta = ""
        if number > 1:
            per_trial = (time.monotonic() - started) / (number - 1)
            eta = f", about {_fmt_duration(per_trial * (len(todo) - number + 1))} left"
        note = " (resuming)" if state == "resume" else ""
        if (sweep.trial_dir(trial) / RECORD_FILE).is_file():  # finished once; weights now differ
            note = (
                " (its weights are missing or do not match their recorded digest: training again)"
            )
        log(f"[{number}/{len(todo)}] {trial.id}{note}{eta}")
        where = device(trial) if callable(device) else device
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
            log(f"    FAILED: {failures[trial.id]}")
            continue
        final = record["final"]
        log(
            f"    val_loss {final['val_loss']:.4f}  val acc {final['val_accuracy']:.2f}%  "
            f"{record['wall_time_s']:.1f}s"
        )
    return failures


def finalize(sweep: Sweep, log: Callable[[str], None] = print) -> dict:
    """Once the trials to run are finished: prediction differences, samples, results.json, the
    report and SHA256SUMS. Returns the results.

    results.json covers every finished trial of the sweep in the directory, not only those of
    ``--trials``, so running a few trials never drops earlier results from it; unfinished
    trials and directories of other sweeps are named in the log (``verify`` fails on them).
    """
    every = sweep.config.trials(sweep.corpus.vocab_size)
    done = {t.id: sweep.status(t) == "done" for t in every}  # digests each weights file once
    trials = [t for t in every if done[t.id]]
    missing = [t.id for t in every if not done[t.id]]
    if missing:
        log(f"results.json covers {len(trials)} finished trial(s); not yet trained: {missing}")
    trials_dir = sweep.out / TRIALS_DIR
    known = {t.id for t in every}
    strays = sorted(p.name for p in trials_dir.iterdir() if p.is_dir() and p.name not in known)
    if strays:
        log(f"warning: {trials_dir} also holds {strays}, trials of another config, left out")
    entries = []
    groups: dict[str, dict[int, Path]] = {}
    for trial in trials:
        record = json.loads((sweep.trial_dir(trial) / RECORD_FILE).read_text(encoding="utf-8"))
        entries.append(results.trial_entry(trial.id, trial.group, trial.grid, record))
        groups.setdefault(trial.group, {})[trial.seed] = sweep.trial_dir(trial) / WEIGHTS_FILE
    options = sweep.config.report
    threads = trials[0].spec.train.threads
    torch.set_num_threads(threads)
    log("computing prediction differences between seeds and samples")
    pd = analysis.prediction_differences(groups, sweep.corpus, options.pd_batch_size)
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
        "prediction_difference": pd,
        "samples": analysis.samples(groups, options),
        "render": {
            "stack": results.rendering_stack(),
            "threads": threads,
            "options": {"compare": None, "reference": None},
        },
    }
    results.write_results(sweep.out, data)
    report.render_directory(sweep.out, reference=sweep.reference, log=log)
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
    pending trial's rank, and the estimate becomes that of the busiest rank.
    """
    trials = sweep.trials
    pending = [t for t in trials if sweep.status(t) != "done"]
    log(
        f"sweep {sweep.config.name!r}: {len(trials)} trial(s), {len(pending)} to train, "
        f"output {sweep.out}"
    )
    models = {t.spec.model: CharLM(t.spec.model).num_parameters() for t in trials}
    for model, n_params in models.items():
        log(
            f"  model {model.n_layer} layers x {model.n_embd} wide, {model.n_head} heads, "
            f"context {model.block_size}, {model.activation}: {n_params:,} parameters"
        )
    for trial in trials:
        where = f"  rank {owners[trial.id]}" if owners and trial.id in owners else ""
        log(f"  {trial.id:<32} {sweep.status(trial)}{where}")
    if owners is None:
        seconds, how = estimate_seconds(sweep, pending)
    else:
        shares = [[t for t in pending if owners[t.id] == r] for r in range(world_size)]
        busiest = max(shares, key=lambda share: sum(t.spec.train.max_iters for t in share))
        seconds, how = estimate_seconds(sweep, busiest)
        how += f"; busiest of {world_size} ranks, longer where ranks share a device"
    log(f"estimated training time: {_fmt_duration(seconds)} ({how}); nothing trained")
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
) -> int:
    """The ``run`` command; returns the exit status (0 done, 1 a trial failed,
    :data:`EXIT_TIME_LIMIT` stopped at the time limit, 130 interrupted).

    ``sweep_options`` go to :meth:`Sweep.open` (``overrides``, ``only``, ``reference``).

    Started by torchrun with ``WORLD_SIZE`` > 1, this process is one rank of a distributed
    sweep (:func:`reproduce.distributed.run_sweep`); otherwise it trains every trial itself.
    """
    from reproduce import distributed

    world = distributed.world_from_env()
    if world is not None and world.world_size > 1:
        return distributed.run_sweep(
            world,
            config_path,
            out,
            data=data,
            dry_run=dry_run,
            time_limit_s=time_limit_s,
            log=log,
            sweep_options=sweep_options,
        )
    start = time.monotonic()
    sweep = Sweep.open(config_path, out, data, **(sweep_options or {}))
    for device in sorted({t.spec.train.device for t in sweep.trials}):
        try:  # before anything is written or estimated
            determinism.resolve_device(device)
        except ValueError as exc:
            raise UserError(f"{config_path}: train.device: {exc}") from None
    if dry_run:
        return dry_run_listing(sweep, log)
    trials = sweep.trials
    pending = [t for t in trials if sweep.status(t) != "done"]
    log(
        f"sweep {sweep.config.name!r}: {len(trials)} trial(s), {len(pending)} to train, "
        f"output {sweep.out}"
    )
    sweep.out.mkdir(parents=True, exist_ok=True)
    sweep.write_sweep_file()
    distributed.clear_rank_files(sweep.out)  # left by a killed torchrun launch
    deadline = start + time_limit_s if time_limit_s else None
    try:
        failures = train_trials(sweep, trials, deadline=deadline, log=log)
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
    finalize(sweep, log=log)
    log(f"done: {sweep.out / results.RESULTS_FILE}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``run`` command."""
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
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="change one config value (TOML syntax), e.g. --set train.max_iters=30; repeatable",
    )
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
        options = {
            "overrides": tuple(a.overrides),
            "only": [s for s in a.trials.split(",") if s] if a.trials else None,
            "reference": a.reference,
        }
        return run_sweep(
            a.config,
            a.out,
            data=a.data,
            dry_run=a.dry_run,
            time_limit_s=a.time_limit,
            sweep_options=options,
        )

    p.set_defaults(func=run)
