"""What a sweep's weights are needed for, computed once at the end of ``run``: the prediction
difference between seeds and a generated sample per group. Both are stored in results.json, so
reports and verification never need the weights."""

from __future__ import annotations

import itertools
from pathlib import Path

import torch

from charlm.checkpoint import load_weights
from charlm.data import Corpus
from charlm.metrics import EvalSet, iter_logits
from charlm.sample import sample_text
from reproduce.config import ReportOptions
from reproduce.pd import PredictionDifference, pair_key, summarize_pairs

__all__ = ["prediction_differences", "samples"]


def _val_probabilities(
    weights: Path, val: torch.Tensor, batch_size: int, device: torch.device
) -> list[torch.Tensor]:
    model, _ = load_weights(weights)
    model.to(device)
    evalset = EvalSet.val(val, model.config.block_size)
    batches = iter_logits(model, evalset, batch_size, device)
    return [torch.softmax(logits, dim=-1) for logits, _ in batches]


def _device(device: str | torch.device | None) -> torch.device:
    return torch.device("cpu" if device is None else device)


def prediction_differences(
    groups: dict[str, dict[int, Path]],
    corpus: Corpus,
    batch_size: int,
    device: str | torch.device | None = None,
) -> dict:
    """Pairwise prediction differences between the seeds of each group, on the val windows.

    Args:
        groups: group id -> {seed: weights file}.
        corpus: the corpus (its val split is used, in the evaluation windows).
        batch_size: windows per forward pass (changes no result).
        device: where the models run, in fp32 (default the CPU); the probabilities stay
            there and the differences are summed there in float64.

    Returns:
        group id -> :func:`reproduce.pd.summarize_pairs` of every pair of its seeds (groups with
        one seed are left out). Each model's softmax outputs over the val split are computed
        once (float32, ``positions x V`` values per model).
    """
    out = {}
    for group, by_seed in sorted(groups.items()):
        if len(by_seed) < 2:
            continue
        probs = {
            seed: _val_probabilities(path, corpus.val, batch_size, _device(device))
            for seed, path in sorted(by_seed.items())
        }
        pairs = {}
        for a, b in itertools.combinations(sorted(probs), 2):
            acc = PredictionDifference()
            for p1, p2 in zip(probs[a], probs[b], strict=True):
                acc.update(p1, p2)
            pairs[pair_key(a, b)] = acc.result()
        out[group] = summarize_pairs(pairs)
    return out


def samples(
    groups: dict[str, dict[int, Path]],
    options: ReportOptions,
    device: str | torch.device | None = None,
) -> dict:
    """One generated sample per group, from the model of its lowest seed.

    The model runs on ``device`` (default the CPU); the characters are drawn with a CPU
    generator seeded ``options.sample_seed`` whatever the device (:mod:`charlm.sample`).

    Returns:
        group id -> {"seed", "prompt", "text", "tokens", "temperature", "top_k", "sample_seed"}.
    """
    out = {}
    for group, by_seed in sorted(groups.items()):
        seed = min(by_seed)
        model, chars = load_weights(by_seed[seed])
        model.to(_device(device))
        text = sample_text(
            model,
            chars,
            options.sample_prompt,
            options.sample_tokens,
            options.sample_temperature,
            options.sample_top_k,
            options.sample_seed,
        )
        out[group] = {
            "seed": seed,
            "prompt": options.sample_prompt,
            "text": text,
            "tokens": options.sample_tokens,
            "temperature": options.sample_temperature,
            "top_k": options.sample_top_k,
            "sample_seed": options.sample_seed,
        }
    return out
