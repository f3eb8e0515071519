"""One writer per run directory: ``run`` holds an exclusive lock on ``--out`` while it writes.

The lock is ``flock(2)`` on ``DIR/.run.lock`` (left out of SHA256SUMS). The kernel releases it
when the process ends however it ends (exit, exception, SIGKILL), so a lock is never left held
by a dead run; a clean exit removes the file, so a lock file found unlocked was left by a run
that was killed: it is stale, and the next run takes it over and says so. While held, the file
names its holder (process id, host, start time), which a second run into the same directory
prints in its one-line refusal. On NFS, Linux maps ``flock`` onto the server's byte-range
locks (NFSv4), so runs on two machines exclude each other too. Under torchrun the ranks of one
launch share the directory by design and take no lock (:mod:`reproduce.distributed`).
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import os
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

from reproduce.errors import UserError
from reproduce.manifest import LOCK_FILE

__all__ = ["LOCK_FILE", "holder", "locked"]


def holder(directory: str | os.PathLike) -> str:
    """The holder recorded in ``directory``'s lock file (``pid 123 on host since ...``), or
    ``"unknown"`` while it is being written."""
    try:
        text = (Path(directory) / LOCK_FILE).read_text(encoding="utf-8").strip()
    except OSError:
        text = ""
    return text or "unknown"


@contextlib.contextmanager
def locked(
    directory: str | os.PathLike, log: Callable[[str], None] = lambda _: None
) -> Iterator[Path]:
    """Hold the exclusive lock on ``directory`` (created if missing) for the ``with`` block.

    Raises:
        UserError: another process holds it (the line names the holder and what to do).
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / LOCK_FILE
    fd = _acquire(path, directory)
    try:
        stale = os.read(fd, 4096).decode("utf-8", "replace").strip()
        if stale:
            log(f"note: {directory} was left by a run that ended without finishing ({stale})")
        since = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()} since {since}\n".encode(), 0)
        os.fsync(fd)
        try:
            yield path
        finally:
            path.unlink(missing_ok=True)  # while still locked: a clean exit leaves no file
    finally:
        os.close(fd)  # releases the lock


def _acquire(path: Path, directory: Path) -> int:
    """An open descriptor of ``path`` holding its exclusive lock. A lock file removed by a
    finishing holder between our open and our lock is opened again (the descriptor must be
    the file that is there now, or two runs could each hold a lock on a different file)."""
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise UserError(
                f"{directory} is being written by another run ({holder(directory)}); wait for "
                "it to finish or choose another --out"
            ) from None
        try:
            now = os.stat(path, follow_symlinks=False)
        except FileNotFoundError:
            now = None
        mine = os.fstat(fd)
        if now is not None and (now.st_dev, now.st_ino) == (mine.st_dev, mine.st_ino):
            return fd
        os.close(fd)
