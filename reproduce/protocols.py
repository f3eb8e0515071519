"""What the pipeline does differently for a study-protocol sweep (:mod:`charlm.study`).

- :func:`study_prediction_differences`: the study's own PD (each model on its own windows,
  drawn after the last trial of each activation), beside the package's PD on identical inputs;
- :func:`study_final_metrics`: ``verify``'s check of a study-protocol trial's final metrics
  against its shipped weights (the same batches again, from the replayed stream);
- :func:`spec_from_record`: a trial's spec rebuilt from its record.
"""

from __future__ import annotations

from pathlib import Path

import torch

from charlm.checkpoint import load_weights
from charlm.data import Corpus
from charlm.model import ModelConfig
from charlm.study.pd import study_pd
from charlm.study.stream import StudyStream
from charlm.study.train import StudySetup, computed_evals, reevaluate_final, replay_stream
from charlm.train import TrainConfig, TrainingSetup, TrialSpec

__all__ = [
    "build_setup",
    "evaluations_left",
    "is_study",
    "seed_ordered_groups",
    "spec_from_record",
    "study_prediction_differences",
    "study_final_metrics",
    "VERIFY_BATCHES",
]

VERIFY_BATCHES = 4  # final-evaluation batches per split that verify evaluates again


def build_setup(
    spec: TrialSpec, corpus: Corpus, device: str | torch.device | None = None
) -> TrainingSetup | StudySetup:
    """The trial's training setup under its protocol (both have ``step``, ``model``,
    ``optimizer``, ``device``, ``precision``, ``autocast_dtype``); for ``bench`` and the
    estimate."""
    if spec.train.protocol == "study":
        return StudySetup.build(spec, corpus, device)
    return TrainingSetup.build(spec, device)


def evaluations_left(train: TrainConfig, start: int = 0) -> int | None:
    """Study protocol: the evaluations whose forward passes a trial still runs after
    ``start`` steps (:func:`charlm.study.train.computed_evals`; the others only draw numbers).
    None for the nanogpt protocol (:func:`reproduce.estimate.evaluations_left` counts those)."""
    if train.protocol != "study":
        return None
    return sum(1 for s in computed_evals(train) if s >= start and not (s == start > 0))


def is_study(record: dict) -> bool:
    """Whether a trial record was trained under the study protocol (records from before the
    protocols existed have none and are nanogpt's)."""
    return record.get("protocol") == "study"


def spec_from_record(record: dict) -> TrialSpec:
    """The :class:`TrialSpec` a trial record was trained with."""
    train = {k: v for k, v in record["train"].items() if not k.endswith("_used")}
    return TrialSpec(
        ModelConfig.from_dict(record["model"]),
        TrainConfig.from_dict(train),
        record["seed"],
        record.get("data_seed"),
    )


def seed_ordered_groups(trials, seeds) -> dict[str, list[tuple[TrialSpec, Path]]]:
    """Group id -> [(spec, weights file)] in the order of ``seeds`` (the config's: the order
    the study trained them), from ``trials``: (group, seed, spec, weights file) tuples."""
    order = {seed: i for i, seed in enumerate(seeds)}
    out: dict[str, list] = {}
    for group, _seed, spec, weights in sorted(trials, key=lambda t: (t[0], order.get(t[1], 0))):
        out.setdefault(group, []).append((spec, weights))
    return out


def study_prediction_differences(
    groups: dict[str, list[tuple[TrialSpec, Path]]], corpus: Corpus
) -> dict:
    """The study's PD for each group of a study-protocol sweep, on the CPU in fp32.

    Args:
        groups: group id -> its trials as (spec, weights file) in the config's seed order (the
            order the study trained them; the last one's stream draws the windows).

    Returns:
        group id -> :func:`charlm.study.pd.study_pd`'s dict (groups of one seed left out).
    """
    out = {}
    for group, trials in sorted(groups.items()):
        if len(trials) < 2:
            continue
        last = trials[-1][0]
        stream = StudyStream(replay_stream(last, corpus), corpus, last.model.block_size, "cpu")
        models = [(spec.seed, load_weights(path)[0]) for spec, path in trials]
        out[group] = study_pd(models, stream)
    return out


def study_final_metrics(
    record: dict, weights: Path, corpus: Corpus, tolerance: dict
) -> tuple[bool, str]:
    """Re-evaluate a study-protocol trial's final evaluation from its weights: the first
    :data:`VERIFY_BATCHES` batches of each split against the recorded per-batch losses, both
    accuracies in full (1,000 windows each) against the recorded ones.

    Args:
        tolerance: ``{"loss": nats, "accuracy": percentage points}``.

    Returns:
        (within tolerance, one line saying what was compared).
    """
    model, _ = load_weights(weights)
    torch.set_num_threads(record["train"]["threads"])
    again = reevaluate_final(spec_from_record(record), corpus, model, VERIFY_BATCHES)
    recorded = record["study"]["final_batch_losses"]
    beyond, worst = [], 0.0
    for split in ("train", "val"):
        for k, (here, there) in enumerate(
            zip(again["batch_losses"][split], recorded[split], strict=False)
        ):
            worst = max(worst, abs(here - there))
            if abs(here - there) > tolerance["loss"]:
                beyond.append(f"{split} batch {k} recorded {there:.6g}, weights give {here:.6g}")
        key = f"{split}_accuracy"
        if abs(again[key] - record["final"][key]) > tolerance["accuracy"]:
            beyond.append(f"{key} recorded {record['final'][key]}, weights give {again[key]}")
    if beyond:
        return False, "; ".join(beyond[:3])
    return True, (
        f"study protocol: final evaluation's first {VERIFY_BATCHES} batches per split and both "
        f"accuracies re-evaluated on the replayed stream; loss off by {worst:.2g} nats"
    )
