"""``python -m reproduce positions WEIGHTS...``: val loss and accuracy at each position of the
context, for trained models.

The study's val accuracy is that of the last position of 1,000 random windows only (its
train.py, ``calculate_accuracy``, lines 65-96); the package's accuracy and val loss average
every position. This command shows how far the last position stands from the others, model by
model: on the same validation windows for every weights file given (``--windows`` full-context
windows whose starts a generator seeded with ``--seed`` draws), it prints the mean over every
position, the last position, and the positions whose loss is highest. ``--json FILE`` keeps
the whole per-position curves. It reads weights only, trains nothing and asserts nothing.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from charlm.checkpoint import load_weights
from charlm.data import Corpus, resolve_data_path
from charlm.io import atomic_write_json
from charlm.metrics import EvalSet, by_position
from reproduce.errors import UserError
from reproduce.options import add_data_option

__all__ = ["positions", "register"]

BATCH_SIZE = 50  # windows per forward pass
WORST_SHOWN = 3  # positions named as the highest loss, after position 0


def positions(weights: Path, corpus: Corpus, windows: int, seed: int) -> dict:
    """Per-position val loss and accuracy of one model on ``windows`` random val windows.

    The windows have the model's full context (``block_size``); their starts are drawn
    uniformly from the val split by a generator seeded with ``seed``, so every model of one
    context length given the same ``windows`` and ``seed`` is scored on the same text.

    Returns:
        ``{"weights", "windows", "seed", "block_size", "loss": [nats per position],
        "accuracy": [percent per position], "every": {"loss", "accuracy"}, "last": {"loss",
        "accuracy"}}``; ``every`` averages all positions alike, ``last`` is position
        ``block_size - 1``, the one the study's accuracy scores.

    Raises:
        ValueError: not a CharLM weights file (:func:`charlm.checkpoint.load_weights`), a
            vocabulary other than the corpus's, or a val split shorter than one window.
    """
    model, vocabulary = load_weights(weights)
    if vocabulary != corpus.chars:
        raise ValueError(f"{weights} was trained on another vocabulary than this corpus's")
    block = model.config.block_size
    if len(corpus.val) <= block + 1:
        raise ValueError(f"the val split is shorter than one window of {block} characters")
    generator = torch.Generator().manual_seed(seed)
    starts = torch.randint(len(corpus.val) - block, (windows,), generator=generator)
    evalset = EvalSet.from_starts(corpus.val, starts, [block] * windows)
    loss, accuracy = by_position(model, evalset, BATCH_SIZE)
    return {
        "weights": str(weights),
        "windows": windows,
        "seed": seed,
        "block_size": block,
        "loss": loss.tolist(),
        "accuracy": accuracy.tolist(),
        "every": {"loss": loss.mean().item(), "accuracy": accuracy.mean().item()},
        "last": {"loss": loss[-1].item(), "accuracy": accuracy[-1].item()},
    }


def summary_lines(result: dict) -> list[str]:
    """The printed summary of one :func:`positions` result (80 columns)."""
    loss = result["loss"]
    worst = sorted(range(1, len(loss)), key=lambda t: loss[t], reverse=True)[:WORST_SHOWN]
    every, last = result["every"], result["last"]
    return [
        result["weights"],
        f"  every position     loss {every['loss']:.3f}  accuracy {every['accuracy']:5.1f}%",
        f"  last position {len(loss) - 1:<4} loss {last['loss']:.3f}  accuracy "
        f"{last['accuracy']:5.1f}%  (the study's accuracy)",
        "  highest loss after position 0: " + ", ".join(f"{t} ({loss[t]:.3f})" for t in worst),
    ]


def command(a: argparse.Namespace) -> int:
    """Run ``positions`` for each weights file; print the summaries; write ``--json``."""
    if a.windows < 1:
        raise UserError(f"--windows must be at least 1, got {a.windows}")
    corpus = Corpus.load(resolve_data_path(a.data))
    torch.set_num_threads(a.threads)
    print(
        f"{a.windows:,} val windows of full context per model, starts drawn with seed "
        f"{a.seed}; loss in nats"
    )
    results = []
    for weights in a.weights:
        if not Path(weights).is_file():
            raise UserError(f"{weights} is not a file; name a trial's weights.safetensors")
        results.append(positions(Path(weights), corpus, a.windows, a.seed))
        for line in summary_lines(results[-1]):
            print(line, flush=True)
    if a.json:
        atomic_write_json(Path(a.json), {"models": results})
        print(f"per-position curves: {a.json}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``positions`` command."""
    p = subparsers.add_parser(
        "positions",
        help="val loss and accuracy at each position of the context, per model",
        description=__doc__.split("\n\n")[1].replace("\n", " "),
    )
    p.add_argument("weights", nargs="+", help="trials' weights.safetensors files")
    p.add_argument("--windows", type=int, default=2000, help="val windows (default 2000)")
    p.add_argument("--seed", type=int, default=0, help="seed of the windows' starts (default 0)")
    p.add_argument("--threads", type=int, default=2, help="CPU threads (default 2)")
    add_data_option(p)
    p.add_argument("--json", default=None, metavar="FILE", help="write the per-position curves")
    p.set_defaults(func=command)
    return p
