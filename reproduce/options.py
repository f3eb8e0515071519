"""Command-line options that several commands share, each defined once."""

from __future__ import annotations

import argparse

DATA_HELP = "tiny Shakespeare's file (default: $CHARLM_DATA, else the cache or a download)"


def add_data_option(parser: argparse.ArgumentParser, help: str = DATA_HELP) -> None:
    """Give a command line ``--data FILE`` (``args.data``, None when not given): the corpus
    file, resolved by :func:`charlm.data.resolve_data_path` ($CHARLM_DATA, else the cached
    download, checked by its SHA-256)."""
    parser.add_argument("--data", default=None, metavar="FILE", help=help)
