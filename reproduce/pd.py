"""Prediction difference (PD) between two models trained with different seeds.

For next-character distributions ``p1, p2`` of shape ``(N, V)`` (N positions, V characters;
rows sum to 1) this module computes, with float64 arithmetic:

* absolute PD = ``(1/N) sum_n 1/2 sum_l |p1[n,l] - p2[n,l]|``: the mean total variation
  distance between the two predicted distributions, in [0, 1];
* relative PD = ``(1/(N V)) sum_n sum_l r(p1[n,l], p2[n,l])`` with the pointwise symmetric
  relative difference ``r(a, b) = 2 |a - b| / (a + b)``, taken as 0 where both ``a < eps`` and
  ``b < eps`` (``eps = 1e-7``); it lies in [0, 2] and is averaged over positions *and*
  characters (not summed over characters). Source: the symmetric relative prediction
  difference of Shamir, Lin & Coviello 2020, "Smooth activations and reproducibility in deep
  networks", arXiv:2010.09931; TensorFlow Model Analysis's ``SymmetricPredictionDifference``
  computes the same pointwise quantity. (TFMA zeroes a point when ``2|a-b| < eps`` and
  ``a+b < eps``; this module uses the study's rule "both below eps" instead.)
* top-1 disagreement = fraction of positions whose argmax differs (``torch.argmax``; ties go to
  the lowest index, identically for both models).

:class:`PredictionDifference` accumulates these over chunks of positions, so whole validation
sets can be streamed batch by batch; :func:`prediction_difference` is the one-shot form, and
:func:`summarize_pairs` averages the results of several seed pairs.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

__all__ = [
    "METRICS",
    "PredictionDifference",
    "pair_key",
    "prediction_difference",
    "summarize_pairs",
]

#: names of the three metrics in every result dict
METRICS = ("absolute_pd", "relative_pd", "top1_disagreement")

_EPS = 1e-7


def _as_float64(x: Any, what: str) -> torch.Tensor:
    """``x`` (tensor or array-like) as a float64 tensor on its own device."""
    if isinstance(x, torch.Tensor):
        t = x.detach()
    else:
        try:
            t = torch.as_tensor(np.asarray(x))
        except (TypeError, ValueError, RuntimeError) as exc:
            raise ValueError(f"{what}: expected a tensor or array of numbers ({exc})") from None
    if t.is_complex() or t.dtype == torch.bool:
        raise ValueError(f"{what}: expected real numbers, got dtype {t.dtype}")
    return t.to(torch.float64)


class PredictionDifference:
    """Streaming accumulator of absolute PD, relative PD and top-1 disagreement.

    Feed chunks of positions with :meth:`update` (probabilities) or :meth:`update_logits`;
    read the totals with :meth:`result`. Only running sums are kept (float64 and int), never
    the probabilities. Formulas and sources: see the module docstring.

    Args:
        eps: the relative PD treats a character as 0 when both probabilities are below ``eps``
            (default 1e-7, > 0).
        check_normalized: if True, :meth:`update` rejects rows that do not sum to 1 within
            ``atol`` (catches logits passed as probabilities).
        atol: tolerance of that check (default 1e-3, loose enough for float16/bfloat16 softmax).
    """

    def __init__(self, eps: float = _EPS, check_normalized: bool = True, atol: float = 1e-3):
        if not (math.isfinite(eps) and eps > 0):
            raise ValueError(f"eps must be a positive finite number, got {eps!r}")
        if not (math.isfinite(atol) and atol > 0):
            raise ValueError(f"atol must be a positive finite number, got {atol!r}")
        self.eps = float(eps)
        self.check_normalized = bool(check_normalized)
        self.atol = float(atol)
        self.positions = 0
        self.vocab_size: int | None = None
        self._sum_tv = 0.0  # sum over positions of 1/2 sum_l |p1 - p2|
        self._sum_rel = 0.0  # sum over positions and characters of r(p1, p2)
        self._disagree = 0  # number of positions whose argmax differs

    def update(self, p1: Any, p2: Any) -> None:
        """Add a chunk of positions given as probabilities.

        Args:
            p1, p2: probabilities of the two models, same shape ``(..., V)`` (e.g. ``(N, V)``
                or ``(B, T, V)``; leading dims are flattened into positions), real, finite,
                non-negative, each row summing to 1. Any float dtype/device; computed in float64.

        Raises:
            ValueError: shape mismatch, a vocabulary size different from earlier chunks,
            non-finite or negative values, or rows not summing to 1 (with check_normalized).
        """
        a = _as_float64(p1, "p1")
        b = _as_float64(p2, "p2")
        if a.shape != b.shape:
            raise ValueError(
                f"p1 and p2 must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}"
            )
        if a.dim() < 1 or a.shape[-1] < 1:
            raise ValueError(
                f"expected probabilities of shape (..., V) with V >= 1, got {tuple(a.shape)}"
            )
        vocab = int(a.shape[-1])
        if self.vocab_size is not None and vocab != self.vocab_size:
            raise ValueError(
                f"vocabulary size changed from {self.vocab_size} to {vocab} between "
                "chunks; use one accumulator per model pair"
            )
        a = a.reshape(-1, vocab)
        b = b.reshape(-1, vocab)
        if a.shape[0] == 0:
            return
        b = b.to(a.device)
        for name, t in (("p1", a), ("p2", b)):
            if not bool(torch.isfinite(t).all()):
                raise ValueError(f"{name} contains NaN or infinite values")
            if bool((t < 0).any()):
                raise ValueError(
                    f"{name} has negative entries; pass probabilities (softmax "
                    "outputs) or use update_logits()"
                )
            if self.check_normalized:
                err = float((t.sum(dim=-1) - 1.0).abs().max())
                if err > self.atol:
                    raise ValueError(
                        f"{name} rows do not sum to 1 (max error {err:.3g}); pass "
                        "probabilities or use update_logits()"
                    )
        diff = (a - b).abs()
        total = a + b
        both_small = (a < self.eps) & (b < self.eps)
        rel = torch.where(
            both_small,
            torch.zeros_like(diff),
            2.0 * diff / torch.where(both_small, torch.ones_like(total), total),
        )
        self._sum_tv += float(0.5 * diff.sum())
        self._sum_rel += float(rel.sum())
        self._disagree += int((a.argmax(dim=-1) != b.argmax(dim=-1)).sum())
        self.positions += int(a.shape[0])
        self.vocab_size = vocab

    def update_logits(self, logits1: Any, logits2: Any) -> None:
        """Add a chunk given as logits ``(..., V)``; softmax over the last dim in float64.

        Raises:
            ValueError: as :meth:`update` (shape mismatch, non-finite logits, ...).
        """
        l1 = _as_float64(logits1, "logits1")
        l2 = _as_float64(logits2, "logits2")
        if l1.shape != l2.shape:
            raise ValueError(
                f"logits1 and logits2 must have the same shape, got "
                f"{tuple(l1.shape)} and {tuple(l2.shape)}"
            )
        for name, t in (("logits1", l1), ("logits2", l2)):
            if not bool(torch.isfinite(t).all()):
                raise ValueError(f"{name} contains NaN or infinite values")
        self.update(torch.softmax(l1, dim=-1), torch.softmax(l2, dim=-1))

    def result(self) -> dict:
        """The metrics over every position seen so far.

        Returns:
            ``{"absolute_pd": float in [0, 1], "relative_pd": float in [0, 2],
            "top1_disagreement": float in [0, 1], "positions": int, "vocab_size": int}``
            (plain Python numbers, JSON-serialisable).

        Raises:
            ValueError: no positions were added.
        """
        if self.positions == 0 or self.vocab_size is None:
            raise ValueError("no positions added; call update() with at least one position")
        n = self.positions
        return {
            "absolute_pd": self._sum_tv / n,
            "relative_pd": self._sum_rel / (n * self.vocab_size),
            "top1_disagreement": self._disagree / n,
            "positions": n,
            "vocab_size": self.vocab_size,
        }


def prediction_difference(
    x1: Any,
    x2: Any,
    *,
    logits: bool,
    eps: float = _EPS,
    chunk_positions: int = 65536,
) -> dict:
    """PD metrics of two models' outputs in one call (chunked internally to bound memory).

    Args:
        x1, x2: outputs of the two models on the same inputs, shape ``(..., V)``, e.g.
            ``(B, T, V)`` logits or ``(N, V)`` probabilities.
        logits: True if ``x1``/``x2`` are logits (softmax applied in float64), False if they
            are probabilities. Required: the two cannot be told apart reliably.
        eps: the relative-PD threshold (see :class:`PredictionDifference`).
        chunk_positions: positions per internal chunk (>= 1).

    Returns:
        :meth:`PredictionDifference.result`'s dict.

    Raises:
        ValueError: as :meth:`PredictionDifference.update`, or no positions.
    """
    if chunk_positions < 1:
        raise ValueError(f"chunk_positions must be >= 1, got {chunk_positions!r}")
    a = x1 if isinstance(x1, torch.Tensor) else torch.as_tensor(np.asarray(x1))
    b = x2 if isinstance(x2, torch.Tensor) else torch.as_tensor(np.asarray(x2))
    if a.shape != b.shape:
        raise ValueError(
            f"the two outputs must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}"
        )
    if a.dim() < 1:
        raise ValueError("expected outputs of shape (..., V), got a scalar")
    vocab = int(a.shape[-1])
    a = a.reshape(-1, vocab)
    b = b.reshape(-1, vocab)
    acc = PredictionDifference(eps=eps)
    add = acc.update_logits if logits else acc.update
    for start in range(0, a.shape[0], chunk_positions):
        add(a[start : start + chunk_positions], b[start : start + chunk_positions])
    return acc.result()


def pair_key(seed_a: int, seed_b: int) -> str:
    """Key of a seed pair, smaller seed first: ``pair_key(43, 42) == "s42-s43"``."""
    lo, hi = sorted((int(seed_a), int(seed_b)))
    return f"s{lo}-s{hi}"


def summarize_pairs(pairs: Mapping[str, Mapping[str, Any]]) -> dict:
    """Average the PD metrics over seed pairs, keeping each pair's values.

    Args:
        pairs: pair key (e.g. ``"s42-s43"``, see :func:`pair_key`) -> a
            :meth:`PredictionDifference.result` dict (needs the three :data:`METRICS`; other
            numeric fields such as ``positions`` are kept as they are).

    Returns:
        ``{"n_pairs": int,
        "mean": {metric: float}, "min": {metric: float}, "max": {metric: float},
        "pairs": {pair_key: {metric: float, "positions": int, ...}}}`` with the metrics in
        :data:`METRICS`, pairs sorted by key; plain Python numbers (JSON-serialisable). The
        mean is the unweighted mean over pairs. Pairs sharing a model are not independent, so
        no interval is given.

    Raises:
        ValueError: no pairs, or a pair lacking a metric / with a non-finite value.
    """
    if not pairs:
        raise ValueError("summarize_pairs(): no pairs given; need at least one seed pair")
    kept: dict[str, dict[str, Any]] = {}
    for key in sorted(pairs):
        res = pairs[key]
        if not isinstance(res, Mapping):
            raise ValueError(f"pair {key!r}: expected a result dict, got {type(res).__name__}")
        row: dict[str, Any] = {}
        for name in sorted(res):
            value = res[name]
            if isinstance(value, bool) or not isinstance(value, int | float | np.number):
                raise ValueError(f"pair {key!r}: field {name!r} must be a number, got {value!r}")
            if not math.isfinite(float(value)):
                raise ValueError(f"pair {key!r}: field {name!r} is not finite ({value!r})")
            is_int = isinstance(value, int | np.integer)
            row[name] = int(value) if is_int else float(value)
        missing = [m for m in METRICS if m not in row]
        if missing:
            raise ValueError(f"pair {key!r}: missing metric(s) {', '.join(missing)}")
        for m in METRICS:
            row[m] = float(row[m])
        kept[key] = row
    out: dict[str, Any] = {"n_pairs": len(kept), "mean": {}, "min": {}, "max": {}, "pairs": kept}
    for m in METRICS:
        values = [kept[k][m] for k in kept]
        out["mean"][m] = math.fsum(values) / len(values)
        out["min"][m] = min(values)
        out["max"][m] = max(values)
    return out
