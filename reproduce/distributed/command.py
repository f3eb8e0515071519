"""The ``run`` command: on a rank of a torchrun launch (:mod:`.rank`) or in one process
(:mod:`reproduce.runner`), with the options only this path adds (see
:mod:`reproduce.distributed`)."""

from __future__ import annotations

import argparse
import sys

from charlm.io import atomic_write_text
from reproduce import checks, runner
from reproduce.distributed.rank import run_sweep
from reproduce.distributed.world import (
    EXIT_INTERRUPTED,
    EXIT_SETUP,
    clear_rank_files,
    world_from_env,
)
from reproduce.errors import UserError

__all__ = ["register", "run_command"]


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
        common = {  # what both paths take from the command line
            "data": a.data,
            "dry_run": a.dry_run,
            "time_limit_s": a.time_limit,
            "sweep_options": runner.command_options(a),
        }
        if distributed:
            code = run_sweep(
                world,
                a.config,
                a.out,
                **common,
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
            **common,
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
