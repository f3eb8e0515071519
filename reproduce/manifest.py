"""SHA256SUMS: the checksum manifest of a run or published directory.

The format is the one ``sha256sum -c`` accepts: one line per file, ``<64 hex digits><two
spaces><path relative to the directory>``, sorted by path. It covers exactly the files present,
except itself, resumable training states and temporary files.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from charlm.io import TMP_SUFFIX, atomic_write_text, sha256_file

__all__ = ["MANIFEST", "EXCLUDED_NAMES", "listed_files", "write_manifest", "check_manifest"]

MANIFEST = "SHA256SUMS"
EXCLUDED_NAMES = (MANIFEST, "state.safetensors")
LINE = re.compile(r"^([0-9a-f]{64})  (.+)$")


def listed_files(directory: str | os.PathLike) -> list[str]:
    """Relative POSIX paths of the files the manifest of ``directory`` covers, sorted."""
    root = Path(directory)
    out = []
    for path in root.rglob("*"):
        if (
            path.is_file()
            and path.name not in EXCLUDED_NAMES
            and not path.name.endswith(TMP_SUFFIX)
        ):
            out.append(path.relative_to(root).as_posix())
    return sorted(out)


def write_manifest(directory: str | os.PathLike) -> Path:
    """(Re)write ``directory/SHA256SUMS`` over every file now present; returns its path."""
    root = Path(directory)
    lines = [f"{sha256_file(root / rel)}  {rel}\n" for rel in listed_files(root)]
    return atomic_write_text(root / MANIFEST, "".join(lines))


def check_manifest(directory: str | os.PathLike) -> list[tuple[str, str]]:
    """Check every line of ``directory/SHA256SUMS``.

    Returns:
        ``(path, verdict)`` per listed file, verdict ``ok``, ``missing`` or ``mismatch``, plus
        ``(path, "unlisted")`` for files present but not listed.

    Raises:
        FileNotFoundError: no manifest.
        ValueError: a line not in ``sha256sum`` format (its number is named).
    """
    root = Path(directory)
    manifest = root / MANIFEST
    if not manifest.is_file():
        raise FileNotFoundError(f"{manifest} not found: not a run or published directory")
    rows, listed = [], set()
    for number, line in enumerate(manifest.read_text(encoding="utf-8").splitlines(), 1):
        match = LINE.match(line)
        if not match:
            raise ValueError(f"{manifest} line {number} is not '<sha256>  <path>'")
        digest, rel = match.groups()
        listed.add(rel)
        path = root / rel
        if not path.is_file():
            rows.append((rel, "missing"))
        else:
            rows.append((rel, "ok" if sha256_file(path) == digest else "mismatch"))
    rows += [(rel, "unlisted") for rel in listed_files(root) if rel not in listed]
    return rows
