"""Small file helpers: atomic writes and SHA-256 digests.

Every file the project writes goes through :func:`atomic_write_bytes`: the bytes go to a
temporary file in the same directory, are flushed to disk, and the temporary file is renamed over
the target, so a reader (or a killed process) never sees a half-written file under the real name.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

__all__ = [
    "atomic_write_bytes",
    "atomic_write_text",
    "atomic_write_json",
    "sha256_file",
    "dumps_json",
]

TMP_SUFFIX = ".tmp"


def atomic_write_bytes(path: str | os.PathLike, payload: bytes) -> Path:
    """Write ``payload`` to ``path`` atomically (temporary file + fsync + rename); returns the path.

    Creates missing parent directories. The temporary file ends in ``.tmp`` and is removed if
    writing fails.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TMP_SUFFIX)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write UTF-8 ``text`` atomically (see :func:`atomic_write_bytes`)."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def dumps_json(data) -> str:
    """Canonical JSON text: sorted keys, 2-space indent, no NaN/inf (ValueError), final newline."""
    return json.dumps(data, indent=2, sort_keys=True, allow_nan=False, ensure_ascii=False) + "\n"


def atomic_write_json(path: str | os.PathLike, data) -> Path:
    """Write ``data`` as canonical JSON (:func:`dumps_json`) atomically."""
    return atomic_write_text(path, dumps_json(data))


def sha256_file(path: str | os.PathLike, chunk_bytes: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_bytes):
            digest.update(chunk)
    return digest.hexdigest()
