"""One rank's run of a torchrun launch: setup under rank 0's lock, its share of the trials,
and the outcome rank 0 publishes (see :mod:`reproduce.distributed` for the rules)."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from charlm import determinism
from charlm.io import atomic_write_json
from charlm.train import StopSignals, TrainingInterrupted
from reproduce import checks, runlock, runner, terminal
from reproduce.distributed.world import (
    BACKEND,
    EXIT_DELAY_S,
    EXIT_INTERRUPTED,
    EXIT_SETUP,
    FS_WAIT_S,
    RANK_INTERRUPTED,
    RANK_OK,
    RANK_TIME_LIMIT,
    TRIAL_FAILED,
    TRIAL_OK,
    TRIAL_UNFINISHED,
    World,
    assign,
    clear_rank_files,
    collective_timeout,
    rank_device,
    rank_file,
    sum_over_ranks,
    wait_for,
)
from reproduce.errors import UserError
from reproduce.finish import finalize
from reproduce.sweep import FAILED_FILE, SWEEP_FILE, Sweep

__all__ = ["run_sweep"]


def _flush() -> None:
    sys.stdout.flush()
    sys.stderr.flush()


def run_sweep(
    world: World,
    config_path: str | Path,
    out: str | Path,
    *,
    data: str | None = None,
    dry_run: bool = False,
    time_limit_s: float | None = None,
    log: Callable[[str], None] = terminal.line,
    sweep_options: dict | None = None,
    check_steps: int | None = None,
    snapshot: str | Path | None = None,
) -> int:
    """The ``run`` command on one rank of a torchrun launch (see the module docstring).

    Args:
        world: this rank (:func:`world_from_env`), ``world_size`` > 1.
        config_path, out, data, dry_run, time_limit_s, log, sweep_options: as
            :func:`reproduce.runner.run_sweep`; ``out`` must be shared by all ranks.
        check_steps: run the determinism check (:mod:`reproduce.checks`) with a stop/resume
            run of this many steps (None: no check).
        snapshot: the ``.tar.gz`` that receives every trial's record and log as it finishes
            (:func:`reproduce.checks.snapshot`; None: none).

    Returns:
        the exit status, the same on every rank: 0, 1, 2, ``EXIT_TIME_LIMIT`` or 130.

    Raises:
        ConfigError, FileNotFoundError, ValueError, UserError: bad config, data, ``out`` or
            ``check_steps`` (each rank raises the same error before any rank waits for
            another).
    """
    start = time.monotonic()
    timeout = collective_timeout()
    sweep = Sweep.open(config_path, out, data, **(sweep_options or {}))
    check = checks.plan(sweep.trials, check_steps) if check_steps is not None else None
    if dry_run:  # rank 0 lists the sweep; the others stay quiet
        if world.rank != 0:
            return 0
        pending = sorted(t.id for t in sweep.trials if sweep.status(t) != "done")
        shares = assign(pending, world.world_size)
        owners = {tid: rank for rank, ids in enumerate(shares) for tid in ids}
        code = runner.dry_run_listing(sweep, log, owners=owners, world_size=world.world_size)
        if check is not None:
            done = checks.is_done(sweep.out, check)
            where = "done" if done else f"rank {len(pending) % world.world_size}"
            log(f"  determinism check ({where}): {check.describe()}")
        return code

    cuda_count = torch.cuda.device_count()  # does not start CUDA
    devices = {
        t.id: rank_device(t.spec.train.device, world.local_rank, cuda_count) for t in sweep.trials
    }
    import torch.distributed as dist

    with StopSignals() as signals:
        dist.init_process_group(
            BACKEND, rank=world.rank, world_size=world.world_size, timeout=timeout
        )
        try:
            with contextlib.ExitStack() as held:  # rank 0's lock on D, released after step 4
                code = _run(
                    world, sweep, devices, start, time_limit_s, signals, log, check, snapshot, held
                )
        finally:
            _flush()
            dist.destroy_process_group()
    if code not in (0, EXIT_INTERRUPTED) and world.rank != 0:
        # torchrun stops every rank once one exits non-zero and reports the first as the root
        # cause: let rank 0, which printed why, be that one (its status is the run's status)
        time.sleep(EXIT_DELAY_S)
    return code


@dataclass
class _Rank:
    """What every step of one rank's run needs: who it is, the sweep, where each trial trains,
    and where its lines and snapshots go."""

    world: World
    sweep: Sweep
    devices: dict[str, str]
    log: Callable[[str], None]
    check: checks.CheckPlan | None
    snapshot: str | Path | None
    host: str = field(default_factory=socket.gethostname)

    def say(self, line: str) -> None:
        self.log(f"rank {self.world.rank}: {line}")
        sys.stdout.flush()

    def say_err(self, line: str) -> None:
        terminal.line(f"rank {self.world.rank}: {line}", sys.stderr)

    def snap(self, *_) -> None:
        if self.snapshot is None:
            return
        try:
            checks.snapshot(self.sweep.out, self.snapshot)
        except OSError as exc:  # a copy for safe keeping: never a reason to stop training
            self.say(f"warning: {self.snapshot} not written: {exc}")


@dataclass
class _Share:
    """How a rank's share of the work ended: its trials, whether it ran the check, the
    failures (id -> message) and how training stopped (``RANK_*``)."""

    mine_ids: set[str]
    checking: bool
    failures: dict[str, str]
    stopped: int


def _run(
    world, sweep, devices: dict[str, str], start, time_limit_s, signals, log, check, snapshot, held
) -> int:
    """Steps 1-4 of a rank's run (the process group is up); returns the common exit status.
    Rank 0 enters its lock on ``sweep.out`` into ``held`` (an ExitStack closed after this)."""
    r = _Rank(world, sweep, devices, log, check, snapshot)
    plan = _setup(r, held)
    if plan is None:
        return EXIT_SETUP
    pending, check_owner = plan
    deadline = start + time_limit_s if time_limit_s else None
    share = _train_share(r, pending, check_owner, deadline, signals)
    return _report(r, pending, check_owner, share)


def _setup(r: _Rank, held: contextlib.ExitStack) -> tuple[list[str], int | None] | None:
    """Steps 1-2: rank 0 locks and prepares D and sends every rank the unfinished trials (a
    0/1 flag per trial), whether the determinism check is still to do and its launch's lock
    key; every rank then checks that it sees D, locked by this launch's rank 0.

    Returns:
        the trials to train and the rank that owns the check (None: no check to run), or None
        when some rank's setup failed (the failing rank printed why).
    """
    rank, size = r.world.rank, r.world.world_size
    sweep, check = r.sweep, r.check
    trials = sweep.trials
    n = len(trials)
    setup = [0] * (n + 3)
    if rank == 0:
        try:
            key = runlock.launch_key()
            held.enter_context(runlock.locked(sweep.out, r.log, runlock.launch_tag(key)))
            sweep.check_base()  # again under the lock: another run may have written meanwhile
            setup[n + 1] = key
            sweep.write_sweep_file()
            clear_rank_files(sweep.out)
            setup[:n] = [int(sweep.status(t) != "done") for t in trials]
            setup[n] = int(check is not None and not checks.is_done(sweep.out, check))
        except BaseException:
            setup[-1] = 1
            sum_over_ranks(setup)
            raise
    setup = sum_over_ranks(setup)
    if setup[-1]:
        return None  # rank 0 reports its error
    pending = [t.id for t, flag in zip(trials, setup[:n], strict=True) if flag]
    # the check is one more share of the work, after the trials: rank len(pending) % size
    check_owner = len(pending) % size if setup[n] else None

    shared = rank == 0 or wait_for((sweep.out / SWEEP_FILE).is_file, FS_WAIT_S)
    if not shared:
        print(
            f"error: rank {rank} on {r.host} does not see {sweep.out / SWEEP_FILE} that "
            f"rank 0 wrote: --out must be a directory on a filesystem shared by all ranks",
            file=sys.stderr,
            flush=True,
        )
    elif rank != 0:
        try:
            runlock.check_launch(sweep.out, setup[n + 1], FS_WAIT_S)
        except UserError as exc:
            print(f"error: rank {rank} on {r.host}: {exc}", file=sys.stderr, flush=True)
            shared = False
    blind = sum_over_ranks([int(not shared) if i == rank else 0 for i in range(size)])
    if any(blind):
        return None

    if rank == 0:
        r.log(
            f"sweep {sweep.config.name!r}: {n} trial(s), {len(pending)} to train, "
            f"output {sweep.out}"
        )
        r.log(f"{size} ranks ({BACKEND}): the i-th trial to train goes to rank i % {size}")
        if check is not None:
            where = "done earlier" if check_owner is None else f"rank {check_owner}"
            r.log(f"determinism check ({where}): {check.describe()}")
        sys.stdout.flush()
    return pending, check_owner


def _train_share(
    r: _Rank, pending: list[str], check_owner: int | None, deadline: float | None, signals
) -> _Share:
    """Step 3: train this rank's share of ``pending`` (and the check, if it owns it), stopping
    at ``deadline`` (monotonic seconds) or on a signal; failures are recorded, not raised."""
    sweep, check, devices, say = r.sweep, r.check, r.devices, r.say
    mine_ids = set(assign(pending, r.world.world_size)[r.world.rank])
    mine = [t for t in sweep.trials if t.id in mine_ids]
    checking = check_owner == r.world.rank
    if mine:
        first_device = devices[mine[0].id]
    else:
        first_device = devices[check.trial.id] if checking else "cpu"
    if first_device.startswith("cuda"):
        # what charlm.determinism.configure would set; it must precede CUDA's start
        if os.environ.get("CUBLAS_WORKSPACE_CONFIG") not in determinism.VALID_CUBLAS:
            os.environ["CUBLAS_WORKSPACE_CONFIG"] = determinism.CUBLAS_WORKSPACE_CONFIG
        torch.cuda.set_device(torch.device(first_device))
    threads = sorted({t.spec.train.threads for t in mine})
    work = [t.id for t in mine] + (["determinism check"] if checking else [])
    say(
        f"{r.host}, {first_device}, {'/'.join(map(str, threads)) or '-'} thread(s): "
        + (", ".join(work) if work else "nothing to train")
    )
    failures: dict[str, str] = {}
    stopped = RANK_OK

    def stop(step: int) -> bool:
        timed_out = deadline is not None and time.monotonic() > deadline
        return timed_out or signals.received is not None

    try:
        runner.train_trials(
            sweep,
            mine,
            device=lambda trial: devices[trial.id],
            deadline=deadline,
            log=say,
            stop_check=lambda step: signals.received is not None,
            failures=failures,
            progress=False,
            step_log=r.say_err,
            on_done=r.snap,
        )
        if checking:
            try:
                checks.run_check(
                    sweep.out,
                    sweep.corpus,
                    check,
                    device=devices[check.trial.id],
                    stop_check=stop,
                    log=say,
                    step_log=r.say_err,
                    on_done=r.snap,
                )
            except TrainingInterrupted:
                raise
            except Exception as exc:  # a failed check must not lose the trials
                failures[checks.CHECK_ID] = f"{type(exc).__name__}: {exc}"
                say(f"    FAILED: {failures[checks.CHECK_ID]}")
    except TrainingInterrupted as exc:
        timed_out = deadline is not None and time.monotonic() > deadline
        stopped = RANK_TIME_LIMIT if timed_out and not signals.received else RANK_INTERRUPTED
        say(f"{'time limit reached' if stopped == RANK_TIME_LIMIT else 'interrupted'}: {exc}")
    if signals.received:
        stopped = RANK_INTERRUPTED
    return _Share(mine_ids, checking, failures, stopped)


def _report(r: _Rank, pending: list[str], check_owner: int | None, share: _Share) -> int:
    """Step 4: every rank writes its status file and reports a code per trial and how it
    stopped; rank 0 publishes or records what is missing (:func:`_conclude`). Returns the
    common exit status."""
    rank, size = r.world.rank, r.world.world_size
    sweep, check = r.sweep, r.check
    trials = sweep.trials
    ids = [t.id for t in trials]
    codes = []
    for t in trials:
        if t.id not in share.mine_ids:
            codes.append(TRIAL_OK)
        elif t.id in share.failures:
            codes.append(TRIAL_FAILED)
        else:
            codes.append(TRIAL_OK if sweep.status(t) == "done" else TRIAL_UNFINISHED)
    if not share.checking:
        codes.append(TRIAL_OK)
    elif checks.CHECK_ID in share.failures:
        codes.append(TRIAL_FAILED)
    else:
        codes.append(TRIAL_OK if checks.is_done(sweep.out, check) else TRIAL_UNFINISHED)
    atomic_write_json(
        rank_file(sweep.out, rank),
        {
            "rank": rank,
            "world_size": size,
            "host": r.host,
            "devices": {tid: r.devices[tid] for tid in sorted(share.mine_ids)},
            "trials": sorted(share.mine_ids),
            "determinism_check": share.checking,
            "failures": share.failures,
            "stopped": ("ok", "time limit", "interrupted")[share.stopped],
        },
    )
    _flush()

    n = len(trials)
    summary = sum_over_ranks(codes + [share.stopped if i == rank else 0 for i in range(size)])
    trial_codes = dict(zip(ids, summary[:n], strict=True))
    if check is not None:
        trial_codes[checks.CHECK_ID] = summary[n]
    rank_codes = summary[n + 1 :]
    code = 1
    try:
        if rank == 0:
            owners = {checks.CHECK_ID: check_owner} if check_owner is not None else {}
            code = _conclude(
                sweep, pending, trial_codes, rank_codes, r.log, check, owners, r.devices[ids[0]]
            )
            r.snap()
        else:
            code = 0
    finally:
        _flush()
        code = sum_over_ranks([code if rank == 0 else 0])[0]
    return code


def _conclude(
    sweep,
    pending: list[str],
    trial_codes: dict,
    rank_codes: list[int],
    log,
    check=None,
    owners: dict | None = None,
    device: str = "cpu",
) -> int:
    """Rank 0, after every rank reported: the determinism verdict and finalize (on
    ``device``), or record and name what is missing. ``owners`` names the rank of work that
    is not a trial (the check)."""
    from reproduce import results
    from reproduce.manifest import write_manifest

    size = len(rank_codes)
    paths = [rank_file(sweep.out, r) for r in range(size)]
    wait_for(lambda: all(p.is_file() for p in paths), FS_WAIT_S)
    failed = sorted(tid for tid, c in trial_codes.items() if c == TRIAL_FAILED)
    shares = {tid: r for r, share in enumerate(assign(pending, size)) for tid in share}
    shares.update(owners or {})
    messages = {
        tid: f"failed on rank {r} (its status file was not readable: see its output)"
        for tid, r in shares.items()
    }
    for path in paths:
        try:
            messages.update(json.loads(path.read_text(encoding="utf-8"))["failures"])
        except (OSError, ValueError, KeyError, TypeError):
            pass
    clear_rank_files(sweep.out)
    failures = {tid: messages[tid] for tid in failed}
    unfinished = sorted(tid for tid, c in trial_codes.items() if c == TRIAL_UNFINISHED)

    if failures:
        atomic_write_json(sweep.out / FAILED_FILE, failures)
    if RANK_INTERRUPTED in rank_codes or RANK_TIME_LIMIT in rank_codes or failures or unfinished:
        write_manifest(sweep.out)
        if failures:
            print(
                f"error: {len(failures)} trial(s) failed: {', '.join(failed)} (details in "
                f"{sweep.out / FAILED_FILE}); the other trials are kept, rerun to retry",
                file=sys.stderr,
            )
        if RANK_INTERRUPTED in rank_codes:
            log("interrupted: finished trials are kept; rerun the same command to resume")
            return EXIT_INTERRUPTED
        if RANK_TIME_LIMIT in rank_codes:
            log("time limit reached: state saved; rerun the same command to resume")
            return runner.EXIT_TIME_LIMIT
        if unfinished:  # no rank said why: should not happen
            print(
                f"error: trial(s) {', '.join(unfinished)} did not finish; rerun to retry",
                file=sys.stderr,
            )
        return 1

    # every trial is finished; wait until this host sees the other ranks' files
    if not wait_for(lambda: all(sweep.status(t) == "done" for t in sweep.trials), FS_WAIT_S):
        missing = [t.id for t in sweep.trials if sweep.status(t) != "done"]
        print(
            f"error: rank 0 does not see the finished trial(s) {', '.join(missing)}: --out "
            "must be on a filesystem shared by all ranks",
            file=sys.stderr,
        )
        write_manifest(sweep.out)
        return EXIT_SETUP
    verdict = None
    if check is not None:
        replica = checks.replica_dir(sweep.out, check)
        if not wait_for(lambda: checks.is_done(sweep.out, check), FS_WAIT_S):
            print(
                f"error: rank 0 does not see the finished determinism check in {replica}: "
                "--out must be on a filesystem shared by all ranks",
                file=sys.stderr,
            )
            write_manifest(sweep.out)
            return EXIT_SETUP
        verdict = checks.verdict(sweep.out, check, sweep.trial_dir(check.trial))
        copies, resume = verdict["copies"], verdict["resume"]
        same = {True: "identical", False: "DIFFERENT"}
        log(
            f"determinism check of {check.trial.id}: copy {same[copies['identical']]}, "
            f"stopped at {resume['stopped_at']} and resumed {same[resume['identical']]}"
        )
        log(f"  SHA-256 {copies['weights_sha256'][0]}")
    log(f"prediction differences and samples on {device}")
    finalize(sweep, log=log, device=device)
    log(f"done: {sweep.out / results.RESULTS_FILE}")
    if verdict is not None and not verdict["identical"]:
        print(
            f"error: the determinism check failed (weights differ): see "
            f"{sweep.out / checks.VERDICT_FILE}",
            file=sys.stderr,
        )
        return 1
    return 0
