"""Out-of-memory errors of training, as one line that names the setting to lower.

Training (:func:`charlm.train.train_trial`) and the dry-run estimate catch the allocator's error
and turn it into :class:`TrainingOutOfMemory` through :func:`out_of_memory`.
"""

from __future__ import annotations

import os
import re
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from charlm.model import ModelConfig
    from charlm.trial import TrialSpec

__all__ = ["TrainingOutOfMemory", "out_of_memory", "training_bytes_lower_bound", "check_fits"]


class TrainingOutOfMemory(MemoryError, ValueError):
    """Training ran out of CPU or CUDA memory. The one-line message names what was being done,
    the memory asked for and the setting to lower; the state saved last, if any, is kept.

    A ValueError too: a setting too large for this machine is bad input, reported as such.
    """


# What the allocators say: CPU "DefaultCPUAllocator: can't allocate memory: you tried to
# allocate 8796093022208 bytes" (or "not enough memory" on Windows); CUDA "CUDA out of memory.
# Tried to allocate 20.00 GiB" (torch.OutOfMemoryError); MPS "MPS backend out of memory".
_OOM_TEXT = re.compile(r"out of memory|can't allocate memory|not enough memory", re.IGNORECASE)
_OOM_BYTES = re.compile(r"tried to allocate (\d+) bytes", re.IGNORECASE)
_OOM_AMOUNT = re.compile(r"tried to allocate ([\d.]+ ?[KMGTP]?i?B)\b", re.IGNORECASE)
_OOM_DOING = {
    "build": "building the model",
    "eval": "in an evaluation",
    "step": "in a training step",
    "save": "saving the weights or state",
}


def _binary_size(n_bytes: int) -> str:
    size = float(n_bytes)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def out_of_memory(
    exc: BaseException,
    spec: TrialSpec,
    phase: str,
    step: int,
    saved: int | None,
    device: str | torch.device | None = None,
    note: str | None = None,
) -> TrainingOutOfMemory | None:
    """The :class:`TrainingOutOfMemory` for ``exc`` when it is an out-of-memory error of the
    CPU or CUDA allocator (or a Python MemoryError), else None.

    Args:
        exc: the exception raised while training.
        spec: the trial; its settings are named in the message.
        phase: what was being done: ``build``, ``eval``, ``step`` or ``save``.
        step: the optimizer step (0-based) at which it happened.
        saved: the step of the trial's saved state (None: no state saved).
        device: where it trained (default the trial's configured device).
        note: ends the message in place of what became of the saved state.

    Returns:
        e.g. "out of memory (cpu) in a training step at step 0: it asked for 8.0 TiB; lower
        train.batch_size (1099511627776 windows of model.block_size 16 characters); no state
        was saved" (one line), or None.
    """
    cuda_oom = getattr(torch, "OutOfMemoryError", torch.cuda.OutOfMemoryError)
    text = str(exc)
    if not (
        isinstance(exc, cuda_oom | MemoryError)
        or (isinstance(exc, RuntimeError) and _OOM_TEXT.search(text))
    ):
        return None
    if isinstance(exc, cuda_oom) and torch.cuda.is_initialized():
        torch.cuda.empty_cache()  # give the cached blocks back for the next trial
    exact = _OOM_BYTES.search(text)
    amount = _OOM_AMOUNT.search(text)
    if exact:
        asked = _binary_size(int(exact.group(1)))
    else:
        asked = amount.group(1) if amount else "more than was free"
    m, t = spec.model, spec.train
    lower = {
        "eval": f"train.eval_batch_size ({t.eval_batch_size} windows of model.block_size "
        f"{m.block_size} characters)",
        "step": f"train.batch_size ({t.batch_size} windows of model.block_size "
        f"{m.block_size} characters)",
    }.get(phase, f"the model's size (model.n_layer {m.n_layer}, model.n_embd {m.n_embd})")
    kept = f"the saved state of step {saved} is kept" if saved is not None else "no state was saved"
    kept = kept if note is None else note
    where = device if device is not None else t.device
    return TrainingOutOfMemory(
        f"out of memory ({where}) {_OOM_DOING.get(phase, phase)} at step {step}: it asked for "
        f"{asked}; lower {lower}; {kept}"
    )


def training_bytes_lower_bound(config: ModelConfig) -> int:
    """Bytes that training a model of ``config`` needs at least, computed without building it:
    each block's attention (4 n_embd^2 weights) and MLP (8 n_embd^2) plus the token and position
    embeddings, times 16 bytes (fp32 weights, gradients and AdamW's two moments)."""
    n_embd = config.n_embd
    params = config.n_layer * 12 * n_embd * n_embd
    params += (config.vocab_size + config.block_size) * n_embd
    return params * 16


def check_fits(config: ModelConfig, where: str) -> None:
    """Refuse a model that cannot fit this machine's physical memory before anything is
    allocated or built (a config's sizes are untrusted input).

    Raises:
        TrainingOutOfMemory: naming the sizes to lower and ``where`` they are set.
    """
    try:
        total = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return
    needed = training_bytes_lower_bound(config)
    if needed > total:
        raise TrainingOutOfMemory(
            f"{where}: a model of {config.n_layer} layers x {config.n_embd} wide needs at least "
            f"{_binary_size(needed)} to train, more than this machine's "
            f"{_binary_size(total)}; lower model.n_layer or model.n_embd"
        )
