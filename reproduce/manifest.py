"""SHA256SUMS: the checksum manifest of a run or published directory.

The format is the one ``sha256sum -c`` accepts: one line per file, ``<64 hex digits><two
spaces><path relative to the directory>``, sorted by path. It covers exactly the regular files
present, except itself, resumable training states, temporary files and a run's lock file.
Reading, it accepts what ``sha256sum -c`` accepts (upper-case hex, binary-mode ``*`` lines) and
refuses what would make a path mean two things or lead elsewhere: a path listed twice, an
absolute path or one with ``..``, a path through a symbolic link
(:func:`reproduce.verification.paths.inside`).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from charlm.io import TMP_SUFFIX, atomic_write_text, sha256_file
from reproduce.verification.paths import UnsafePath, inside, read_bounded, regular_file

__all__ = [
    "MANIFEST",
    "LOCK_FILE",
    "EXCLUDED_NAMES",
    "listed_files",
    "write_manifest",
    "check_manifest",
]

MANIFEST = "SHA256SUMS"
LOCK_FILE = ".run.lock"  # reproduce.lock's: who writes into a run directory now
EXCLUDED_NAMES = (MANIFEST, "state.safetensors", LOCK_FILE)
LINE = re.compile(r"^([0-9a-fA-F]{64}) [ *](.+)$")  # text or binary mode, as sha256sum -c
MAX_MANIFEST_BYTES = 4 << 20  # ~50,000 lines; a publication has a few dozen


def listed_files(directory: str | os.PathLike) -> list[str]:
    """Relative POSIX paths of the files the manifest of ``directory`` covers, sorted."""
    root = Path(directory)
    out = []
    for dirpath, _, filenames in os.walk(root, followlinks=False):
        for name in filenames:
            path = Path(dirpath, name)
            if regular_file(path) and name not in EXCLUDED_NAMES and not name.endswith(TMP_SUFFIX):
                out.append(path.relative_to(root).as_posix())
    return sorted(out)


def write_manifest(directory: str | os.PathLike) -> Path:
    """(Re)write ``directory/SHA256SUMS`` over every file now present; returns its path."""
    root = Path(directory)
    lines = [f"{sha256_file(root / rel)}  {rel}\n" for rel in listed_files(root)]
    return atomic_write_text(root / MANIFEST, "".join(lines))


def check_manifest(directory: str | os.PathLike) -> list[tuple[str, str]]:
    """Check every line of ``directory/SHA256SUMS``.

    A listed path that is not inside the directory is never opened.

    Returns:
        ``(path, verdict)`` per listed file, verdict ``ok``, ``missing``, ``mismatch``,
        ``not a regular file`` or ``outside: <why>``, plus ``(path, "unlisted")`` for files
        present but not listed.

    Raises:
        FileNotFoundError: no manifest.
        ValueError: the manifest is not a regular UTF-8 file of at most
            :data:`MAX_MANIFEST_BYTES`, a line not in ``sha256sum`` format, or a path listed
            twice (the line's number is named).
    """
    root = Path(directory)
    manifest = root / MANIFEST
    if not manifest.is_file():
        raise FileNotFoundError(f"{manifest} not found: not a run or published directory")
    raw = read_bounded(manifest, MAX_MANIFEST_BYTES, "the manifest")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{manifest} is not UTF-8 text ({exc})") from None
    rows, listed = [], set()
    for number, line in enumerate(text.splitlines(), 1):
        match = LINE.match(line)
        if not match:
            raise ValueError(f"{manifest} line {number} is not '<sha256>  <path>'")
        digest, rel = match.group(1).lower(), match.group(2)
        if rel in listed:
            raise ValueError(f"{manifest} line {number} lists {rel!r} a second time")
        listed.add(rel)
        try:
            path = inside(root, rel, f"line {number}")
        except UnsafePath as exc:
            rows.append((rel, f"outside: {exc}"))
            continue
        if not path.exists():
            rows.append((rel, "missing"))
        elif not regular_file(path):
            rows.append((rel, "not a regular file"))
        else:
            rows.append((rel, "ok" if sha256_file(path) == digest else "mismatch"))
    rows += [(rel, "unlisted") for rel in listed_files(root) if rel not in listed]
    return rows
