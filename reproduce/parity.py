"""``python -m reproduce parity``: a trial's step-0 losses under the study protocol, beside the
study's own records.

The study's runs drew their initial weights and their evaluation batches from PyTorch's CPU
generator, on its GPU as on a CPU, so a study-protocol trial on any machine evaluates the very
same model on the very same batches at step 0: its losses must equal the published ones to the
rounding of the forward passes (about 1e-5). Where they are published:

- per-trial result files (``results-partial/``, ``results-full/`` of the study's repository):
  ``trials[i].train_loss_history[0]`` and ``val_loss_history[0]`` (float32 values), trial
  ``i + 1`` being seed ``42 + i`` (the study's ``seed_base + trial``); :data:`PUBLISHED` says
  which file belongs to which scale (the files do not record their config; the number of
  evaluations in their curves and their step-0 values tell them apart);
- the full-scale run log (``charlm_full_run.log``): ``Step 0 | Train loss: x | Val loss: y`` of
  each trial, four decimals.

The scale of a config is recognised by its model and evaluation sizes (:data:`SCALES`).
"""

from __future__ import annotations

import argparse
import datetime
import json
import re
import sys
import time
from pathlib import Path

import torch
from tqdm import tqdm

from charlm import platforms
from charlm.study.train import step0_losses
from charlm.train import left_text
from reproduce.config import load_config
from reproduce.errors import UserError
from reproduce.options import add_data_option
from reproduce.studytrials import STUDY_NAMES  # ours -> the study's activation names
from reproduce.sweep import load_corpus
from reproduce.terminal import is_terminal

__all__ = ["PUBLISHED", "SCALES", "published_step0", "scale_of", "register"]

# (n_layer, n_head, n_embd, block_size, batch_size, eval_iters) -> the study's config file
SCALES = {
    (2, 4, 128, 128, 64, 200): "lite",  # config_gpu_lite.py
    (2, 4, 256, 256, 64, 200): "partial",  # config.py
    (6, 6, 384, 256, 64, 200): "full",  # config_full_gpu.py
}
FIRST_SEED = 42  # the study's seed_base: trial i (1-based) ran seed 42 + i - 1
LOG_FILE = "charlm_full_run.log"

# scale -> study activation name -> result files (relative to the study's directory) whose
# trials hold that scale's step-0 losses. Lite: 200 iterations, curves of 5 evaluations, run
# 2025-12-07 22:06-22:08; partial: 500 iterations, 6 evaluations, 22:33-22:54; full: the
# results-char files of 2025-12-08 (11 evaluations) and a 5-evaluation run of the full model
# (2025-12-07 21:03) whose step-0 losses equal theirs.
PUBLISHED = {
    "lite": {
        "relu": ["results-partial/charlm-relu-20251207_220622.json"],
        "gelu": ["results-partial/charlm-gelu-20251207_220724.json"],
        "swish": ["results-partial/charlm-swish-20251207_220836.json"],
    },
    "partial": {
        "relu": ["results-partial/charlm-relu-20251207_224444.json"],
        "gelu": ["results-partial/charlm-gelu-20251207_224906.json"],
        "swish": ["results-partial/charlm-swish-20251207_225407.json"],
        "smelu_05": ["results-partial/charlm-smelu_05-20251207_223355.json"],
        "smelu_1": ["results-partial/charlm-smelu_1-20251207_224012.json"],
    },
    "full": {
        "relu": [
            "results-full/charlm-relu-20251208_151223.json",
            "results-partial/charlm-relu-20251207_210335.json",
        ],
        "gelu": ["results-full/charlm-gelu-20251208_162452.json"],
        "swish": ["results-full/charlm-swish-20251208_174801.json"],
    },
}
LOG_STEP0 = re.compile(r"Step\s+0 \| Train loss: ([0-9.]+) \| Val loss: ([0-9.]+)")


def scale_of(config) -> str:
    """The study scale a sweep config describes (``lite``, ``partial``, ``full``).

    Raises:
        UserError: the config is not a study-protocol config of one of the study's scales.
    """
    m, t = config.model, config.train
    if t.get("protocol") != "study":
        raise UserError(
            f'{config.source} is not a study-protocol config ([train] protocol = "study"): '
            "use configs/study-lite.toml, configs/study-partial.toml or configs/full.toml"
        )
    key = (
        m.get("n_layer"),
        m.get("n_head"),
        m.get("n_embd"),
        m.get("block_size"),
        t.get("batch_size", 64),
        t.get("eval_iters", 200),
    )
    if key not in SCALES:
        raise UserError(
            f"{config.source} has model/evaluation sizes {key}, none of the study's scales "
            f"{sorted(SCALES.values())}; the study published step-0 losses for those only"
        )
    return SCALES[key]


def published_step0(study_dir: Path, scale: str, activation: str, seed: int) -> list[dict]:
    """Every published record of one trial's step-0 losses.

    Returns:
        a list of ``{"source", "train_loss", "val_loss", "decimals"}`` (``decimals`` None for
        float values from result files, 4 for the log's); empty when the study has none.

    Raises:
        UserError: ``study_dir`` lacks a file :data:`PUBLISHED` names.
    """
    name = STUDY_NAMES.get(activation, activation)
    trial = seed - FIRST_SEED  # 0-based index into a file's trials
    found = []
    for rel in PUBLISHED.get(scale, {}).get(name, []):
        path = study_dir / rel
        if not path.is_file():
            raise UserError(f"{path} is missing: point --study-dir at the study's files")
        trials = json.loads(path.read_text(encoding="utf-8"))["trials"]
        if 0 <= trial < len(trials):
            t = trials[trial]
            found.append(
                {
                    "source": f"{rel} trial {t['trial_id']}",
                    "train_loss": t["train_loss_history"][0],
                    "val_loss": t["val_loss_history"][0],
                    "decimals": None,
                }
            )
    if scale == "full":
        found += _log_step0(study_dir / LOG_FILE, name, trial)
    return found


def _log_step0(path: Path, activation: str, trial: int) -> list[dict]:
    if not path.is_file():
        raise UserError(f"{path} is missing: point --study-dir at the study's files")
    current, index, out = None, -1, []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("# EXPERIMENT: "):
            current, index = line.split(": ", 1)[1].strip().lower(), -1
        match = LOG_STEP0.search(line)
        if match and current == activation:
            index += 1
            if index == trial:
                out.append(
                    {
                        "source": f"{LOG_FILE} {activation} trial {trial + 1}",
                        "train_loss": float(match.group(1)),
                        "val_loss": float(match.group(2)),
                        "decimals": 4,
                    }
                )
    return out


class BatchProgress:
    """Progress through one trial's ``total`` forward batches: a tqdm bar with an ETA on a
    terminal (stderr), else a plain line at every tenth of them, with the time left at this
    trial's mean time per batch so far."""

    def __init__(self, label: str, total: int, bar: bool | None = None) -> None:
        self.label, self.total, self.done = label, total, 0
        self.started = time.perf_counter()
        use_bar = is_terminal(sys.stderr) if bar is None else bar
        self.bar = tqdm(
            total=total, desc=label, unit="batch", file=sys.stderr, leave=False, disable=not use_bar
        )

    def __call__(self) -> None:
        self.done += 1
        self.bar.update(1)
        tenth = max(1, self.total // 10)
        if self.bar.disable and self.done < self.total and self.done % tenth == 0:
            spent = time.perf_counter() - self.started
            left = left_text((self.total - self.done) * spent / self.done)
            print(
                f"  {self.label}: {self.done}/{self.total} batches, {spent:.0f} s{left}",
                file=sys.stderr,
                flush=True,
            )

    def close(self) -> None:
        """Remove the bar."""
        self.bar.close()


def compare(ours: dict, published: list[dict], tolerance: float) -> list[dict]:
    """Each published record with the largest absolute difference and whether it is within
    ``tolerance`` (for a value the log rounded to ``decimals``, within ``tolerance`` plus half
    a unit of its last decimal)."""
    rows = []
    for p in published:
        diff = max(abs(ours[k] - p[k]) for k in ("train_loss", "val_loss"))
        rounding = 0.0 if p["decimals"] is None else 0.5 * 10 ** -p["decimals"]
        rows.append({**p, "max_abs_diff": diff, "ok": diff <= tolerance + rounding})
    return rows


def _command(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    scale = scale_of(config)
    study_dir = Path(args.study_dir)
    activations = args.activations or list(config.activations)
    seeds = args.seeds or list(config.seeds)
    corpus = load_corpus(config, args.config, args.data)
    trials = {(t.activation, t.seed): t for t in config.trials(corpus.vocab_size)}
    failed, results = 0, []
    threads = next(iter(trials.values())).spec.train.threads if trials else 2
    print(f"step-0 losses, study protocol, scale {scale} ({config.source}); fp32 on the CPU")
    for activation in activations:
        for seed in seeds:
            trial = trials.get((activation, seed))
            if trial is None:
                raise UserError(f"{activation} seed {seed} is not a trial of {config.source}")
            published = published_step0(study_dir, scale, activation, seed)
            started = time.perf_counter()
            train = trial.spec.train
            progress = BatchProgress(f"{activation} seed {seed}", 2 * train.eval_iters)
            try:
                ours = step0_losses(
                    trial.spec.model,
                    corpus,
                    seed,
                    train.eval_iters,
                    train.batch_size,
                    train.threads,
                    on_batch=progress,
                )
            finally:
                progress.close()
            seconds = time.perf_counter() - started
            rows = compare(ours, published, args.tolerance)
            failed += sum(not r["ok"] for r in rows)
            print(
                f"{activation} seed {seed}: train {ours['train_loss']:.6f}  "
                f"val {ours['val_loss']:.6f}  ({seconds:.0f} s)\n"
                f"  initial weights sha256 {ours['init_sha256']}"
            )
            if not rows:
                print("  published: none for this trial")
            for r in rows:
                print(
                    f"  published {r['train_loss']:.6f} / {r['val_loss']:.6f}  "
                    f"|diff| {r['max_abs_diff']:.1e}  {'ok' if r['ok'] else 'DIFFERS'}\n"
                    f"    {r['source']}"
                )
            results.append(
                {
                    "activation": activation,
                    "seed": seed,
                    **ours,
                    "seconds": seconds,
                    "published": rows,
                }
            )
            if args.out:  # after every trial: a stop loses the running trial only
                _write(Path(args.out), scale, args.tolerance, threads, results)
    if failed:
        print(f"{failed} published value(s) differ by more than {args.tolerance}")
        return 1
    return 0


def _write(path: Path, scale: str, tolerance: float, threads: int, results: list) -> None:
    """The trials computed so far, with this machine's platform and the date (atomically)."""
    from charlm.io import atomic_write_json

    env = platforms.record(torch.device("cpu"), "fp32", threads)
    doc = {
        "scale": scale,
        "tolerance": tolerance,
        "platform": platforms.describe(env),
        "date": datetime.date.today().isoformat(),
        "results": results,
    }
    atomic_write_json(path, doc)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``parity`` command."""
    p = subparsers.add_parser(
        "parity",
        help="step-0 losses under the study protocol beside the study's published ones",
        description="Build each trial's model as the study did, evaluate it at step 0 as the "
        "study did (eval_iters random batches per split from the trial's one generator) and "
        "print the losses beside the study's result files and run log. Exit 1 when a "
        "published value differs by more than --tolerance. Costs 2 x eval_iters forward "
        "batches per trial.",
    )
    p.add_argument(
        "--config",
        required=True,
        help="a study-protocol config: configs/study-lite.toml, study-partial.toml, full.toml",
    )
    p.add_argument("--activations", nargs="+", default=None, help="default: the config's")
    p.add_argument("--seeds", nargs="+", type=int, default=None, help="default: the config's")
    p.add_argument(
        "--study-dir",
        default=str(Path(__file__).resolve().parents[1] / ".." / "shared" / "original-study"),
        help="the study's files (result JSONs, run log); default ../shared/original-study",
    )
    p.add_argument("--tolerance", type=float, default=1e-4, help="nats (default 1e-4)")
    add_data_option(p)
    p.add_argument("--out", default=None, help="also write the results as JSON here")
    p.set_defaults(func=_command)
