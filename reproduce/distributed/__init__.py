"""Sweeps spread over several processes, GPUs or machines with ``torchrun``.

Modules: :mod:`.world` (the ranks, the assignment, devices, the status files), :mod:`.rank`
(one rank's run: setup, its share, the outcome) and :mod:`.command` (the ``run`` command).

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
  (:func:`reproduce.finish.finalize`, prediction differences and samples on rank 0's
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

from reproduce.distributed.command import register, run_command
from reproduce.distributed.rank import run_sweep
from reproduce.distributed.world import (
    BACKEND,
    DEFAULT_TIMEOUT_S,
    ENV_TIMEOUT,
    LAUNCHER_VARS,
    RANKS_DIR,
    World,
    assign,
    clear_rank_files,
    collective_timeout,
    rank_device,
    world_from_env,
)

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
    "register",
    "run_command",
    "run_sweep",
    "world_from_env",
]
