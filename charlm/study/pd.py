"""Relative prediction difference as the study computed it (its ``train.py``,
``run_experiment``, ``get_predictions``, ``calculate_relative_pd``,
``calculate_prediction_differences``).

After the last trial of an activation, for each pair (i, j) of its trials in seed order
((1, 2), (1, 3), (2, 3) for three seeds), model i's and then model j's softmax at the last
position of 1,000 single validation windows are computed, each model on windows of its own,
drawn one by one from the stream as the last trial left it. Then

    relative PD = mean |p1 - p2| / (mean p1 + mean p2),

the means over all 1,000 x V probabilities. Since every softmax row sums to 1, mean p1 = mean p2
= 1/V, so this is V/2 times the mean absolute difference; and since the two models see different
windows, it measures how two models' predictions differ on different inputs, not how they
disagree on the same input (the package's other PD, :mod:`reproduce.pd`, on identical inputs).
"""

from __future__ import annotations

import itertools

import torch

from charlm.study.stream import PD_WINDOWS, StudyStream

__all__ = ["relative_pd", "top1_differences", "study_pd"]


def relative_pd(p1: torch.Tensor, p2: torch.Tensor) -> float:
    """mean|p1 - p2| / (mean p1 + mean p2) of two (N, V) probability arrays, in float64 (the
    study summed its float32 arrays in float32: differences of about 1e-7 relative)."""
    a, b = p1.double(), p2.double()
    return ((a - b).abs().mean() / (a.mean() + b.mean())).item()


def top1_differences(p1: torch.Tensor, p2: torch.Tensor) -> int:
    """Rows of two (N, V) arrays whose most likely characters differ."""
    return int((p1.argmax(dim=-1) != p2.argmax(dim=-1)).sum().item())


def study_pd(
    models: list[tuple[int, torch.nn.Module]], stream: StudyStream, n: int = PD_WINDOWS
) -> dict:
    """The study's PD of every pair of ``models`` (``(seed, model)`` in the order the study
    trained them), drawing windows from ``stream`` (the last trial's, at its end).

    Returns:
        ``{"pairs": {"s42-s43": {"relative_pd", "top1_differences", "windows"}, ...},
        "mean_relative_pd"}`` (the mean over pairs, the study's ``avg_relative_pd``).
    """
    pairs = {}
    for (sa, ma), (sb, mb) in itertools.combinations(models, 2):
        p1 = stream.predictions(ma, n)
        p2 = stream.predictions(mb, n)
        pairs[f"s{sa}-s{sb}"] = {
            "relative_pd": relative_pd(p1, p2),
            "top1_differences": top1_differences(p1, p2),
            "windows": n,
        }
    mean = sum(p["relative_pd"] for p in pairs.values()) / len(pairs)
    return {"pairs": pairs, "mean_relative_pd": mean}
