"""The ranks of a torchrun launch: who this process is, which trials and device are its own,
how long it waits, and the status files and integer exchanges the ranks share (see
:mod:`reproduce.distributed`)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import torch

__all__ = [
    "BACKEND",
    "DEFAULT_TIMEOUT_S",
    "ENV_TIMEOUT",
    "LAUNCHER_VARS",
    "RANKS_DIR",
    "World",
    "assign",
    "clear_rank_files",
    "collective_timeout",
    "rank_device",
    "rank_file",
    "sum_over_ranks",
    "wait_for",
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


def wait_for(condition: Callable[[], bool], seconds: float, poll_s: float = 0.5) -> bool:
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


def sum_over_ranks(values: Sequence[int]) -> list[int]:
    """Element-wise sum of every rank's ``values`` (gloo all_reduce of an int64 CPU tensor)."""
    import torch.distributed as dist

    tensor = torch.tensor(list(values), dtype=torch.int64)
    work = dist.all_reduce(tensor, op=dist.ReduceOp.SUM, async_op=True)
    _EXCHANGED.append((tensor, work))
    work.wait()
    return [int(v) for v in tensor.tolist()]
