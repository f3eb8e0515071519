"""``python -m reproduce precision``: what bf16 changes, measured on one trial.

Trains the first ``--iters`` iterations of one trial of a config twice, in fp32 and in bf16
autocast, everything else equal (same seed, batches, dropout draws where the kernels allow, the
config's learning-rate schedule kept: ``lr_decay_iters`` stays the config's ``max_iters``), and
prints both evaluation curves and their difference (val loss in nats, val accuracy in points).
It is a benchmark, not a test: it takes minutes at the partial scale and asserts nothing. The
two runs cannot be bit-comparable: bf16 rounds every matrix product, and on the CPU it draws
16-bit dropout masks where fp32 draws 31-bit ones (:func:`charlm.kernels.mask_bits`), so the
difference shown is that of the whole bf16 path against fp32.
"""

from __future__ import annotations

import argparse
import tempfile
from dataclasses import replace
from pathlib import Path

from charlm.io import atomic_write_json
from charlm.train import train_trial
from reproduce.config import load_config
from reproduce.errors import UserError
from reproduce.options import add_data_option
from reproduce.sweep import load_corpus

__all__ = ["compare_precisions", "register"]

PRECISIONS = ("fp32", "bf16")


def compare_precisions(spec, corpus, iters: int, eval_interval: int, work: Path) -> dict:
    """Train ``spec``'s first ``iters`` iterations in fp32 and in bf16; return both curves.

    Args:
        spec: the trial (:class:`charlm.train.TrialSpec`); its precision is overridden.
        corpus: the encoded text. iters: iterations to train (at most the config's max_iters).
        eval_interval: steps between evaluations. work: directory for the two trial dirs.

    Returns:
        ``{"iters", "eval_interval", "runs": {precision: trial record without curves},
        "curves": [{"step", "<precision>": {"val_loss", "val_accuracy", "train_loss"},
        "diff": {"val_loss", "val_accuracy"}}]}`` with diff = bf16 - fp32.
    """
    records = {}
    for precision in PRECISIONS:
        train = replace(
            spec.train,
            precision=precision,
            max_iters=iters,
            eval_interval=eval_interval,
            lr_decay_iters=spec.train.lr_decay_iters or spec.train.max_iters,
        )
        print(f"training {iters} iterations in {precision}", flush=True)
        records[precision] = train_trial(
            replace(spec, train=train), corpus, work / precision, progress=None
        )
    by_step = {p: {c["step"]: c for c in records[p]["curves"]} for p in PRECISIONS}
    steps = sorted(set(by_step["fp32"]) & set(by_step["bf16"]))
    curves = []
    for step in steps:
        point = {"step": step}
        for p in PRECISIONS:
            c = by_step[p][step]
            point[p] = {k: c[k] for k in ("train_loss", "val_loss", "val_accuracy")}
        point["diff"] = {
            k: point["bf16"][k] - point["fp32"][k] for k in ("val_loss", "val_accuracy")
        }
        curves.append(point)
    runs = {p: {k: v for k, v in r.items() if k != "curves"} for p, r in records.items()}
    return {"iters": iters, "eval_interval": eval_interval, "runs": runs, "curves": curves}


def format_curves(result: dict) -> list[str]:
    """The curves as an 80-column table."""
    lines = [
        f"{'step':>5}  {'fp32 val':>9} {'bf16 val':>9} {'diff':>8}   "
        f"{'fp32 acc':>8} {'bf16 acc':>8} {'diff':>6}",
    ]
    for point in result["curves"]:
        f, b, d = point["fp32"], point["bf16"], point["diff"]
        lines.append(
            f"{point['step']:>5}  {f['val_loss']:>9.4f} {b['val_loss']:>9.4f} "
            f"{d['val_loss']:>+8.4f}   {f['val_accuracy']:>7.2f}% {b['val_accuracy']:>7.2f}% "
            f"{d['val_accuracy']:>+6.2f}"
        )
    runs = result["runs"]
    lines.append(
        "wall time: "
        + ", ".join(f"{p} {runs[p]['wall_time_s']:.0f} s" for p in PRECISIONS)
        + " (evaluations included)"
    )
    return lines


def _command(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    corpus = load_corpus(config, args.config, args.data)
    trials = {t.id: t for t in config.trials(corpus.vocab_size)}
    if args.trial not in trials:
        raise UserError(f"{args.config} has no trial {args.trial!r}; it has {sorted(trials)}")
    spec = trials[args.trial].spec
    if args.iters > spec.train.max_iters:
        raise UserError(
            f"--iters {args.iters} exceeds the config's train.max_iters {spec.train.max_iters}"
        )
    with tempfile.TemporaryDirectory(prefix="charlm-precision-") as tmp:
        result = compare_precisions(spec, corpus, args.iters, args.eval_interval, Path(tmp))
    result.update(config=config.to_dict(), trial=args.trial)
    print(f"{args.trial} of {config.name}: first {args.iters} iterations, bf16 - fp32")
    for line in format_curves(result):
        print(line)
    atomic_write_json(args.out, result)
    print(f"written to {args.out}")
    return 0


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of at least 1, got {text!r}")
    return int(text)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``precision`` command."""
    p = subparsers.add_parser(
        "precision",
        help="train one trial's first iterations in fp32 and bf16 and compare the curves",
        description="What bf16 changes: train the first --iters iterations of one trial in "
        "fp32 and in bf16 autocast (learning-rate schedule of the full trial) and print both "
        "evaluation curves and their difference. A benchmark: minutes, nothing asserted.",
    )
    p.add_argument("--config", required=True, help="sweep config (TOML)")
    p.add_argument("--trial", required=True, help="trial id, e.g. gelu-s42")
    p.add_argument("--iters", type=_positive, default=200, help="iterations (default 200)")
    p.add_argument(
        "--eval-interval", type=_positive, default=25, help="steps between evaluations (25)"
    )
    add_data_option(p)
    p.add_argument("--out", default="precision.json", help="JSON file for the curves")
    p.set_defaults(func=_command)
