"""Evaluation: cross-entropy (nats) and next-character top-1 accuracy (percent) on fixed text.

Val metrics cover the whole val split exactly (:func:`charlm.data.eval_windows`); train metrics
use a fixed sample of train windows with the same lengths, drawn by a generator of their own
(:data:`TRAIN_SAMPLE_SEED`), so every trial of a sweep is scored on the same text and evaluation
never consumes the training random streams.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from charlm.data import eval_windows

__all__ = ["TRAIN_SAMPLE_SEED", "EvalSet", "by_position", "evaluate", "iter_logits"]

TRAIN_SAMPLE_SEED = 20251208  # the train sample's own generator seed (the study's date)


@dataclass(frozen=True)
class EvalSet:
    """Fixed evaluation text: windows of one split, grouped by length for batching.

    Attributes:
        x: list of (n_i, L_i) int64 input windows, one tensor per distinct length L_i.
        y: matching (n_i, L_i) int64 targets.
    """

    x: list[torch.Tensor]
    y: list[torch.Tensor]

    @property
    def n_targets(self) -> int:
        """Number of scored positions."""
        return sum(t.numel() for t in self.y)

    @classmethod
    def from_starts(cls, data: torch.Tensor, starts: torch.Tensor, lengths: list[int]) -> EvalSet:
        """Windows ``data[s : s + L]`` (targets shifted by one) for each start and length."""
        xs, ys = [], []
        for length in sorted(set(lengths), reverse=True):
            chosen = starts[torch.tensor([n == length for n in lengths])]
            windows = data.unfold(0, length + 1, 1)[chosen]
            xs.append(windows[:, :-1].contiguous())
            ys.append(windows[:, 1:].contiguous())
        return cls(xs, ys)

    @classmethod
    def val(cls, val: torch.Tensor, block_size: int) -> EvalSet:
        """The whole val split as consecutive windows; every character after the first is a
        target exactly once (``n_targets == len(val) - 1``)."""
        layout = eval_windows(len(val), block_size)
        starts = torch.tensor([s for s, _ in layout], dtype=torch.int64)
        return cls.from_starts(val, starts, [n for _, n in layout])

    @classmethod
    def train_sample(cls, train: torch.Tensor, val_len: int, block_size: int) -> EvalSet:
        """Random train windows with the val windows' lengths (same total size), drawn by a
        generator seeded with :data:`TRAIN_SAMPLE_SEED`."""
        lengths = [n for _, n in eval_windows(val_len, block_size)]
        generator = torch.Generator().manual_seed(TRAIN_SAMPLE_SEED)
        starts = torch.randint(len(train) - block_size, (len(lengths),), generator=generator)
        return cls.from_starts(train, starts, lengths)


def iter_logits(
    model: torch.nn.Module,
    evalset: EvalSet,
    batch_size: int,
    device: torch.device | str = "cpu",
    autocast_dtype: torch.dtype | None = None,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Yield (logits (b, L, V) float32, targets (b, L) int64) over ``evalset`` in eval mode.

    The model is put in eval mode (no dropout) and restored to its previous mode afterwards; no
    gradients are recorded and no random numbers are drawn.
    """
    was_training = model.training
    model.eval()
    device = torch.device(device)
    amp = (
        torch.autocast(device.type, dtype=autocast_dtype)
        if autocast_dtype is not None
        else contextlib.nullcontext()
    )
    try:
        with torch.no_grad(), amp:
            for xs, ys in zip(evalset.x, evalset.y, strict=True):
                for i in range(0, len(xs), batch_size):
                    x = xs[i : i + batch_size].to(device, non_blocking=True)
                    y = ys[i : i + batch_size].to(device, non_blocking=True)
                    yield model(x).float(), y
    finally:
        model.train(was_training)


def evaluate(
    model: torch.nn.Module,
    evalset: EvalSet,
    batch_size: int,
    device: torch.device | str = "cpu",
    autocast_dtype: torch.dtype | None = None,
) -> dict[str, float]:
    """Mean cross-entropy and top-1 accuracy over every position of ``evalset``.

    Returns:
        ``{"loss": nats per character, "accuracy": percent of positions whose most likely
        next character is the true one}``, each averaged over all ``evalset.n_targets``
        positions (token-weighted, so a shorter last window counts by its length).
    """
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    correct = torch.zeros((), dtype=torch.int64, device=device)
    for logits, y in iter_logits(model, evalset, batch_size, device, autocast_dtype):
        flat = logits.reshape(-1, logits.size(-1))
        loss_sum += F.cross_entropy(flat, y.reshape(-1), reduction="sum").double()
        correct += (flat.argmax(dim=-1) == y.reshape(-1)).sum()
    n = evalset.n_targets
    return {"loss": loss_sum.item() / n, "accuracy": 100.0 * correct.item() / n}


def by_position(
    model: torch.nn.Module,
    evalset: EvalSet,
    batch_size: int,
    device: torch.device | str = "cpu",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean cross-entropy and top-1 accuracy at each position of equal-length windows.

    Position ``t`` predicts the character after the window's first ``t + 1`` characters, so
    position 0 sees one character of context and the last position a full context. The
    study's ``calculate_accuracy`` scores only the last position of each window (its
    train.py, lines 65-96); :func:`evaluate` scores all of them alike.

    Args:
        evalset: windows of a single length L (:meth:`EvalSet.from_starts` with one length).

    Returns:
        (loss (L,) float64 nats, accuracy (L,) float64 percent), each over all windows.

    Raises:
        ValueError: windows of several lengths, or none.
    """
    if len(evalset.x) != 1 or len(evalset.x[0]) == 0:
        raise ValueError("by_position needs windows of one length (EvalSet.from_starts)")
    length = evalset.x[0].size(1)
    loss_sum = torch.zeros(length, dtype=torch.float64)
    correct = torch.zeros(length, dtype=torch.float64)
    for logits, y in iter_logits(model, evalset, batch_size, device):
        nll = F.cross_entropy(logits.transpose(1, 2), y, reduction="none")  # (b, L)
        loss_sum += nll.double().sum(dim=0).cpu()
        correct += (logits.argmax(dim=-1) == y).double().sum(dim=0).cpu()
    n = len(evalset.x[0])
    return loss_sum / n, 100.0 * correct / n
