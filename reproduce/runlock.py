"""One writer per run directory: ``run`` holds an exclusive lock on ``--out`` while it writes.

The lock is ``flock(2)`` on ``DIR/.run.lock`` (left out of SHA256SUMS). The kernel releases it
when the process ends however it ends (exit, exception, SIGKILL), so a lock is never left held
by a dead run; a clean exit removes the file, so a lock file found unlocked was left by a run
that was killed: it is stale, and the next run takes it over and says so. While held, the file
names its holder (process id, host, start time), which a second run into the same directory
prints in its one-line refusal. On NFS, Linux maps ``flock`` onto the server's byte-range
locks (NFSv4), so runs on two machines exclude each other too.

Under torchrun (:mod:`reproduce.distributed`) the ranks of one launch write into one directory
together, and a second launch must refuse it. Rank 0 takes the lock as a single process would,
and writes into the lock file, after its holder, the launch it belongs to
(:func:`launch_tag`: ``TORCHELASTIC_RUN_ID``, else ``MASTER_ADDR:MASTER_PORT``, for people to
read) and a random key of this launch (:func:`launch_key`). It sends the key to the other ranks
over the process group, and each of them, on this machine or another one on the shared
filesystem, checks that the lock file it sees names that key (:func:`check_launch`), else
refuses with one line naming the holder; the ranks then agree to go on or all stop. So a second
launch, or a single-process run, into a directory a launch holds refuses at its rank 0 (the
flock), and a rank whose ``--out`` is not the directory its rank 0 locked refuses too. The key
comes from rank 0 rather than from the environment: two launches with torchrun's default
``--rdzv-id`` share ``TORCHELASTIC_RUN_ID``, and ``MASTER_ADDR`` can be ``localhost`` on two
machines. Only rank 0 holds the flock: if it dies, torchrun stops the other ranks.
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import os
import secrets
import socket
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

from reproduce.errors import UserError
from reproduce.manifest import LOCK_FILE

__all__ = ["LOCK_FILE", "check_launch", "holder", "launch_key", "launch_tag", "locked"]


def holder(directory: str | os.PathLike) -> str:
    """The holder recorded in ``directory``'s lock file (``pid 123 on host since ...``), or
    ``"unknown"`` while it is being written."""
    try:
        text = (Path(directory) / LOCK_FILE).read_text(encoding="utf-8").strip()
    except OSError:
        text = ""
    return text or "unknown"


def launch_key() -> int:
    """A random key naming one torchrun launch: positive, below 2**62 (it travels as an int64
    through a sum over ranks to which the other ranks add 0)."""
    return secrets.randbits(62) | 1


def launch_tag(key: int, environ: Mapping[str, str] | None = None) -> str:
    """What rank 0 adds to its holder line: ``rank 0 of torchrun launch ID, key K``, the
    launch named by ``TORCHELASTIC_RUN_ID``, else ``MASTER_ADDR:MASTER_PORT``, and ``key``
    (:func:`launch_key`) in 16 hex digits."""
    env = os.environ if environ is None else environ
    name = env.get("TORCHELASTIC_RUN_ID") or (
        f"{env.get('MASTER_ADDR', '?')}:{env.get('MASTER_PORT', '?')}"
    )
    return f"rank 0 of torchrun launch {name}, {_key_text(key)}"


def _key_text(key: int) -> str:
    return f"key {key:016x}"


def check_launch(directory: str | os.PathLike, key: int, wait_s: float = 0.0) -> None:
    """Refuse unless ``directory``'s lock file names the launch ``key`` (its rank 0 holds the
    lock). A shared filesystem may show a file late: waits up to ``wait_s`` seconds for it.

    Raises:
        UserError: the lock file names another holder (the line names it), or is not there.
    """
    directory = Path(directory)
    path = directory / LOCK_FILE
    end = time.monotonic() + wait_s
    while True:
        text = holder(directory) if path.is_file() else None
        if text is not None and text.endswith(f", {_key_text(key)})"):
            return
        if time.monotonic() >= end:
            break
        time.sleep(min(0.5, max(0.0, end - time.monotonic())))
    if text is None:
        raise UserError(
            f"{directory} has no lock file, though this launch's rank 0 holds its lock: --out "
            "must be a directory on a filesystem shared by all ranks"
        )
    raise UserError(
        f"{directory} is being written by another run ({text}), not this launch's rank 0; "
        "wait for it to finish or choose another --out"
    )


@contextlib.contextmanager
def locked(
    directory: str | os.PathLike,
    log: Callable[[str], None] = lambda _: None,
    launch: str = "",
) -> Iterator[Path]:
    """Hold the exclusive lock on ``directory`` (created if missing) for the ``with`` block.

    Args:
        log: where to say that a stale lock file was taken over.
        launch: rank 0's :func:`launch_tag` under torchrun, written after the holder in
            parentheses; "" for a single process.

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
        line = f"pid {os.getpid()} on {socket.gethostname()} since {since}"
        if launch:
            line += f" ({launch})"
        os.pwrite(fd, f"{line}\n".encode(), 0)
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
