"""What a trial is, for both training loops (:mod:`charlm.train`, nanoGPT's recipe, and
:mod:`charlm.study.train`, the study's procedure): its settings (:class:`TrainConfig`,
:class:`TrialSpec`), the files of a trial directory, the errors training raises, and the
pieces both loops share (stop signals, autocast, the corpus checks and record).

Both loops import this module and neither imports the other: :func:`charlm.train.train_trial`
dispatches on ``TrainConfig.protocol``. :mod:`charlm.train` re-exports every name here.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
import signal
import threading
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from charlm import cpu
from charlm.data import Corpus
from charlm.io import sha256_file
from charlm.model import ModelConfig

__all__ = [
    "PRECISIONS",
    "PROTOCOLS",
    "STUDY_EVALS",
    "STUDY_ONLY",
    "OPTIMIZER_IMPLS",
    "WEIGHTS_FILE",
    "STATE_FILE",
    "LOG_FILE",
    "RECORD_FILE",
    "TrainConfig",
    "TrialSpec",
    "TrainingInterrupted",
    "NonFiniteLossError",
    "StopSignals",
    "Autocast",
    "resolve_precision",
    "left_text",
    "is_finished",
    "check_fits",
    "corpus_record",
]

PRECISIONS = ("fp32", "bf16", "auto")
PROTOCOLS = ("nanogpt", "study")  # the study protocol is charlm.study
STUDY_EVALS = ("all", "first-and-final", "final")
STUDY_ONLY = ("eval_iters", "study_evals")  # settings the nanogpt protocol does not use
OPTIMIZER_IMPLS = ("auto", "fused", "foreach", "for-loop")
DEVICE = re.compile(r"auto|cpu|cuda(:\d+)?")  # the devices training supports
WEIGHTS_FILE = "weights.safetensors"
STATE_FILE = "state.safetensors"
LOG_FILE = "log.jsonl"
RECORD_FILE = "trial.json"


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation, evaluation and speed settings of a trial; all recorded with it.

    Defaults not stated by the study are those of nanoGPT's character-level Shakespeare config
    (``config/train_shakespeare_char.py``): warm-up 100, cosine decay to lr/10, betas
    (0.9, 0.99), weight decay 0.1 on weight matrices, gradient clipping at norm 1.0.

    Attributes:
        max_iters: optimizer steps.
        batch_size: windows per step; each window has ``block_size`` characters.
        lr: peak learning rate (AdamW, Loshchilov & Hutter 2019).
        min_lr: final learning rate of the cosine decay; None means ``lr / 10``.
        warmup_iters: linear warm-up steps.
        lr_decay_iters: step at which the cosine decay reaches ``min_lr``; None means max_iters.
        beta1, beta2: AdamW moment decay rates.
        weight_decay: decoupled weight decay on parameters with 2 or more dimensions (the
            Linear weight matrices and the embeddings); biases and LayerNorm are not decayed.
        grad_clip: maximum global gradient L2 norm; 0 disables clipping.
        eval_interval: evaluate (and save the resumable state) every this many steps, and at
            the end.
        eval_batch_size: windows per evaluation forward pass (changes no result).
        log_interval: steps between progress updates (the only per-step host synchronisation).
        precision: ``fp32``, ``bf16`` (autocast) or ``auto``: bf16 on CUDA and on CPUs that
            compute bf16 natively (AVX512-BF16 or AMX, :func:`charlm.cpu.bf16_native`), fp32
            on other CPUs (where emulated bf16 is many times slower than fp32).
        allow_tf32: allow TF32 matmuls and convolutions on CUDA.
        compile: wrap the model in ``torch.compile`` for training steps.
        optimizer_impl: AdamW kernel: ``fused``, ``foreach``, ``for-loop`` or ``auto`` (fused on
            CUDA, foreach on CPU).
        threads: CPU intra-op threads (``torch.set_num_threads``); part of the platform.
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
        protocol: ``nanogpt`` (this module: the fields above, fixed evaluation windows) or
            ``study`` (:mod:`charlm.study`: the study's own model layout, random stream,
            constant learning rate and evaluation; it refuses a warm-up, a decay and clipping).
        eval_iters: study protocol: random batches per split in each evaluation (the study's
            ``eval_iters``); the nanogpt protocol evaluates fixed windows and ignores it.
        study_evals: study protocol: which evaluations run their forward passes: ``all``,
            ``first-and-final`` (step 0 and the evaluation after training) or ``final``. The
            others draw their batches all the same, so the random stream stays the study's.

    Raises:
        ValueError: a value out of range, naming the setting.
    """

    max_iters: int = 5000
    batch_size: int = 64
    lr: float = 3e-4
    min_lr: float | None = None
    warmup_iters: int = 100
    lr_decay_iters: int | None = None
    beta1: float = 0.9
    beta2: float = 0.99
    weight_decay: float = 0.1
    grad_clip: float = 1.0
    eval_interval: int = 500
    eval_batch_size: int = 64
    log_interval: int = 10
    precision: str = "auto"
    allow_tf32: bool = False
    compile: bool = False
    optimizer_impl: str = "auto"
    threads: int = 2
    device: str = "auto"
    protocol: str = "nanogpt"
    eval_iters: int = 200
    study_evals: str = "all"

    def __post_init__(self) -> None:
        for name in (
            "max_iters",
            "batch_size",
            "eval_interval",
            "eval_batch_size",
            "log_interval",
            "threads",
            "eval_iters",
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"train.{name} must be a positive integer, got {value!r}")
        if isinstance(self.warmup_iters, bool) or self.warmup_iters < 0:
            raise ValueError(f"train.warmup_iters must be >= 0, got {self.warmup_iters!r}")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"train.lr must be a positive number, got {self.lr!r}")
        if self.min_lr is not None and not 0 <= self.min_lr <= self.lr:
            raise ValueError(f"train.min_lr must be in [0, lr], got {self.min_lr!r}")
        if self.lr_decay_iters is not None and self.lr_decay_iters <= 0:
            raise ValueError(f"train.lr_decay_iters must be positive, got {self.lr_decay_iters!r}")
        for name in ("beta1", "beta2"):
            if not 0 <= getattr(self, name) < 1:
                raise ValueError(f"train.{name} must be in [0, 1), got {getattr(self, name)!r}")
        if self.weight_decay < 0 or self.grad_clip < 0:
            raise ValueError("train.weight_decay and train.grad_clip must be >= 0")
        if self.precision not in PRECISIONS:
            raise ValueError(f"train.precision must be one of {PRECISIONS}, got {self.precision!r}")
        if not DEVICE.fullmatch(str(self.device)):
            raise ValueError(
                f"train.device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {self.device!r}"
            )
        if self.optimizer_impl not in OPTIMIZER_IMPLS:
            raise ValueError(
                f"train.optimizer_impl must be one of {OPTIMIZER_IMPLS}, "
                f"got {self.optimizer_impl!r}"
            )
        if self.protocol not in PROTOCOLS:
            raise ValueError(f"train.protocol must be one of {PROTOCOLS}, got {self.protocol!r}")
        if self.study_evals not in STUDY_EVALS:
            raise ValueError(
                f"train.study_evals must be one of {STUDY_EVALS}, got {self.study_evals!r}"
            )
        if self.protocol == "study":
            self._check_study()

    def _check_study(self) -> None:
        """The study's optimisation has a constant learning rate, no clipping and runs eager:
        refuse settings it would have to ignore."""
        unused = {
            "warmup_iters": (self.warmup_iters, 0),
            "grad_clip": (self.grad_clip, 0),
            "compile": (self.compile, False),
        }
        for name, (value, wanted) in unused.items():
            if value != wanted:
                raise ValueError(
                    f"train.{name} = {value!r}: the study protocol has a constant learning rate, "
                    f"no clipping and no compilation; set {name} = {str(wanted).lower()}"
                )
        if self.min_lr not in (None, self.lr) or self.lr_decay_iters is not None:
            raise ValueError(
                "train.min_lr / lr_decay_iters: the study protocol's learning rate is constant; "
                "leave them unset"
            )

    def resolved(self) -> TrainConfig:
        """A copy with ``min_lr`` and ``lr_decay_iters`` made explicit."""
        return replace(
            self,
            min_lr=self.lr / 10 if self.min_lr is None else self.min_lr,
            lr_decay_iters=self.max_iters if self.lr_decay_iters is None else self.lr_decay_iters,
        )

    @classmethod
    def from_dict(cls, data: dict) -> TrainConfig:
        """Build from a dict. Raises ValueError naming an unknown key."""
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown train setting(s) {unknown}: valid are {sorted(known)}")
        return cls(**data)


@dataclass(frozen=True)
class TrialSpec:
    """One trial: architecture, training settings, initialisation seed and data-order seed.

    ``data_seed`` None means the data order follows ``seed``; set it apart to vary
    initialisation and data order separately.
    """

    model: ModelConfig
    train: TrainConfig
    seed: int
    data_seed: int | None = None

    @property
    def resolved_data_seed(self) -> int:
        return self.seed if self.data_seed is None else self.data_seed


class TrainingInterrupted(Exception):
    """Training stopped early on request (signal or stop check); the state was saved."""

    def __init__(self, step: int, reason: str) -> None:
        super().__init__(f"training stopped at step {step} ({reason}); rerun to resume")
        self.step = step


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or infinite; the last good state is kept."""

    def __init__(self, step: int, last_saved: int | None) -> None:
        kept = f"the state of step {last_saved} is kept" if last_saved else "no state was saved"
        super().__init__(f"non-finite training loss at step {step}; {kept}")
        self.step = step


def resolve_precision(precision: str, device: torch.device) -> str:
    """``fp32`` or ``bf16`` for a configured precision on ``device`` (see :class:`TrainConfig`)."""
    if precision != "auto":
        return precision
    return "bf16" if device.type == "cuda" or cpu.bf16_native() else "fp32"


def left_text(seconds: float) -> str:
    """``", ~4m left"`` for an estimate of ``seconds`` still to go (``", ~1h05m left"`` past an
    hour); the caller says what the estimate is based on."""
    if seconds < 60:
        return f", ~{seconds:.0f}s left"
    if seconds < 3600:
        return f", ~{seconds / 60:.0f}m left"
    return f", ~{seconds // 3600:.0f}h{seconds % 3600 / 60:02.0f}m left"


def is_finished(trial_dir: str | Path) -> bool:
    """True when ``trial_dir`` holds a trial record whose weights file matches its digest."""
    trial_dir = Path(trial_dir)
    record_path, weights_path = trial_dir / RECORD_FILE, trial_dir / WEIGHTS_FILE
    if not (record_path.is_file() and weights_path.is_file()):
        return False
    try:
        recorded = json.loads(record_path.read_text(encoding="utf-8"))["weights_sha256"]
    except (ValueError, KeyError):
        return False
    return sha256_file(weights_path) == recorded


class StopSignals:
    """Context manager turning the first SIGINT/SIGTERM into a flag (``received``: the signal's
    name) that the caller checks at safe points; a second signal raises KeyboardInterrupt.
    Installs handlers only in the main thread and restores the previous ones on exit."""

    def __init__(self) -> None:
        self.received: str | None = None
        self._previous: dict = {}

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        if self.received:
            raise KeyboardInterrupt
        self.received = signal.Signals(signum).name

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


class Autocast:
    """The autocast of a setup's resolved ``precision`` on its ``device`` (both attributes of
    the class it is mixed into)."""

    precision: str
    device: torch.device

    @property
    def autocast_dtype(self) -> torch.dtype | None:
        return torch.bfloat16 if self.precision == "bf16" else None

    def autocast(self):
        """The autocast context of the resolved precision (a no-op for fp32)."""
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.autocast_dtype)


def check_fits(spec: TrialSpec, corpus: Corpus) -> None:
    """Refuse a trial its corpus cannot serve, before any work.

    Raises:
        ValueError: the model's vocabulary size is not the corpus's, or its context does not
            fit the shorter split.
    """
    mcfg = spec.model
    if mcfg.vocab_size != corpus.vocab_size:
        raise ValueError(
            f"model.vocab_size is {mcfg.vocab_size} but the corpus has {corpus.vocab_size} "
            "characters; set vocab_size to the corpus's"
        )
    shortest = min(len(corpus.train), len(corpus.val))
    if mcfg.block_size >= shortest:
        raise ValueError(
            f"model.block_size {mcfg.block_size} does not fit the data (the shorter split has "
            f"{shortest} characters); use a smaller block_size"
        )


def corpus_record(corpus: Corpus) -> dict:
    """What a trial record says of its corpus."""
    return {
        "sha256": corpus.sha256,
        "n_train": len(corpus.train),
        "n_val": len(corpus.val),
        "vocab_size": corpus.vocab_size,
    }
