"""Containment: paths read from a file (SHA256SUMS entries, trial ids, render options) stay
inside the directory they came with.

A publication is untrusted input. A path it names is used only if it is relative, has no
``..``, ``.`` or empty component, and no component from the directory down is a symbolic link,
so that what is opened is the file inside the directory and nothing it leads to. A publication
written by ``publish`` contains only directories and regular files: :func:`scan` names
anything else (symbolic links, FIFOs, devices, sockets), which ``verify`` refuses before it
reads any file of the directory; so is a file with other hard links, which may be a file
outside under another name.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path, PurePosixPath

__all__ = ["UnsafePath", "inside", "safe_component", "scan", "regular_file", "read_bounded"]


class UnsafePath(ValueError):
    """A path from a file that would lead outside its directory, or to something other than a
    regular file or directory."""


def safe_component(name: str, what: str) -> str:
    """``name`` if it can be one path component (a trial id as a directory name).

    Raises:
        UnsafePath: empty, ``.``, ``..``, or holding ``/``, ``\\`` or a NUL (``what`` names it).
    """
    if not name or name in (".", "..") or any(c in name for c in "/\\\0"):
        raise UnsafePath(f"{what} {name!r} is not a plain file name (no '/', '..')")
    return name


def inside(root: str | os.PathLike, rel: str, what: str) -> Path:
    """``root / rel`` for a relative POSIX path ``rel`` read from a file, checked to stay
    inside ``root``: relative, no ``.``/``..``/empty component, no backslash or NUL, no
    symbolic link on the way (what does not exist yet is allowed: the caller decides).

    Raises:
        UnsafePath: naming ``what`` (e.g. "SHA256SUMS line 3") and why.
    """
    if not isinstance(rel, str) or not rel:
        raise UnsafePath(f"{what}: empty path")
    if "\\" in rel or "\0" in rel:
        raise UnsafePath(f"{what}: {rel!r} holds a backslash or NUL")
    posix = PurePosixPath(rel)
    if posix.is_absolute():
        raise UnsafePath(f"{what}: {rel!r} is absolute; only paths inside the directory count")
    parts = rel.split("/")
    if any(p in ("", ".", "..") for p in parts):
        raise UnsafePath(f"{what}: {rel!r} leads outside the directory or is not canonical")
    path = Path(root)
    for part in parts:
        path = path / part
        try:
            mode = path.lstat().st_mode
        except FileNotFoundError:
            return Path(root, *parts)
        if stat.S_ISLNK(mode):
            raise UnsafePath(f"{what}: {rel!r} passes through a symbolic link")
    return path


def regular_file(path: Path) -> bool:
    """True if ``path`` is a regular file itself (not a link to one, not a FIFO or device)."""
    try:
        return stat.S_ISREG(path.lstat().st_mode)
    except OSError:
        return False


def scan(root: str | os.PathLike) -> list[tuple[str, str]]:
    """``(relative path, what it is)`` for everything under ``root`` that is neither a regular
    file nor a directory (symbolic links are not followed), and for regular files with other
    hard links (the same file may stand elsewhere, outside ``root``), sorted."""
    root = Path(root)
    found = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        for name in dirnames + filenames:
            path = Path(dirpath, name)
            info = path.lstat()
            mode = info.st_mode
            if stat.S_ISREG(mode) and info.st_nlink > 1:
                found.append((path.relative_to(root).as_posix(), "a file with other hard links"))
                continue
            if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
                continue
            kind = "a symbolic link" if stat.S_ISLNK(mode) else "not a regular file"
            if stat.S_ISLNK(mode):
                kind += f" to {os.readlink(path)}"
            found.append((path.relative_to(root).as_posix(), kind))
    return sorted(found)


def read_bounded(path: Path, limit: int, what: str) -> bytes:
    """The bytes of the regular file ``path``, refused beyond ``limit`` bytes before reading.

    Raises:
        UnsafePath: not a regular file (a link, FIFO, device) or larger than ``limit``.
        OSError: it cannot be read.
    """
    try:
        info = path.lstat()
    except FileNotFoundError:
        raise
    if not stat.S_ISREG(info.st_mode):
        raise UnsafePath(f"{what} {path} is not a regular file")
    if info.st_size > limit:
        raise UnsafePath(
            f"{what} {path} has {info.st_size:,} bytes, more than the {limit:,} accepted"
        )
    with open(path, "rb") as handle:
        payload = handle.read(limit + 1)
    if len(payload) > limit:
        raise UnsafePath(f"{what} {path} grew past {limit:,} bytes while read")
    return payload
