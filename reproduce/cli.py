"""Command line of the pipeline: ``python -m reproduce <command> ...``.

Each command lives in its own module, which exposes ``register(subparsers)``; the parser it
adds sets ``func`` to a callable taking the parsed arguments and returning an exit status.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from reproduce.errors import UserError

# command name -> module that implements it
COMMANDS = {
    "run": "reproduce.distributed",  # reproduce.runner's command, spread over torchrun ranks
    "merge": "reproduce.merge",
    "render": "reproduce.report",
    "publish": "reproduce.publish",
    "verify": "reproduce.verify",
    "audit": "reproduce.audit.command",  # above reproduce.audit and reproduce.rawdata
    "reference": "reproduce.rawdata.command",
    "compare": "reproduce.compare",
    "bench": "reproduce.bench",
    "precision": "reproduce.precision",
    "parity": "reproduce.parity",
    "positions": "reproduce.positions",
}


DESCRIPTION = (
    "Reproduce the CharLM activation study: train a sweep (run), merge trials trained on "
    "several machines into one sweep (merge), render its report, publish "
    "it, check a result (verify), audit the published report's own numbers and the study's raw "
    "data (reference import, audit), compare a sweep "
    "with it, benchmark training speed, measure what bf16 changes (precision), "
    "check the study protocol's step-0 losses against the study's records (parity), and "
    "score a model position by position (positions). "
    "`python -m reproduce COMMAND --help` for each."
)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every command whose module is present."""
    parser = argparse.ArgumentParser(prog="python -m reproduce", description=DESCRIPTION)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module_name in COMMANDS.values():
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            continue
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` and run the command; returns the process exit status."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (UserError, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            "interrupted: finished trials are kept; rerun the same command to resume",
            file=sys.stderr,
        )
        return 130
