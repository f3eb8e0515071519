"""Sweeps spread over several processes, GPUs or machines with ``torchrun``.

``torchrun --nproc_per_node=N [--nnodes=M --rdzv-backend=c10d --rdzv-endpoint=HOST:PORT]
-m reproduce run --config C --out D`` starts ``N x M`` ranks; each trains its share of the sweep
and rank 0 publishes the results. Plain ``python -m reproduce run`` (no ``WORLD_SIZE``, ``RANK``
and ``LOCAL_RANK`` in the environment, or ``WORLD_SIZE=1``) is the single-process path of
:mod:`reproduce.runner` and sets up nothing of this. This module owns the ``run`` command
(:func:`register`, :func:`run_command`) and calls the runner; the runner never calls it.

Options of ``run`` that this module adds:

- ``--determinism-check STEPS`` (torchrun only): one more share of the work, after the trials,
  is :mod:`reproduce.checks`' check: a second copy of the sweep's first trial and a
  ``STEPS``-step stop/resume run, on the same kind of device at the same time as the trials.
  Rank 0 writes ``D/checks/determinism.json`` once all is finished; different weights make
  the run's status 1 (everything else is still written).
- ``--snapshot FILE``: every trial's record and log (and the check's) in one ``.tar.gz``,
  rewritten as each trial finishes and when the run ends, so a run that is cut off still
  leaves its finished trials' records there.
- ``--status-file FILE``: rank 0 writes the run's exit status there (a line with the number),
  since ``torchrun`` itself exits 1 whatever status its ranks had.

Rules:

- **Shared output.** ``D`` must be one directory on a filesystem every rank sees (a cluster's
  shared filesystem, e.g. NFS, Lustre, GPFS): ranks write their trials there and rank 0 reads them
  back. A rank that cannot see the ``sweep.json`` rank 0 wrote stops the run (exit 2).
- **One launch per directory.** Rank 0 holds ``D``'s lock (:mod:`reproduce.runlock`) from
  before it writes until every rank is done, and names its launch in the lock file; every
  other rank checks that the lock file it sees names its own launch. A second launch, or a
  single-process run, into ``D`` refuses with one line naming the holder (exit 2).
- **Assignment.** Rank 0 lists the trials that are not finished (sorted by id) and sends that
  list to every rank; the ``i``-th of them belongs to rank ``i % world_size``
  (:func:`assign`). Each trial has exactly one owner; finished trials are skipped, an interrupted
  one resumes from its saved state, whichever rank owns it now.
- **Devices.** A rank trains on ``cuda:<LOCAL_RANK % number of GPUs>`` (ranks share a GPU when
  there are more ranks than GPUs) and on the CPU when the config says ``device = "cpu"`` or
  (``device = "auto"``) there is no GPU (:func:`rank_device`).
- **Threads.** ``torchrun`` exports ``OMP_NUM_THREADS=1``; every trial sets the configured
  ``train.threads`` itself (:func:`charlm.determinism.configure`), so each trial's weights are
  bit-identical to a single-process run of the same sweep on the same platform.
- **Coordination.** Ranks talk over the ``gloo`` backend whatever the device (NCCL refuses two
  ranks on one GPU) and exchange only small integer tensors: no pickled objects. A rank's failure
  messages travel in ``D/ranks/rank-<r>.json`` (written atomically); rank 0 reads and removes
  these files before it writes ``SHA256SUMS``, so the manifest covers exactly what stays in ``D``.
- **Waiting.** Ranks that finish early wait for the others in a collective whose timeout is
  ``$REPRODUCE_DIST_TIMEOUT_S`` seconds (default 7 days; ``torch.distributed``'s own default,
  30 minutes, is shorter than a rank's share of a full-size sweep). A rank that dies makes
  ``torchrun`` stop the others, so nobody waits that long for a dead rank.
- **Output.** Each rank prints its own lines prefixed ``rank <r>:`` (trial progress on stdout,
  evaluation lines on stderr); rank 0 alone prints the sweep's summary and the final verdict.
- **Outcome.** When every rank is done, rank 0 writes results.json, the report and SHA256SUMS
  (:func:`reproduce.runner.finalize`, prediction differences and samples on rank 0's
  training device). Otherwise rank 0 writes ``failed.json`` (when trials
  failed) and SHA256SUMS over what exists, and names what is missing. Every rank then exits with
  the same status: 0 done, 1 a trial failed (the others are kept), 2 bad setup (e.g. ``D`` not
  shared), :data:`reproduce.runner.EXIT_TIME_LIMIT` (``--time-limit`` reached on some rank; each
  rank saved its current trial's state) or 130 (SIGINT/SIGTERM, which ``torchrun`` forwards to
  every rank). ``torchrun`` itself exits 1 whenever a rank exits non-zero, stops the other
  ranks (SIGTERM) and names the first to exit as the root cause: ranks other than 0 wait
  :data:`EXIT_DELAY_S` before exiting non-zero so that this is rank 0, with the run's status.
  A rerun of the same command trains only what is missing.

On several machines the ranks must reach each other over TCP; ``GLOO_SOCKET_IFNAME`` chooses the
network interface when the default one is wrong.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import socket
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import torch

from charlm import determinism
from charlm.io import atomic_write_json, atomic_write_text
from charlm.train import StopSignals, TrainingInterrupted
from reproduce import checks, runlock, runner
from reproduce.errors import UserError

__all__ = [
    "BACKEND",
    "DEFAULT_TIMEOUT_S",
    "ENV_TIMEOUT",
    "RANKS_DIR",
    "World",
    "assign",
    "clear_rank_files",
    "collective_timeout",
    "rank_device",
    "register",
    "run_command",
    "run_sweep",
    "world_from_env",
]

BACKEND = "gloo"
ENV_TIMEOUT = "REPRODUCE_DIST_TIMEOUT_S"
DEFAULT_TIMEOUT_S = 7 * 24 * 3600.0
RANKS_DIR = "ranks"
# How long a rank waits for a file another rank wrote to become visible (NFS caches a missing
# name for up to its acdirmax, 60 s by default).
FS_WAIT_S = 120.0
LAUNCHER_VARS = ("WORLD_SIZE", "RANK", "LOCAL_RANK")
# Ranks other than 0 wait this long before exiting non-zero (see run_sweep).
EXIT_DELAY_S = 10.0

# per-trial codes exchanged after training (0 also for trials a rank does not own)
TRIAL_OK, TRIAL_FAILED, TRIAL_UNFINISHED = 0, 1, 2
# per-rank codes: how its training ended
RANK_OK, RANK_TIME_LIMIT, RANK_INTERRUPTED = 0, 1, 2
EXIT_SETUP = 2
EXIT_INTERRUPTED = 130


@dataclass(frozen=True)
class World:
    """This process's place among the ranks, as ``torchrun`` describes it.

    Attributes:
        rank: global rank, 0 .. world_size - 1 (``$RANK``).
        world_size: number of ranks on all machines (``$WORLD_SIZE``).
        local_rank: rank on this machine (``$LOCAL_RANK``); chooses the GPU.
    """

    rank: int
    world_size: int
    local_rank: int


def world_from_env(environ: Mapping[str, str] | None = None) -> World | None:
    """The launcher's ranks from ``WORLD_SIZE``, ``RANK`` and ``LOCAL_RANK`` (set by torchrun).

    Returns:
        None when none of the three is set (a plain ``python -m reproduce`` run).

    Raises:
        ValueError: only some are set, or a value is not a valid integer / out of range.
    """
    env = os.environ if environ is None else environ
    present = [name for name in LAUNCHER_VARS if env.get(name, "") != ""]
    if not present:
        return None
    if len(present) != len(LAUNCHER_VARS):
        missing = [name for name in LAUNCHER_VARS if name not in present]
        raise ValueError(
            f"{', '.join(present)} set but {', '.join(missing)} not: start multi-process runs "
            "with torchrun, or unset these variables for a single-process run"
        )
    try:
        world_size, rank, local_rank = (int(env[name]) for name in LAUNCHER_VARS)
    except ValueError:
        values = ", ".join(f"{name}={env[name]!r}" for name in LAUNCHER_VARS)
        raise ValueError(f"launcher variables must be integers, got {values}") from None
    if world_size < 1 or not 0 <= rank < world_size or local_rank < 0:
        raise ValueError(
            f"launcher variables out of range: WORLD_SIZE={world_size}, RANK={rank}, "
            f"LOCAL_RANK={local_rank} (need 0 <= RANK < WORLD_SIZE and LOCAL_RANK >= 0)"
        )
    return World(rank=rank, world_size=world_size, local_rank=local_rank)


def assign(trial_ids: Iterable[str], world_size: int) -> list[list[str]]:
    """Split trials over ranks: the ``i``-th id in sorted order goes to rank ``i % world_size``.

    Args:
        trial_ids: the trials to train (any order; duplicates are an error).
        world_size: number of ranks (>= 1).

    Returns:
        one sorted list of ids per rank, index = rank; every id appears exactly once, and the
        ranks' loads differ by at most one trial.

    Raises:
        ValueError: ``world_size`` < 1 or a duplicate id.
    """
    if isinstance(world_size, bool) or not isinstance(world_size, int) or world_size < 1:
        raise ValueError(f"world_size must be a positive integer, got {world_size!r}")
    ordered = sorted(trial_ids)
    if len(set(ordered)) != len(ordered):
        raise ValueError(f"duplicate trial ids in {ordered}")
    return [ordered[rank::world_size] for rank in range(world_size)]


def rank_device(configured: str, local_rank: int, cuda_count: int) -> str:
    """The device a rank trains on.

    Args:
        configured: the config's ``train.device`` (``auto``, ``cpu``, ``cuda`` or ``cuda:N``).
        local_rank: the rank's index on its machine.
        cuda_count: GPUs this process sees (``torch.cuda.device_count()``).

    Returns:
        ``"cpu"`` for ``cpu``, and for ``auto`` without a GPU; otherwise
        ``"cuda:<local_rank % cuda_count>"`` (any configured GPU index is replaced: under
        torchrun the local rank chooses the GPU).

    Raises:
        ValueError: a GPU is configured but none is available, or an unknown device type.
    """
    kind = configured.split(":", 1)[0]
    if kind == "cpu":
        return "cpu"
    if kind not in ("auto", "cuda"):
        raise ValueError(f"train.device must be auto, cpu, cuda or cuda:N, got {configured!r}")
    if cuda_count < 1:
        if kind == "auto":
            return "cpu"
        raise ValueError(f"device {configured!r} asked for, but CUDA is not available; use 'cpu'")
    return f"cuda:{local_rank % cuda_count}"


def collective_timeout(environ: Mapping[str, str] | None = None) -> timedelta:
    """How long a rank waits for the others: ``$REPRODUCE_DIST_TIMEOUT_S`` seconds, default
    :data:`DEFAULT_TIMEOUT_S` (7 days).

    Raises:
        ValueError: the variable is not a positive number.
    """
    env = os.environ if environ is None else environ
    raw = env.get(ENV_TIMEOUT, "")
    if raw == "":
        return timedelta(seconds=DEFAULT_TIMEOUT_S)
    try:
        seconds = float(raw)
    except ValueError:
        seconds = float("nan")
    if not seconds > 0 or seconds == float("inf"):
        raise ValueError(f"{ENV_TIMEOUT} must be a positive number of seconds, got {raw!r}")
    return timedelta(seconds=seconds)


def rank_file(out: Path, rank: int) -> Path:
    """``out/ranks/rank-<rank>.json``: what one rank trained and how it ended."""
    return Path(out) / RANKS_DIR / f"rank-{rank}.json"


def clear_rank_files(out: str | os.PathLike) -> None:
    """Remove ``out/ranks/`` (the ranks' status files), e.g. left by a killed run."""
    directory = Path(out) / RANKS_DIR
    if not directory.is_dir():
        return
    for path in directory.iterdir():
        if path.is_file():
            path.unlink(missing_ok=True)
    try:
        directory.rmdir()
    except OSError:  # something else was put there: leave it
        pass


def _wait_for(condition: Callable[[], bool], seconds: float, poll_s: float = 0.5) -> bool:
    """Poll ``condition`` until it holds or ``seconds`` pass; returns its last value."""
    end = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > end:
            return False
        time.sleep(poll_s)
    return True


# Each collective's work handle (and its tensor) stays referenced until the process ends. Gloo's
# worker thread drops its own reference a moment after the caller resumes; were that the last
# one, the thread would free the tensor, which needs the GIL, and if the interpreter is already
# shutting down by then the process aborts ("terminate called without an active exception",
# SIGABRT: seen on about one run in six with torch 2.13). Holding the handle here makes the
# main thread the one that frees it.
_EXCHANGED: list = []


def _sum(values: Sequence[int]) -> list[int]:
    """Element-wise sum of every rank's ``values`` (gloo all_reduce of an int64 CPU tensor)."""
    import torch.distributed as dist

    tensor = torch.tensor(list(values), dtype=torch.int64)
    work = dist.all_reduce(tensor, op=dist.ReduceOp.SUM, async_op=True)
    _EXCHANGED.append((tensor, work))
    work.wait()
    return [int(v) for v in tensor.tolist()]


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
    log: Callable[[str], None] = print,
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
    sweep = runner.Sweep.open(config_path, out, data, **(sweep_options or {}))
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


def _run(
    world, sweep, devices: dict[str, str], start, time_limit_s, signals, log, check, snapshot, held
) -> int:
    """Steps 1-4 of a rank's run (the process group is up); returns the common exit status.
    Rank 0 enters its lock on ``sweep.out`` into ``held`` (an ExitStack closed after this)."""
    rank, size = world.rank, world.world_size
    trials = sweep.trials
    ids = [t.id for t in trials]
    host = socket.gethostname()

    def say(line: str) -> None:
        log(f"rank {rank}: {line}")
        sys.stdout.flush()

    def say_err(line: str) -> None:
        print(f"rank {rank}: {line}", file=sys.stderr, flush=True)

    def snap(*_) -> None:
        if snapshot is None:
            return
        try:
            checks.snapshot(sweep.out, snapshot)
        except OSError as exc:  # a copy for safe keeping: never a reason to stop training
            say(f"warning: {snapshot} not written: {exc}")

    # 1. rank 0 locks and prepares D and sends the list of unfinished trials (a 0/1 flag per
    # trial), whether the determinism check is still to do and its launch's lock key
    n = len(trials)
    setup = [0] * (n + 3)
    if rank == 0:
        try:
            key = runlock.launch_key()
            held.enter_context(runlock.locked(sweep.out, log, runlock.launch_tag(key)))
            sweep.check_base()  # again under the lock: another run may have written meanwhile
            setup[n + 1] = key
            sweep.write_sweep_file()
            clear_rank_files(sweep.out)
            setup[:n] = [int(sweep.status(t) != "done") for t in trials]
            setup[n] = int(check is not None and not checks.is_done(sweep.out, check))
        except BaseException:
            setup[-1] = 1
            _sum(setup)
            raise
    setup = _sum(setup)
    if setup[-1]:
        return EXIT_SETUP  # rank 0 reports its error
    pending = [tid for tid, flag in zip(ids, setup[:n], strict=True) if flag]
    # the check is one more share of the work, after the trials: rank len(pending) % size
    check_owner = len(pending) % size if setup[n] else None

    # 2. every rank must see D, locked by this launch's rank 0
    shared = rank == 0 or _wait_for((sweep.out / runner.SWEEP_FILE).is_file, FS_WAIT_S)
    if not shared:
        print(
            f"error: rank {rank} on {host} does not see {sweep.out / runner.SWEEP_FILE} that rank "
            f"0 wrote: --out must be a directory on a filesystem shared by all ranks",
            file=sys.stderr,
            flush=True,
        )
    elif rank != 0:
        try:
            runlock.check_launch(sweep.out, setup[n + 1], FS_WAIT_S)
        except UserError as exc:
            print(f"error: rank {rank} on {host}: {exc}", file=sys.stderr, flush=True)
            shared = False
    blind = _sum([int(not shared) if r == rank else 0 for r in range(size)])
    if any(blind):
        return EXIT_SETUP

    if rank == 0:
        log(
            f"sweep {sweep.config.name!r}: {len(trials)} trial(s), {len(pending)} to train, "
            f"output {sweep.out}"
        )
        log(f"{size} ranks ({BACKEND}): the i-th trial to train goes to rank i % {size}")
        if check is not None:
            where = "done earlier" if check_owner is None else f"rank {check_owner}"
            log(f"determinism check ({where}): {check.describe()}")
        sys.stdout.flush()

    # 3. train this rank's share
    mine_ids = set(assign(pending, size)[rank])
    mine = [t for t in trials if t.id in mine_ids]
    checking = check_owner == rank
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
        f"{host}, {first_device}, {'/'.join(map(str, threads)) or '-'} thread(s): "
        + (", ".join(work) if work else "nothing to train")
    )
    deadline = start + time_limit_s if time_limit_s else None
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
            step_log=say_err,
            on_done=snap,
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
                    step_log=say_err,
                    on_done=snap,
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
    codes = []
    for t in trials:
        if t.id not in mine_ids:
            codes.append(TRIAL_OK)
        elif t.id in failures:
            codes.append(TRIAL_FAILED)
        else:
            codes.append(TRIAL_OK if sweep.status(t) == "done" else TRIAL_UNFINISHED)
    if not checking:
        codes.append(TRIAL_OK)
    elif checks.CHECK_ID in failures:
        codes.append(TRIAL_FAILED)
    else:
        codes.append(TRIAL_OK if checks.is_done(sweep.out, check) else TRIAL_UNFINISHED)
    atomic_write_json(
        rank_file(sweep.out, rank),
        {
            "rank": rank,
            "world_size": size,
            "host": host,
            "devices": {t.id: devices[t.id] for t in mine},
            "trials": sorted(mine_ids),
            "determinism_check": checking,
            "failures": failures,
            "stopped": ("ok", "time limit", "interrupted")[stopped],
        },
    )
    _flush()

    # 4. everyone reports; rank 0 publishes or records what is missing
    summary = _sum(codes + [stopped if r == rank else 0 for r in range(size)])
    trial_codes = dict(zip(ids, summary[:n], strict=True))
    if check is not None:
        trial_codes[checks.CHECK_ID] = summary[n]
    rank_codes = summary[n + 1 :]
    code = 1
    try:
        if rank == 0:
            owners = {checks.CHECK_ID: check_owner} if check_owner is not None else {}
            code = _conclude(
                sweep, pending, trial_codes, rank_codes, log, check, owners, devices[ids[0]]
            )
            snap()
        else:
            code = 0
    finally:
        _flush()
        code = _sum([code if rank == 0 else 0])[0]
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
    _wait_for(lambda: all(p.is_file() for p in paths), FS_WAIT_S)
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
        atomic_write_json(sweep.out / runner.FAILED_FILE, failures)
    if RANK_INTERRUPTED in rank_codes or RANK_TIME_LIMIT in rank_codes or failures or unfinished:
        write_manifest(sweep.out)
        if failures:
            print(
                f"error: {len(failures)} trial(s) failed: {', '.join(failed)} (details in "
                f"{sweep.out / runner.FAILED_FILE}); the other trials are kept, rerun to retry",
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
    if not _wait_for(lambda: all(sweep.status(t) == "done" for t in sweep.trials), FS_WAIT_S):
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
        if not _wait_for(lambda: checks.is_done(sweep.out, check), FS_WAIT_S):
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
    runner.finalize(sweep, log=log, device=device)
    log(f"done: {sweep.out / results.RESULTS_FILE}")
    if verdict is not None and not verdict["identical"]:
        print(
            f"error: the determinism check failed (weights differ): see "
            f"{sweep.out / checks.VERDICT_FILE}",
            file=sys.stderr,
        )
        return 1
    return 0


def run_command(a: argparse.Namespace) -> int:
    """Run parsed ``run`` arguments: on this rank of a torchrun launch (:func:`run_sweep`), or
    in this one process (:func:`reproduce.runner.run_sweep`); returns the exit status.

    With ``--status-file`` rank 0 (or the single process) writes the status there, also when
    the run ends in an error (2 for bad input, 130 interrupted; 1 for anything else).

    Raises:
        UserError: ``--determinism-check`` without torchrun; and what the runs raise.
    """
    world = world_from_env()
    distributed = world is not None and world.world_size > 1
    code = 1
    try:
        if distributed:
            code = run_sweep(
                world,
                a.config,
                a.out,
                data=a.data,
                dry_run=a.dry_run,
                time_limit_s=a.time_limit,
                sweep_options=runner.command_options(a),
                check_steps=a.determinism_check,
                snapshot=a.snapshot,
            )
            return code
        if a.determinism_check is not None:
            raise UserError(
                "--determinism-check trains on ranks of its own: start the run with "
                "torchrun --nproc_per_node=N (N >= 2)"
            )

        def snap(*_) -> None:
            if not a.snapshot:
                return
            try:
                checks.snapshot(a.out, a.snapshot)
            except OSError as exc:  # a copy for safe keeping: never a reason to stop
                print(f"warning: {a.snapshot} not written: {exc}", file=sys.stderr)

        code = runner.run_sweep(
            a.config,
            a.out,
            data=a.data,
            dry_run=a.dry_run,
            time_limit_s=a.time_limit,
            sweep_options=runner.command_options(a),
            on_start=lambda sweep: clear_rank_files(sweep.out),  # left by a killed launch
            on_trial_done=snap,
        )
        if not a.dry_run:
            snap()
        return code
    except (UserError, ValueError, OSError):
        code = EXIT_SETUP
        raise
    except KeyboardInterrupt:
        code = EXIT_INTERRUPTED
        raise
    finally:
        if a.status_file and (world is None or world.rank == 0):
            atomic_write_text(a.status_file, f"{code}\n")


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``run`` command: :func:`reproduce.runner.register`'s options, plus
    ``--determinism-check``, ``--snapshot`` and ``--status-file`` (module docstring), run by
    :func:`run_command`. Returns its parser."""
    p = runner.register(subparsers, command=run_command)
    p.add_argument(
        "--determinism-check",
        type=int,
        default=None,
        metavar="STEPS",
        help="torchrun only: one more share trains a second copy of the first trial and a "
        "STEPS-step run stopped halfway and resumed; rank 0 compares weights digests "
        "(checks/determinism.json)",
    )
    p.add_argument(
        "--snapshot",
        default=None,
        metavar="FILE",
        help="rewrite FILE (.tar.gz) with every trial's trial.json and log.jsonl as each "
        "trial finishes",
    )
    p.add_argument(
        "--status-file",
        default=None,
        metavar="FILE",
        help="write the run's exit status to FILE (torchrun exits 1 whatever it was)",
    )
    return p
