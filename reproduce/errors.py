"""The pipeline's error for bad input, at the bottom of its imports (the command modules raise
it; :func:`reproduce.cli.main` prints it)."""

from __future__ import annotations

__all__ = ["UserError"]


class UserError(Exception):
    """Bad input from the user: printed as one line, exit status 2, no traceback."""
