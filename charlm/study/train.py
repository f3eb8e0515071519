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

import contextlib
import hashlib
import json
import math
import sys
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import torch
from tqdm import tqdm

from charlm import checkpoint, cpu, determinism
from charlm.data import Corpus
from charlm.io import atomic_write_json, atomic_write_text, sha256_file
from charlm.model import ModelConfig
from charlm.study.model import DropoutSource, StudyCharLM
from charlm.study.stream import ACCURACY_WINDOWS, StudyStream, seeded_build
from charlm.train import (
    LOG_FILE,
    RECORD_FILE,
    STATE_FILE,
    WEIGHTS_FILE,
    NonFiniteLossError,
    StopSignals,
    TrainConfig,
    TrainingInterrupted,
    TrialSpec,
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
) -> dict:
    """A trial's first evaluation under the study protocol, on the CPU in fp32.

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
    losses = stream.estimate_loss(model, eval_iters, batch_size)
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

    The record adds ``protocol`` ("study"), per-curve-point ``computed`` (False where
    ``study_evals`` skipped the forward passes and the losses are null), ``study`` (the dropout
    generator, the initial weights' digest, the stream state's digest at the end, which
    evaluations were computed, the final evaluation's per-batch losses) and its ``final`` is the
    evaluation after training with the accuracies on 1,000 windows.
    """
    where = {} if where is None else where
    cfg, mcfg, out_dir = spec.train, spec.model, Path(out_dir)
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
    write = log or (lambda line: print(line, file=sys.stderr, flush=True))
    device = determinism.resolve_device(str(device or cfg.device))
    where["device"] = str(device)
    precision = "bf16" if cfg.precision == "bf16" else "fp32"  # auto: fp32, as the study ran
    if device.type == "cpu":
        cpu.keep_freed_memory()
    det = determinism.configure(spec.seed, cfg.threads, cfg.allow_tf32)
    model, generator, dropout = build_study_model(mcfg, spec.seed, device)
    init_sha = initial_weights_sha256(model)
    optimizer, impl = _optimizer(model, cfg, device)
    stream = StudyStream(generator, corpus, mcfg.block_size, device)
    generators = {"stream": generator}
    if model.dropout_source.generator is not None:
        generators["dropout"] = model.dropout_source.generator

    def autocast():
        if precision == "bf16":
            return torch.autocast(device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    state_path, log_path = out_dir / STATE_FILE, out_dir / LOG_FILE
    out_dir.mkdir(parents=True, exist_ok=True)
    book = {"step": 0, "elapsed_s": 0.0, "train_time_s": 0.0, "curves": [], "resumed_at": []}
    if state_path.is_file():
        try:
            book = checkpoint.load_state(state_path, model, optimizer, generators)
        except ValueError as exc:
            raise ValueError(f"{exc}; delete it to train this trial from the start") from None
        book["resumed_at"].append(book["step"])
    curves = book["curves"]
    _write_log(log_path, curves)
    where["saved"] = book["step"] if state_path.is_file() else None

    due, wanted = set(eval_steps(cfg)), computed_evals(cfg)
    use_bar = sys.stderr.isatty() if progress is None else progress
    bar = tqdm(
        total=cfg.max_iters,
        initial=book["step"],
        disable=not use_bar,
        unit="step",
        leave=False,
        file=sys.stderr,
    )
    step, started, elapsed0 = book["step"], time.perf_counter(), book["elapsed_s"]

    def elapsed() -> float:
        return elapsed0 + time.perf_counter() - started

    batches: dict[int, dict | None] = {}

    def evaluate(at: int) -> dict:
        where.update(phase="eval", step=at)
        compute = at in wanted
        with autocast():
            losses = stream.estimate_loss(model, cfg.eval_iters, cfg.batch_size, compute)
        point = {"step": at, "computed": compute, "elapsed_s": elapsed()}
        point["train_loss"] = losses["train"] if losses else None
        point["val_loss"] = losses["val"] if losses else None
        batches[at] = losses["batch_losses"] if losses else None
        if losses and not (math.isfinite(losses["train"]) and math.isfinite(losses["val"])):
            raise NonFiniteLossError(at, where.get("saved"))
        return point

    def save(at: int) -> None:
        where["phase"] = "save"
        book.update(step=at, elapsed_s=elapsed(), curves=curves)
        checkpoint.save_state(state_path, model, optimizer, book, generators)
        where["saved"] = at

    model.train()
    with StopSignals() as signals:
        while step < cfg.max_iters:
            if step in due and not (curves and curves[-1]["step"] == step):
                curves.append(evaluate(step))
                _write_log(log_path, curves)
                if step > 0:
                    save(step)
                if not use_bar and curves[-1]["computed"]:
                    write(
                        f"  step {step:>6}/{cfg.max_iters}  train "
                        f"{curves[-1]['train_loss']:.4f}  val {curves[-1]['val_loss']:.4f}  "
                        f"{elapsed():.0f}s"
                    )
            reason = signals.received or (
                "stop requested" if stop_check is not None and stop_check(step) else None
            )
            if reason:
                save(step)
                bar.close()
                raise TrainingInterrupted(step, reason)
            where.update(phase="step", step=step)
            segment = time.perf_counter()
            x, y = stream.batch("train", cfg.batch_size)
            with autocast():
                _, loss = model(x, y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
            book["train_time_s"] += time.perf_counter() - segment
            bar.update(1)
    bar.close()

    final = evaluate(cfg.max_iters)
    final_batches = batches[cfg.max_iters]
    with autocast():
        accuracy = {s: stream.accuracy(model, s) for s in ("train", "val")}
    where["phase"] = "save"
    weights_path = checkpoint.save_weights(out_dir / WEIGHTS_FILE, model, corpus.chars)
    tokens = cfg.max_iters * cfg.batch_size * mcfg.block_size
    computed = [p for p in curves if p["computed"]]
    best = min(computed, key=lambda p: p["val_loss"]) if computed else None
    record = {
        "protocol": PROTOCOL,
        "seed": spec.seed,
        "data_seed": spec.seed,
        "activation": mcfg.activation,
        "model": mcfg.to_dict(),
        "train": {
            **asdict(cfg),
            "precision_used": precision,
            "device_used": str(device),
            "optimizer_impl_used": impl,
        },
        "n_params": model.num_parameters(),
        "final": {
            "step": cfg.max_iters,
            "train_loss": final["train_loss"],
            "val_loss": final["val_loss"],
            "train_accuracy": accuracy["train"],
            "val_accuracy": accuracy["val"],
        },
        "best": {"step": best["step"], "val_loss": best["val_loss"]} if best else None,
        "wall_time_s": elapsed(),
        "tokens_per_s": tokens / book["train_time_s"] if book["train_time_s"] > 0 else None,
        "weights_sha256": sha256_file(weights_path),
        "curves": curves,
        "study": {
            "dropout": dropout,
            "init_sha256": init_sha,
            "stream_end_sha256": hashlib.sha256(
                generator.get_state().numpy().tobytes()
            ).hexdigest(),
            "evaluations_computed": [p["step"] for p in computed] + [cfg.max_iters],
            "final_batch_losses": final_batches,
        },
        "data": {
            "sha256": corpus.sha256,
            "n_train": len(corpus.train),
            "n_val": len(corpus.val),
            "vocab_size": corpus.vocab_size,
        },
        "determinism": det,
        "environment": determinism.platform_record(device, precision),
        "resumed_at_steps": book["resumed_at"],
    }
    atomic_write_json(out_dir / RECORD_FILE, record)
    state_path.unlink(missing_ok=True)
    return record


def _write_log(path: Path, curves: list[dict]) -> None:
    atomic_write_text(path, "".join(json.dumps(r, sort_keys=True) + "\n" for r in curves))
