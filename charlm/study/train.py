"""Train one trial under the study protocol: the study's ``train.py`` loop, resumable.

Per iteration ``it`` of ``max_iters`` (the study's ``train_model``): when ``it`` is a multiple of
``eval_interval`` or the last iteration, an evaluation (:meth:`StudyStream.estimate_loss`, train
split first) before that step; then one training batch from the stream, forward, backward and an
AdamW step at the constant learning rate (PyTorch's AdamW: eps 1e-8, the config's betas and
weight decay on every parameter; the study used the defaults 0.9, 0.999 and 0.01). After the
loop: one more evaluation, then the accuracy on 1,000 training and 1,000 validation windows.

The directory receives what :func:`charlm.train.train_trial` writes (``log.jsonl``,
``state.safetensors`` while running, ``weights.safetensors``, ``trial.json`` last). The state,
saved after each evaluation and on a stop, holds the model, the optimizer, the stream's and the
dropout generator's states, so a resumed run ends with the same bytes as an uninterrupted one.
"""

from __future__ import annotations

import hashlib
import json
import math
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from charlm import checkpoint, cpu, determinism, platforms
from charlm.data import Corpus
from charlm.io import atomic_write_json, atomic_write_text, sha256_file
from charlm.model import ModelConfig
from charlm.study.model import DropoutSource, StudyCharLM
from charlm.study.stream import ACCURACY_WINDOWS, StudyStream, seeded_build
from charlm.trial import (
    LOG_FILE,
    RECORD_FILE,
    STATE_FILE,
    WEIGHTS_FILE,
    Autocast,
    NonFiniteLossError,
    StopSignals,
    TrainConfig,
    TrainingInterrupted,
    TrialSpec,
    check_fits,
    corpus_record,
    left_text,
)

__all__ = [
    "dropout_seed",
    "eval_steps",
    "computed_evals",
    "build_study_model",
    "replay_stream",
    "reevaluate_final",
    "initial_weights_sha256",
    "step0_losses",
    "StudySetup",
    "train_study_trial",
]

PROTOCOL = "study"


def dropout_seed(seed: int) -> int:
    """The CPU dropout generator's seed for trial ``seed``: 63 bits of SHA-256, so its masks
    share no draws with the stream (which starts from ``seed`` itself). On CUDA the device's
    generator is seeded with ``seed``, as the study's was."""
    digest = hashlib.sha256(f"charlm-study-dropout:{seed}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def eval_steps(cfg: TrainConfig) -> list[int]:
    """The iterations evaluated before their step: multiples of ``eval_interval`` and the last
    (the study's ``train_model``); the evaluation after training is not among them."""
    return [
        it for it in range(cfg.max_iters) if it % cfg.eval_interval == 0 or it == cfg.max_iters - 1
    ]


def computed_evals(cfg: TrainConfig) -> set[int]:
    """Which scheduled evaluations run their forward passes under ``study_evals`` (the final
    evaluation after training always does, ``max_iters`` stands for it)."""
    if cfg.study_evals == "all":
        return set(eval_steps(cfg)) | {cfg.max_iters}
    if cfg.study_evals == "first-and-final":
        return {0, cfg.max_iters}
    return {cfg.max_iters}


def build_study_model(
    config: ModelConfig, seed: int, device: torch.device
) -> tuple[StudyCharLM, torch.Generator, dict]:
    """The trial's model initialised as the study's (on the CPU, then moved), its stream and
    how dropout is drawn.

    Returns:
        (model on ``device``, stream generator, dropout description for the record).
    """
    if device.type == "cuda":
        source, described = DropoutSource(None), {"generator": "cuda default", "seed": seed}
    else:
        dseed = dropout_seed(seed)
        source = DropoutSource(torch.Generator().manual_seed(dseed))
        described = {"generator": "cpu, own", "seed": dseed}
    model, stream = seeded_build(seed, lambda: StudyCharLM(config, source))
    if device.type == "cuda":
        torch.cuda.manual_seed(seed)  # the study's set_seed; dropout draws from it
    return model.to(device), stream, described


def initial_weights_sha256(model: torch.nn.Module) -> str:
    """SHA-256 over the state dict's names, shapes and float32 bytes, in order."""
    h = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        t = tensor.detach().to("cpu", torch.float32).contiguous()
        h.update(f"{name}:{tuple(t.shape)};".encode())
        h.update(t.numpy().tobytes())
    return h.hexdigest()


def step0_losses(
    config: ModelConfig,
    corpus: Corpus,
    seed: int,
    eval_iters: int,
    batch_size: int,
    threads: int = 2,
    on_batch: Callable[[], None] | None = None,
) -> dict:
    """A trial's first evaluation under the study protocol, on the CPU in fp32 (``on_batch``
    is called after each of its 2 x ``eval_iters`` forward batches, for progress).

    The model is built as the study's (``torch.manual_seed(seed)``, then its constructor) and
    the step-0 evaluation draws ``eval_iters`` training and then validation batches from the
    stream (the study's ``estimate_loss`` at iteration 0).

    Returns:
        ``{"train_loss", "val_loss"}`` (nats, float32 means as the study's), the initial weights'
        ``init_sha256`` (:func:`initial_weights_sha256`) and ``n_params``.
    """
    determinism.configure(seed, threads)
    model, generator, _ = build_study_model(config, seed, torch.device("cpu"))
    digest = initial_weights_sha256(model)
    stream = StudyStream(generator, corpus, config.block_size, "cpu")
    losses = stream.estimate_loss(model, eval_iters, batch_size, on_batch=on_batch)
    return {
        "train_loss": losses["train"],
        "val_loss": losses["val"],
        "init_sha256": digest,
        "n_params": model.num_parameters(),
    }


def replay_stream(spec: TrialSpec, corpus: Corpus, upto: str = "end") -> torch.Generator:
    """The trial's stream, by drawing every number the trial drew without training: the
    initialisation (a model is built on the CPU), every evaluation and training batch, and with
    ``upto`` "end" also the final evaluation and the accuracy windows ("final": the stream just
    before the final evaluation). After "end" come the study's PD windows
    (:func:`charlm.study.pd.study_pd`)."""
    cfg = spec.train
    _, generator, _ = build_study_model(spec.model, spec.seed, torch.device("cpu"))
    stream = StudyStream(generator, corpus, spec.model.block_size, "cpu")
    due = set(eval_steps(cfg))
    for it in range(cfg.max_iters):
        if it in due:
            _draw_eval(stream, cfg)
        stream.starts("train", cfg.batch_size)
    if upto == "end":
        _draw_eval(stream, cfg)
        for split in ("train", "val"):
            stream.single_starts(split, ACCURACY_WINDOWS)
    return generator


def reevaluate_final(
    spec: TrialSpec, corpus: Corpus, model: torch.nn.Module, n_batches: int
) -> dict:
    """The trial's final evaluation again, on the same batches, from its trained weights: the
    losses of the first ``n_batches`` batches of each split (to compare with the recorded
    ``final_batch_losses``) and both accuracies in full. fp32 on the CPU.

    Returns:
        ``{"batch_losses": {"train": [...], "val": [...]}, "train_accuracy", "val_accuracy"}``.
    """
    cfg = spec.train
    generator = replay_stream(spec, corpus, upto="final")
    stream = StudyStream(generator, corpus, spec.model.block_size, "cpu")
    out = stream.estimate_loss(model, cfg.eval_iters, cfg.batch_size, compute=n_batches)
    for split in ("train", "val"):
        out[f"{split}_accuracy"] = stream.accuracy(model, split)
    return out


def _draw_eval(stream: StudyStream, cfg: TrainConfig) -> None:
    for split in ("train", "val"):
        for _ in range(cfg.eval_iters):
            stream.starts(split, cfg.batch_size)


def _optimizer(model: StudyCharLM, cfg: TrainConfig, device: torch.device):
    """PyTorch's AdamW over every parameter in one group; ``auto`` picks PyTorch's own default
    kernel (foreach on CUDA, the for-loop on the CPU)."""
    impl = cfg.optimizer_impl
    if impl == "auto":
        impl = "foreach" if device.type == "cuda" else "for-loop"
    kwargs = {"fused": True} if impl == "fused" else {"foreach": impl == "foreach"}
    opt = torch.optim.AdamW(
        model.parameters(),
        lr=cfg.lr,
        betas=(cfg.beta1, cfg.beta2),
        weight_decay=cfg.weight_decay,
        **kwargs,
    )
    return opt, impl


@dataclass
class StudySetup(Autocast):
    """A study-protocol trial ready to take optimizer steps: what
    :class:`charlm.train.TrainingSetup` is to the nanogpt protocol (the benchmark and the
    estimate use either). Build it with :meth:`build`."""

    spec: TrialSpec
    cfg: TrainConfig
    device: torch.device
    precision: str  # fp32 or bf16 ("auto" is fp32: the study trained in fp32)
    model: StudyCharLM
    optimizer: torch.optim.Optimizer
    optimizer_impl: str
    determinism: dict
    stream: StudyStream
    dropout: dict  # the dropout generator, for the record
    init_sha256: str

    @classmethod
    def build(
        cls, spec: TrialSpec, corpus: Corpus, device: str | torch.device | None = None
    ) -> StudySetup:
        """Configure determinism and threads, build the model as the study did (on the CPU,
        then moved to ``device``), its optimizer and the trial's stream over ``corpus``.

        Raises:
            ValueError: CUDA asked for but unavailable, or a bad seed/thread count.
        """
        cfg = spec.train
        device = determinism.resolve_device(str(device or cfg.device))
        if device.type == "cpu":
            cpu.keep_freed_memory()
        record = determinism.configure(spec.seed, cfg.threads, cfg.allow_tf32)
        model, generator, dropout = build_study_model(spec.model, spec.seed, device)
        init_sha = initial_weights_sha256(model)
        optimizer, impl = _optimizer(model, cfg, device)
        stream = StudyStream(generator, corpus, spec.model.block_size, device)
        precision = "bf16" if cfg.precision == "bf16" else "fp32"
        return cls(
            spec, cfg, device, precision, model, optimizer, impl, record, stream, dropout, init_sha
        )

    @property
    def generators(self) -> dict[str, torch.Generator]:
        """The explicit generators whose states a saved state holds."""
        out = {"stream": self.stream.generator}
        if self.model.dropout_source.generator is not None:
            out["dropout"] = self.model.dropout_source.generator
        return out

    def step(self, step: int = 0, train_data: torch.Tensor | None = None) -> torch.Tensor:
        """One optimizer step on the stream's next training batch (``step`` and
        ``train_data`` are not used: the stream decides the batch; they keep the signature
        of :meth:`charlm.train.TrainingSetup.step`).

        Returns:
            the batch's mean cross-entropy (nats), a detached 0-dim tensor on the device.
        """
        x, y = self.stream.batch("train", self.cfg.batch_size)
        with self.autocast():
            _, loss = self.model(x, y)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return loss.detach()

    def evaluate(self, at: int, compute: bool) -> dict:
        """The evaluation before step ``at`` (``max_iters``: after training) as a curve point
        ``{"step", "computed", "train_loss", "val_loss", "batch_losses"}`` (no losses when not
        computed)."""
        with self.autocast():
            losses = self.stream.estimate_loss(
                self.model, self.cfg.eval_iters, self.cfg.batch_size, compute
            )
        if losses is None:  # the batches were drawn, no forward pass ran: no losses
            return {"step": at, "computed": False, "batch_losses": None}
        return {
            "step": at,
            "computed": True,
            "train_loss": losses["train"],
            "val_loss": losses["val"],
            "batch_losses": losses["batch_losses"],
        }


def train_study_trial(
    spec: TrialSpec,
    corpus: Corpus,
    out_dir: str | Path,
    *,
    device: str | torch.device | None = None,
    stop_check: Callable[[int], bool] | None = None,
    progress: bool | None = None,
    log: Callable[[str], None] | None = None,
    where: dict | None = None,
) -> dict:
    """Train one trial under the study protocol; arguments, files, record and errors as
    :func:`charlm.train.train_trial`, which calls this for ``train.protocol = "study"``.

    The record adds ``protocol`` ("study"), per-curve-point ``computed`` (False, and no
    losses, where ``study_evals`` skipped the forward passes), ``study`` (the dropout
    generator, the initial weights' digest, the stream state's digest at the end, which
    evaluations were computed, the final evaluation's per-batch losses) and its ``final`` is the
    evaluation after training with the accuracies on 1,000 windows.
    """
    where = {} if where is None else where
    check_fits(spec, corpus)
    setup = StudySetup.build(spec, corpus, device)
    where["device"] = str(setup.device)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    state_path = out_dir / STATE_FILE
    book = {"step": 0, "elapsed_s": 0.0, "train_time_s": 0.0, "curves": [], "resumed_at": []}
    if state_path.is_file():
        try:
            book = checkpoint.load_state(state_path, setup.model, setup.optimizer, setup.generators)
        except ValueError as exc:
            raise ValueError(f"{exc}; delete it to train this trial from the start") from None
        book["resumed_at"].append(book["step"])
    _write_log(out_dir / LOG_FILE, book["curves"])
    where["saved"] = book["step"] if state_path.is_file() else None
    loop = _Loop(setup, book, out_dir, where, log, progress)
    loop.run(stop_check)
    final = loop.evaluate(spec.train.max_iters)
    with setup.autocast():
        accuracy = {s: setup.stream.accuracy(setup.model, s) for s in ("train", "val")}
    where["phase"] = "save"
    weights = checkpoint.save_weights(out_dir / WEIGHTS_FILE, setup.model, corpus.chars)
    record = _record(setup, corpus, book, final, accuracy, sha256_file(weights), loop.elapsed())
    atomic_write_json(out_dir / RECORD_FILE, record)
    state_path.unlink(missing_ok=True)
    return record


class _Loop:
    """The training loop of :func:`train_study_trial`: evaluations when due, state saves,
    stops, progress."""

    def __init__(self, setup, book, out_dir, where, log, progress) -> None:
        self.setup, self.book, self.out_dir, self.where = setup, book, out_dir, where
        self.write = log or (lambda line: print(line, file=sys.stderr, flush=True))
        self.use_bar = sys.stderr.isatty() if progress is None else progress
        self.started, self.elapsed0 = time.perf_counter(), book["elapsed_s"]
        self.wanted = computed_evals(setup.cfg)
        # this process's pace, for the time-left estimate: training steps and computed
        # evaluations timed apart (an evaluation costs 2 x eval_iters forward batches)
        self.pace = {"steps": 0, "step_s": 0.0, "evals": 0, "eval_s": 0.0}

    def elapsed(self) -> float:
        return self.elapsed0 + time.perf_counter() - self.started

    def evaluate(self, at: int) -> dict:
        self.where.update(phase="eval", step=at)
        started = time.perf_counter()
        point = self.setup.evaluate(at, at in self.wanted)
        if point["computed"]:
            self.pace["evals"] += 1
            self.pace["eval_s"] += time.perf_counter() - started
        point["elapsed_s"] = self.elapsed()
        if point["computed"] and not all(
            map(math.isfinite, (point["train_loss"], point["val_loss"]))
        ):
            raise NonFiniteLossError(at, self.where.get("saved"))
        return point

    def save(self, at: int) -> None:
        self.where["phase"] = "save"
        self.book.update(step=at, elapsed_s=self.elapsed())
        setup = self.setup
        checkpoint.save_state(
            self.out_dir / STATE_FILE, setup.model, setup.optimizer, self.book, setup.generators
        )
        self.where["saved"] = at

    def run(self, stop_check: Callable[[int], bool] | None) -> None:
        """Steps from the saved step to ``max_iters``; raises TrainingInterrupted on a stop."""
        cfg, book, curves = self.setup.cfg, self.book, self.book["curves"]
        due = set(eval_steps(cfg))
        step = book["step"]
        bar = tqdm(
            total=cfg.max_iters,
            initial=step,
            disable=not self.use_bar,
            unit="step",
            leave=False,
            file=sys.stderr,
        )
        self.setup.model.train()
        with StopSignals() as signals:
            while step < cfg.max_iters:
                if step in due and not (curves and curves[-1]["step"] == step):
                    self._evaluated(self.evaluate(step))
                reason = signals.received or (
                    "stop requested" if stop_check is not None and stop_check(step) else None
                )
                if reason:
                    self.save(step)
                    bar.close()
                    raise TrainingInterrupted(step, reason)
                self.where.update(phase="step", step=step)
                segment = time.perf_counter()
                self.setup.step()
                step += 1
                spent = time.perf_counter() - segment
                book["train_time_s"] += spent
                self.pace["steps"] += 1
                self.pace["step_s"] += spent
                bar.update(1)
        bar.close()

    def _evaluated(self, point: dict) -> None:
        point.pop("batch_losses")
        curves = self.book["curves"]
        curves.append(point)
        _write_log(self.out_dir / LOG_FILE, curves)
        if point["step"] > 0:
            self.save(point["step"])
        if self.use_bar:
            return
        losses = (
            f"train {point['train_loss']:.4f}  val {point['val_loss']:.4f}"
            if point["computed"]
            else "(evaluation not computed)"
        )
        self.write(
            f"  step {point['step']:>6}/{self.setup.cfg.max_iters}  {losses}  "
            f"{self.elapsed():.0f}s{self.time_left(point['step'])}"
        )

    def time_left(self, step: int) -> str:
        """``", ~12m left"``: the steps from ``step`` to the end at this process's mean time per
        step, plus the computed evaluations still due (the final one included) at its mean time
        per evaluation (until one is timed: 2 x eval_iters forward batches at a third of a
        training step each, the forward share of a step); "" until this process has timed a
        step."""
        pace, cfg = self.pace, self.setup.cfg
        if not pace["steps"]:
            return ""
        per_step = pace["step_s"] / pace["steps"]
        per_eval = (
            pace["eval_s"] / pace["evals"] if pace["evals"] else 2 * cfg.eval_iters * per_step / 3
        )
        evals = sum(1 for at in self.wanted if at > step)
        return left_text((cfg.max_iters - step) * per_step + evals * per_eval)


def _record(setup: StudySetup, corpus, book, final, accuracy, weights_sha, wall) -> dict:
    """The trial record (see :func:`train_study_trial`)."""
    cfg, mcfg = setup.cfg, setup.spec.model
    computed = [p for p in book["curves"] if p["computed"]]
    best = min([*computed, final], key=lambda p: p["val_loss"])  # the final one is computed
    tokens = cfg.max_iters * cfg.batch_size * mcfg.block_size
    stream_state = setup.stream.generator.get_state().numpy().tobytes()
    return {
        "protocol": PROTOCOL,
        "seed": setup.spec.seed,
        "data_seed": setup.spec.seed,
        "activation": mcfg.activation,
        "model": mcfg.to_dict(),
        "train": {
            **asdict(cfg),
            "precision_used": setup.precision,
            "device_used": str(setup.device),
            "optimizer_impl_used": setup.optimizer_impl,
        },
        "n_params": setup.model.num_parameters(),
        "final": {
            "step": cfg.max_iters,
            "train_loss": final["train_loss"],
            "val_loss": final["val_loss"],
            "train_accuracy": accuracy["train"],
            "val_accuracy": accuracy["val"],
        },
        "best": {"step": best["step"], "val_loss": best["val_loss"]},
        "wall_time_s": wall,
        "tokens_per_s": tokens / book["train_time_s"] if book["train_time_s"] > 0 else None,
        "weights_sha256": weights_sha,
        "curves": book["curves"],
        "study": {
            "dropout": setup.dropout,
            "init_sha256": setup.init_sha256,
            "stream_end_sha256": hashlib.sha256(stream_state).hexdigest(),
            "evaluations_computed": [p["step"] for p in computed] + [cfg.max_iters],
            "final_batch_losses": final["batch_losses"],
        },
        "data": corpus_record(corpus),
        "determinism": setup.determinism,
        "environment": platforms.record(setup.device, setup.precision),
        "resumed_at_steps": book["resumed_at"],
    }


def _write_log(path: Path, curves: list[dict]) -> None:
    atomic_write_text(path, "".join(json.dumps(r, sort_keys=True) + "\n" for r in curves))
