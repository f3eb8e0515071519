"""The study's relative PD measured against itself (``artifacts/reference/self-pd.json``,
schema ``self-pd.schema.json``).

The study measured its "reproducibility" by the relative PD of two seeds' models, each on 1,000
validation windows of its own (its ``train.py``: ``get_predictions`` per model, then
``calculate_relative_pd``; :mod:`charlm.study.pd`). This module applies that very procedure to
one trained model twice: two copies of the same weights, each on its own 1,000 windows drawn
one by one from one generator, as the study's pairs were. Whatever that gives is what the
measure reports when there is no difference between models at all. Beside it, for each pair of
seeds of an activation, the study's PD of the two models (own windows) and the same formula on
identical windows (both models on the very same 1,000 windows).

Any trained models serve: the published ``artifacts/cpu`` ships its 15 trials' weights
(nanoGPT recipe, 2 x 128, context 64). Each model's self-PD is drawn :data:`DRAWS` times (window
generators seeded 0, 1, 2) to show its spread; a pair's windows come from a generator seeded 0.
Minutes of CPU: ``python -m reproduce reference self-pd``.
"""

from __future__ import annotations

import hashlib
import itertools
import statistics
from collections.abc import Callable
from pathlib import Path

import torch

from charlm import checkpoint
from charlm.data import Corpus
from charlm.study.pd import relative_pd, top1_differences
from charlm.study.stream import PD_WINDOWS, StudyStream

__all__ = ["DRAWS", "FILE", "FORMAT", "SCHEMA", "measure", "pair_pd", "self_pd"]

FILE = "self-pd.json"
FORMAT = "charlm-repro study PD against itself"
SCHEMA = "self-pd.schema.json"
DRAWS = 3  # window draws per model (generators seeded 0, 1, 2)


def _stream(corpus: Corpus, model: torch.nn.Module, seed: int) -> StudyStream:
    generator = torch.Generator().manual_seed(seed)
    return StudyStream(generator, corpus, model.config.block_size, "cpu")


@torch.no_grad()
def self_pd(model: torch.nn.Module, corpus: Corpus, seed: int, n: int = PD_WINDOWS) -> dict:
    """The study's relative PD of ``model`` against a copy of itself: softmax at the last
    position of ``n`` single validation windows, then of ``n`` more, drawn one by one from a
    generator seeded ``seed`` (as the study's pair (i, j) drew model i's windows, then model
    j's), mean |p1 - p2| / (mean p1 + mean p2) (:func:`charlm.study.pd.relative_pd`).

    Returns:
        ``{"seed", "relative_pd", "top1_differences", "windows"}``.
    """
    stream = _stream(corpus, model, seed)
    p1, p2 = stream.predictions(model, n), stream.predictions(model, n)
    return {
        "seed": seed,
        "relative_pd": relative_pd(p1, p2),
        "top1_differences": top1_differences(p1, p2),
        "windows": n,
    }


@torch.no_grad()
def pair_pd(a: torch.nn.Module, b: torch.nn.Module, corpus: Corpus, n: int = PD_WINDOWS) -> dict:
    """Two models' relative PD as the study computed it (``own_windows``: ``a`` on ``n``
    windows, then ``b`` on the next ``n``, from a generator seeded 0) and on identical inputs
    (``same_windows``: both on the first ``n``); the same formula, and each its
    top-1 disagreements."""
    stream = _stream(corpus, a, 0)
    start = stream.state()
    pa, pb_own = stream.predictions(a, n), stream.predictions(b, n)
    stream.generator.set_state(start)
    pb_same = stream.predictions(b, n)
    return {
        "own_windows": relative_pd(pa, pb_own),
        "own_windows_top1_differences": top1_differences(pa, pb_own),
        "same_windows": relative_pd(pa, pb_same),
        "same_windows_top1_differences": top1_differences(pa, pb_same),
        "windows": n,
    }


def measure(
    run_dir: str | Path,
    corpus: Corpus,
    n: int = PD_WINDOWS,
    progress: Callable[[str], None] | None = None,
) -> dict:
    """Self-PD of every trial of a published run directory that ships weights, and the pair
    PDs of each activation's seeds.

    Args:
        run_dir: a run directory (``results.json``, ``trials/<id>/weights.safetensors``).
        corpus: the run's corpus (its characters must be the weights' vocabulary).
        n: windows per model (the study's 1,000).
        progress: called with each trial's or pair's name as it starts.

    Returns:
        the document written to ``self-pd.json`` (without format fields).

    Raises:
        ValueError: no trial ships weights, or a vocabulary differs from the corpus's.
    """
    from reproduce.results import load_results

    run_dir = Path(run_dir)
    results = load_results(run_dir)
    models, trials = {}, []
    for trial in results["trials"]:
        path = run_dir / "trials" / trial["id"] / "weights.safetensors"
        if not path.is_file():
            continue
        if progress:
            progress(trial["id"])
        model, chars = checkpoint.load_weights(path)
        if chars != corpus.chars:
            raise ValueError(f"{path}: its vocabulary is not the corpus's")
        model.eval()
        models[trial["id"]] = (trial["activation"], trial["seed"], model)
        draws = [self_pd(model, corpus, s, n) for s in range(DRAWS)]
        trials.append(
            {
                "trial": trial["id"],
                "activation": trial["activation"],
                "seed": trial["seed"],
                "val_loss": trial["final"]["val_loss"],
                "self_pd": draws,
                "mean_self_pd": statistics.fmean(d["relative_pd"] for d in draws),
            }
        )
    if not models:
        raise ValueError(f"{run_dir}: no trial ships weights (trials/<id>/weights.safetensors)")
    pairs = []
    for (ia, (act_a, seed_a, a)), (ib, (act_b, seed_b, b)) in itertools.combinations(
        models.items(), 2
    ):
        if act_a != act_b:
            continue
        if progress:
            progress(f"{ia} x {ib}")
        pairs.append({"activation": act_a, "seeds": [seed_a, seed_b], **pair_pd(a, b, corpus, n)})
    results_sha = hashlib.sha256((run_dir / "results.json").read_bytes()).hexdigest()
    return {
        "run": {"directory": run_dir.name, "results_sha256": results_sha},
        "model": results["config"]["model"],
        "windows": n,
        "draws": DRAWS,
        "trials": trials,
        "pairs": pairs,
        "summary": _summary(trials, pairs),
    }


def _summary(trials: list[dict], pairs: list[dict]) -> dict:
    selfs = [d["relative_pd"] for t in trials for d in t["self_pd"]]
    return {
        "self_pd_mean": statistics.fmean(selfs),
        "self_pd_min": min(selfs),
        "self_pd_max": max(selfs),
        "pair_own_windows_mean": statistics.fmean(p["own_windows"] for p in pairs)
        if pairs
        else None,
        "pair_same_windows_mean": statistics.fmean(p["same_windows"] for p in pairs)
        if pairs
        else None,
    }
