"""Text for the terminal: the width to fit, paragraphs wrapped to it, and progress.

Commands print to the terminal's width when their output is a terminal and to 80 columns
otherwise (a pipe, a file, a test's captured output); the files they write keep full lines.
Long work shows its progress as training does: a tqdm bar with an ETA on a terminal, one plain
line per piece of work otherwise (:class:`Progress`).
"""

from __future__ import annotations

import shutil
import sys
import textwrap
from collections.abc import Callable
from typing import TextIO

from tqdm import tqdm

__all__ = ["DEFAULT_WIDTH", "MIN_WIDTH", "Progress", "is_terminal", "line", "width", "wrap"]

DEFAULT_WIDTH = 80  # columns when the output is not a terminal
MIN_WIDTH = 40  # narrower terminals get this many columns (lines then wrap in the terminal)


def is_terminal(stream: TextIO) -> bool:
    """Whether ``stream`` is a terminal (False for a closed or stand-in stream)."""
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def line(text: str, stream: TextIO | None = None) -> None:
    """Write ``text`` and its newline in one call, then flush (default stream: stdout).

    Processes that share a pipe (torchrun's ranks) cannot split such a line: ``print`` writes
    the text and the newline in two calls, which interleave between processes when Python runs
    unbuffered (``PYTHONUNBUFFERED``, ``python -u``), so one rank's line could end up glued
    after another's.
    """
    stream = sys.stdout if stream is None else stream
    stream.write(f"{text}\n")
    stream.flush()


def width(stream: TextIO | None = None) -> int:
    """Columns to fit: the terminal's width when ``stream`` (default ``sys.stdout``) is a
    terminal, else :data:`DEFAULT_WIDTH`; never below :data:`MIN_WIDTH`."""
    if not is_terminal(sys.stdout if stream is None else stream):
        return DEFAULT_WIDTH
    return max(MIN_WIDTH, shutil.get_terminal_size((DEFAULT_WIDTH, 24)).columns)


def wrap(text: str, columns: int, indent: str = "", first: str | None = None) -> list[str]:
    """``text`` wrapped to ``columns``, each line starting with ``indent`` (the first with
    ``first`` when given); hyphenated names stay whole (``relu-s42``), only words longer than
    a line are broken. Returns at least one line."""
    return textwrap.wrap(
        text,
        columns,
        initial_indent=indent if first is None else first,
        subsequent_indent=indent,
        break_on_hyphens=False,
    ) or [(indent if first is None else first).rstrip()]


class Progress:
    """Progress through ``total`` pieces of work, each announced by :meth:`step`.

    On a terminal (``bar`` None: when ``sys.stderr`` is one) a tqdm bar on stderr with the
    piece's name, the count and an ETA from the pieces done so far; otherwise one line per
    piece, ``  [3/11] sample of gelu``, through ``log`` (default: stderr). Use as a context
    manager, or call :meth:`close`.
    """

    def __init__(
        self,
        total: int,
        what: str,
        log: Callable[[str], None] | None = None,
        *,
        bar: bool | None = None,
    ) -> None:
        self.total, self.count = total, 0
        self.log = log or (lambda line: print(line, file=sys.stderr, flush=True))
        use_bar = is_terminal(sys.stderr) if bar is None else bar
        self.bar = tqdm(
            total=total, desc=what, unit="step", file=sys.stderr, leave=False, disable=not use_bar
        )

    def set_total(self, total: int) -> None:
        """Change the number of pieces (for work whose size is known only once it started)."""
        self.total = total
        self.bar.total = total
        self.bar.refresh()

    def step(self, text: str, plain: bool = True) -> None:
        """The previous piece is done; ``text`` names the one that starts now. ``plain``
        False: no plain line for this piece when there is no bar (its output shows it)."""
        if self.count:
            self.bar.update(1)
        self.count += 1
        if not self.bar.disable:
            self.bar.set_postfix_str(text)
        elif plain:
            self.log(f"  [{self.count}/{self.total}] {text}")

    def write(self, line: str) -> None:
        """Print ``line`` to stdout without breaking the bar (``tqdm.write``)."""
        if self.bar.disable:
            print(line, flush=True)
        else:
            tqdm.write(line, file=sys.stdout)

    def close(self) -> None:
        """The last piece is done: remove the bar."""
        if self.count:
            self.bar.update(1)
            self.count = 0
        self.bar.close()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
