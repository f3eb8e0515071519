"""Tiny Shakespeare (or another UTF-8 corpus): locating, checking, encoding, splitting, batching.

The study's corpus is Karpathy's tiny Shakespeare (char-rnn, ``data/tinyshakespeare/input.txt``;
1,115,394 characters, 65 distinct). It is resolved in this order: an explicit path, the
environment variable ``CHARLM_DATA``, the per-user cache (``CHARLM_CACHE_DIR`` or
``$XDG_CACHE_HOME/charlm`` or ``~/.cache/charlm``), else a download into that cache. Whatever the
path, its SHA-256 must equal :data:`TINY_SHAKESPEARE_SHA256`.
"""

from __future__ import annotations

import hashlib
import os
import stat
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import torch

from charlm.io import atomic_write_bytes, sha256_file

__all__ = [
    "TINY_SHAKESPEARE_URL",
    "TINY_SHAKESPEARE_SHA256",
    "MAX_CORPUS_BYTES",
    "TRAIN_FRACTION",
    "Corpus",
    "resolve_data_path",
    "batch_seed",
    "get_batch",
    "eval_windows",
]

TINY_SHAKESPEARE_URL = (
    "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt"
)
TINY_SHAKESPEARE_SHA256 = "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"
TINY_SHAKESPEARE_FILE = "tinyshakespeare.txt"
MAX_CORPUS_BYTES = 256 << 20  # a corpus file read whole (tiny Shakespeare: 1.1 MB)
TRAIN_FRACTION = 0.9  # the first 90% of characters train, the rest validate (as in nanoGPT)
SPLITS = ("train", "val")


def cache_dir() -> Path:
    """The per-user data cache: ``CHARLM_CACHE_DIR``, else ``$XDG_CACHE_HOME/charlm``, else
    ``~/.cache/charlm``."""
    if os.environ.get("CHARLM_CACHE_DIR"):
        return Path(os.environ["CHARLM_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "charlm"


def _check_digest(path: Path, expected: str) -> None:
    actual = sha256_file(path)
    if actual != expected:
        raise ValueError(
            f"{path} has SHA-256 {actual} but tiny Shakespeare has {expected}: "
            "the file is corrupt or another text; point CHARLM_DATA (or --data) at a good copy, "
            "or delete a cached copy to download it again"
        )


def download(url: str, dest: Path, expected_sha256: str, timeout_s: float = 60.0) -> Path:
    """Download ``url`` to ``dest`` atomically after checking its SHA-256.

    Raises:
        ValueError: the downloaded bytes have another digest (nothing is written).
        OSError: the download failed (the message says how to work offline).
    """
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            payload = response.read()
    except OSError as exc:
        raise OSError(
            f"could not download tiny Shakespeare from {url} ({exc}); offline, set CHARLM_DATA "
            "to a local copy of input.txt"
        ) from exc
    actual = hashlib.sha256(payload).hexdigest()
    if actual != expected_sha256:
        raise ValueError(
            f"download from {url} has SHA-256 {actual}, expected {expected_sha256}; nothing saved"
        )
    atomic_write_bytes(dest, payload)
    return dest


def resolve_data_path(
    path: str | os.PathLike | None = None, url: str = TINY_SHAKESPEARE_URL
) -> Path:
    """Where tiny Shakespeare is, downloading it into the cache if it is nowhere else.

    Order: ``path``, ``$CHARLM_DATA``, the cache file, a download from ``url`` into the cache.
    Every path found is checked against :data:`TINY_SHAKESPEARE_SHA256`.

    Raises:
        FileNotFoundError: an explicit path or ``CHARLM_DATA`` names no file.
        ValueError: the file's digest differs (the message names both digests).
    """
    for source, candidate in (("path", path), ("CHARLM_DATA", os.environ.get("CHARLM_DATA"))):
        if candidate:
            candidate = Path(candidate).expanduser()
            if not candidate.is_file():
                raise FileNotFoundError(f"{source} names {candidate}, which is not a file")
            _check_digest(candidate, TINY_SHAKESPEARE_SHA256)
            return candidate
    cached = cache_dir() / TINY_SHAKESPEARE_FILE
    if not cached.is_file():
        return download(url, cached, TINY_SHAKESPEARE_SHA256)
    _check_digest(cached, TINY_SHAKESPEARE_SHA256)
    return cached


@dataclass(frozen=True)
class Corpus:
    """A character corpus with its vocabulary and train/val split.

    Attributes:
        text: the whole text.
        sha256: digest of the file's bytes (hex).
        chars: the vocabulary, the sorted distinct characters as one string.
        train: (N_train,) int64 character indices, the first ``TRAIN_FRACTION`` of the text.
        val: (N_val,) int64 indices, the rest.
    """

    text: str
    sha256: str
    chars: str
    train: torch.Tensor
    val: torch.Tensor

    @classmethod
    def from_text(cls, text: str, sha256: str = "", min_chars: int = 1000) -> Corpus:
        """Encode and split ``text``.

        Raises:
            ValueError: fewer than ``min_chars`` characters.
        """
        if len(text) < min_chars:
            raise ValueError(
                f"corpus has {len(text)} characters; at least {min_chars} are needed to train"
            )
        chars = "".join(sorted(set(text)))
        stoi = {c: i for i, c in enumerate(chars)}
        ids = torch.tensor([stoi[c] for c in text], dtype=torch.int64)
        n_train = int(TRAIN_FRACTION * len(ids))
        return cls(text, sha256, chars, ids[:n_train].clone(), ids[n_train:].clone())

    @classmethod
    def load(cls, path: str | os.PathLike, expected_sha256: str | None = None) -> Corpus:
        """Read a UTF-8 corpus from ``path``, checking its digest when one is expected.

        Raises:
            FileNotFoundError, ValueError (not a regular file, larger than
            :data:`MAX_CORPUS_BYTES`, digest mismatch, not UTF-8, too short).
        """
        path = Path(path)
        info = path.stat()
        if not stat.S_ISREG(info.st_mode):
            raise ValueError(f"{path} is not a regular file; name the corpus's text file")
        if info.st_size > MAX_CORPUS_BYTES:
            raise ValueError(
                f"{path} has {info.st_size:,} bytes; a corpus is read whole and encoded as "
                f"8 bytes a character, so at most {MAX_CORPUS_BYTES:,} are accepted"
            )
        if expected_sha256:
            _check_digest(path, expected_sha256)
        with open(path, "rb") as handle:
            raw = handle.read(MAX_CORPUS_BYTES + 1)
        if len(raw) > MAX_CORPUS_BYTES:
            raise ValueError(f"{path} grew past {MAX_CORPUS_BYTES:,} bytes while read")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ValueError(f"{path} is not UTF-8 text ({exc})") from None
        return cls.from_text(text, hashlib.sha256(raw).hexdigest())

    @property
    def vocab_size(self) -> int:
        return len(self.chars)

    def split(self, name: str) -> torch.Tensor:
        """The ``train`` or ``val`` indices. Raises ValueError for another name."""
        if name not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {name!r}")
        return self.train if name == "train" else self.val

    def encode(self, text: str) -> torch.Tensor:
        """(len(text),) int64 indices; ValueError names a character outside the vocabulary."""
        return encode(text, self.chars)

    def decode(self, ids) -> str:
        """The text of a sequence of indices."""
        return decode(ids, self.chars)


def encode(text: str, chars: str) -> torch.Tensor:
    """(len(text),) int64 indices of ``text`` in vocabulary ``chars``.

    Raises:
        ValueError: a character of ``text`` is not in ``chars``.
    """
    stoi = {c: i for i, c in enumerate(chars)}
    missing = sorted({c for c in text if c not in stoi})
    if missing:
        raise ValueError(f"character(s) {missing!r} are not in the model's vocabulary")
    return torch.tensor([stoi[c] for c in text], dtype=torch.int64)


def decode(ids, chars: str) -> str:
    """The text of indices ``ids`` (any iterable of ints) in vocabulary ``chars``."""
    return "".join(chars[int(i)] for i in ids)


def batch_seed(data_seed: int, split: str, step: int) -> int:
    """The generator seed of batch ``step`` of ``split``: a 63-bit integer from SHA-256 of the
    three values, so batches depend on nothing else (not initialisation, evaluation, device or
    thread count) and a resumed run needs only the step to continue the data order."""
    digest = hashlib.sha256(f"charlm-batch:{data_seed}:{split}:{step}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def get_batch(
    data: torch.Tensor, block_size: int, batch_size: int, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """``batch_size`` random windows of ``data`` and their next-character targets.

    Window starts are uniform over ``[0, len(data) - block_size)`` from a CPU ``torch.Generator``
    seeded with ``seed`` (see :func:`batch_seed`); windows are gathered with one indexing
    operation.

    Returns:
        x, y: (batch_size, block_size) int64 on the CPU, ``y`` shifted by one character.

    Raises:
        ValueError: ``data`` is not longer than ``block_size``.
    """
    if len(data) <= block_size:
        raise ValueError(f"data of {len(data)} characters is too short for block_size {block_size}")
    generator = torch.Generator().manual_seed(seed)
    starts = torch.randint(len(data) - block_size, (batch_size,), generator=generator)
    windows = data.unfold(0, block_size + 1, 1)[starts]  # (B, block_size + 1)
    return windows[:, :-1], windows[:, 1:]


def eval_windows(n_chars: int, block_size: int) -> list[tuple[int, int]]:
    """(start, length) of consecutive windows covering a split of ``n_chars`` characters.

    Each window's inputs are ``data[start:start+length]`` and targets are shifted by one, so
    every character after the first is a target exactly once: lengths sum to ``n_chars - 1``;
    all windows have ``block_size`` characters except possibly a shorter last one.
    """
    total = n_chars - 1
    return [(s, min(block_size, total - s)) for s in range(0, total, block_size)]
