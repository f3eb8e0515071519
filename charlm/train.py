"""Train one trial (model config, training config, seed) reproducibly into a directory.

The directory receives, all written atomically:

- ``log.jsonl``: one record per evaluation (step, losses, accuracies, learning rate, elapsed
  seconds, tokens/s);
- ``state.safetensors``: the resumable state, saved at every eval interval and on SIGINT/SIGTERM,
  removed when the trial finishes;
- ``weights.safetensors``: the final weights;
- ``trial.json``: the trial record (configs as resolved, metrics, curves, weights digest,
  determinism settings and platform), written last: its presence marks a finished trial.

If ``state.safetensors`` exists the run resumes from it and ends with weights byte-identical to an
uninterrupted run's on the same platform.

This module holds nanoGPT's recipe (the ``nanogpt`` protocol) and :func:`train_trial`, which
dispatches a ``study``-protocol trial to :mod:`charlm.study.train`. What both share (the
settings, the trial files, the errors) is :mod:`charlm.trial`, re-exported here.
"""

from __future__ import annotations

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
from charlm.data import Corpus, batch_seed, get_batch
from charlm.io import atomic_write_json, atomic_write_text, sha256_file
from charlm.memory import TrainingOutOfMemory, out_of_memory
from charlm.metrics import EvalSet, evaluate
from charlm.model import CharLM
from charlm.study.train import train_study_trial
from charlm.trial import (
    LOG_FILE,
    OPTIMIZER_IMPLS,
    PRECISIONS,
    PROTOCOLS,
    RECORD_FILE,
    STATE_FILE,
    STUDY_ONLY,
    WEIGHTS_FILE,
    Autocast,
    NonFiniteLossError,
    StopSignals,
    TrainConfig,
    TrainingInterrupted,
    TrialSpec,
    check_fits,
    corpus_record,
    is_finished,
    left_text,
    resolve_precision,
)

__all__ = [
    "PRECISIONS",
    "PROTOCOLS",
    "OPTIMIZER_IMPLS",
    "TrainConfig",
    "TrialSpec",
    "StopSignals",
    "TrainingInterrupted",
    "NonFiniteLossError",
    "TrainingOutOfMemory",
    "out_of_memory",
    "learning_rate",
    "resolve_precision",
    "train_trial",
    "is_finished",
    "left_text",
    "check_fits",
    "corpus_record",
    "Autocast",
    "LOG_FILE",
    "RECORD_FILE",
    "STATE_FILE",
    "WEIGHTS_FILE",
]


def learning_rate(step: int, cfg: TrainConfig) -> float:
    """Learning rate for optimizer step ``step`` (0-based) of a resolved config.

    Linear warm-up from ``lr / (warmup_iters + 1)`` to ``lr`` over ``warmup_iters`` steps
    (Goyal et al. 2017, Section 2.2), then half-cosine decay to ``min_lr`` at ``lr_decay_iters``
    (Loshchilov & Hutter 2017, SGDR, Eq. 5, one cycle), constant ``min_lr`` afterwards.
    """
    if step < cfg.warmup_iters:
        return cfg.lr * (step + 1) / (cfg.warmup_iters + 1)
    if step >= cfg.lr_decay_iters:
        return cfg.min_lr
    progress = (step - cfg.warmup_iters) / (cfg.lr_decay_iters - cfg.warmup_iters)
    return cfg.min_lr + 0.5 * (1.0 + math.cos(math.pi * progress)) * (cfg.lr - cfg.min_lr)


def _time_left(step: int, max_iters: int, steps_done: int, seconds: float) -> str:
    """``", ~4m left"``: the steps still to take at this process's pace so far (its steps and
    evaluations together); "" before the first step or after the last."""
    if steps_done <= 0 or step >= max_iters:
        return ""
    return left_text((max_iters - step) * seconds / steps_done)


def _make_optimizer(model: CharLM, cfg: TrainConfig, device: torch.device) -> tuple:
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    groups = [
        {"params": decay, "weight_decay": cfg.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    impl = cfg.optimizer_impl
    if impl == "auto":
        impl = "fused"
    kwargs = {"fused": True} if impl == "fused" else {"foreach": impl == "foreach"}
    opt = torch.optim.AdamW(groups, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), **kwargs)
    return opt, impl


def _read_log(path: Path, upto_step: int) -> list[dict]:
    if not path.is_file():
        return []
    records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
    return [r for r in records if r["step"] <= upto_step]


@dataclass
class TrainingSetup(Autocast):
    """A trial's model, optimizer and settings, ready to take optimizer steps.

    Built by :meth:`build`, which also makes the process deterministic for the trial
    (:func:`charlm.determinism.configure`). :meth:`step` is the whole training step, shared by
    :func:`train_trial` and the benchmark.
    """

    spec: TrialSpec
    cfg: TrainConfig  # resolved
    device: torch.device
    precision: str  # resolved: fp32 or bf16
    model: CharLM
    train_model: torch.nn.Module  # the model, or its torch.compile wrapper
    optimizer: torch.optim.Optimizer
    optimizer_impl: str  # resolved: fused, foreach or for-loop
    determinism: dict

    @classmethod
    def build(cls, spec: TrialSpec, device: str | torch.device | None = None) -> TrainingSetup:
        """Seed, configure determinism and threads, create the model (initialised on the CPU
        generator, then moved to ``device``) and its AdamW optimizer.

        Raises:
            ValueError: CUDA asked for but unavailable, or a bad seed/thread count.
        """
        cfg = spec.train.resolved()
        device = determinism.resolve_device(str(device or cfg.device))
        precision = resolve_precision(cfg.precision, device)
        if device.type == "cpu":
            cpu.keep_freed_memory()
        record = determinism.configure(spec.seed, cfg.threads, cfg.allow_tf32)
        model = CharLM(spec.model).to(device)
        optimizer, impl = _make_optimizer(model, cfg, device)
        train_model = model
        if cfg.compile:
            import torch._inductor.config as inductor_config

            inductor_config.fallback_random = True  # dropout masks as in eager mode
            train_model = torch.compile(model)
        return cls(spec, cfg, device, precision, model, train_model, optimizer, impl, record)

    def step(self, step: int, train_data: torch.Tensor) -> torch.Tensor:
        """Optimizer step number ``step`` (0-based) on its batch of ``train_data``.

        Sets the scheduled learning rate, draws batch ``step`` (:func:`charlm.data.batch_seed`),
        runs forward and backward, clips the gradient norm and updates. No host synchronisation.

        Returns:
            the batch's mean cross-entropy (nats), a detached 0-dim tensor on the device.
        """
        cfg = self.cfg
        lr = learning_rate(step, cfg)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        seed = batch_seed(self.spec.resolved_data_seed, "train", step)
        x, y = get_batch(train_data, self.spec.model.block_size, cfg.batch_size, seed)
        x, y = x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)
        with self.autocast():
            _, loss = self.train_model(x, y)
        loss.backward()
        if cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return loss.detach()


def train_trial(
    spec: TrialSpec,
    corpus: Corpus,
    out_dir: str | Path,
    *,
    device: str | torch.device | None = None,
    stop_check: Callable[[int], bool] | None = None,
    progress: bool | None = None,
    log: Callable[[str], None] | None = None,
) -> dict:
    """Train one trial into ``out_dir``, resuming from its saved state if there is one.

    Args:
        spec: the trial.
        corpus: the encoded text; its vocabulary size must equal ``spec.model.vocab_size``.
        out_dir: the trial's directory (created if missing).
        device: overrides ``spec.train.device`` (e.g. a rank's own GPU).
        stop_check: called with the step before each optimizer step; returning True saves the
            state and raises :class:`TrainingInterrupted` (used for time limits and tests).
        progress: tqdm bar (True), plain lines (False), or bar only on a terminal (None).
        log: where plain progress lines go (default: stderr).

    Returns:
        the trial record, also written to ``out_dir/trial.json``.

    Raises:
        ValueError: a setting that does not fit the corpus (checked before any work), or a saved
            state that cannot be read (the message says to delete it).
        TrainingInterrupted: SIGINT, SIGTERM or ``stop_check``; the state was saved first.
        NonFiniteLossError: the loss became NaN/inf; the last eval-interval state is kept.
        TrainingOutOfMemory: the CPU or CUDA allocator could not serve a request (one line
            naming the setting to lower and the memory asked for); the state saved last, if
            any, is kept as it was.
    """
    where: dict = {"phase": "build", "step": 0, "saved": None}
    trainer = train_study_trial if spec.train.protocol == "study" else _train_trial
    try:
        return trainer(
            spec,
            corpus,
            Path(out_dir),
            device=device,
            stop_check=stop_check,
            progress=progress,
            log=log,
            where=where,
        )
    except Exception as exc:
        error = out_of_memory(
            exc, spec, where["phase"], where["step"], where["saved"], where.get("device", device)
        )
        if error is None:
            raise
        raise error from None


def _train_trial(
    spec: TrialSpec,
    corpus: Corpus,
    out_dir: Path,
    *,
    device: str | torch.device | None,
    stop_check: Callable[[int], bool] | None,
    progress: bool | None,
    log: Callable[[str], None] | None,
    where: dict,
) -> dict:
    """:func:`train_trial`'s work; ``where`` is kept up to date with what it is doing
    (``phase``: build, eval, step or save; ``step``; ``saved``: the step of the saved state)
    for the out-of-memory message.
    """
    cfg = spec.train.resolved()
    mcfg = spec.model
    check_fits(spec, corpus)
    write = log or (lambda line: print(line, file=sys.stderr, flush=True))
    setup = TrainingSetup.build(spec, device)
    device, model, optimizer = setup.device, setup.model, setup.optimizer
    autocast_dtype = setup.autocast_dtype
    where["device"] = str(device)

    val_set = EvalSet.val(corpus.val, mcfg.block_size)
    train_set = EvalSet.train_sample(corpus.train, len(corpus.val), mcfg.block_size)
    state_path, log_path = out_dir / STATE_FILE, out_dir / LOG_FILE
    out_dir.mkdir(parents=True, exist_ok=True)

    book = {"step": 0, "elapsed_s": 0.0, "train_time_s": 0.0, "best": None, "resumed_at": []}
    if state_path.is_file():
        try:
            book = checkpoint.load_state(state_path, model, optimizer)
        except ValueError as exc:
            raise ValueError(f"{exc}; delete it to train this trial from the start") from None
        book["resumed_at"].append(book["step"])
    curves = _read_log(log_path, book["step"])
    atomic_write_text(log_path, "".join(json.dumps(r, sort_keys=True) + "\n" for r in curves))
    last_saved = book["step"] if state_path.is_file() else None
    where["saved"] = last_saved

    tokens_per_step = cfg.batch_size * mcfg.block_size
    loss_buf = torch.zeros(cfg.log_interval, device=device)
    use_bar = sys.stderr.isatty() if progress is None else progress
    bar = tqdm(
        total=cfg.max_iters,
        initial=book["step"],
        disable=not use_bar,
        unit="step",
        leave=False,
        file=sys.stderr,
    )

    step = start_step = book["step"]
    session_start = time.perf_counter()
    elapsed0 = book["elapsed_s"]
    segment_start, segment_steps = time.perf_counter(), 0

    def elapsed() -> float:
        return elapsed0 + time.perf_counter() - session_start

    def save(at_step: int) -> None:
        book.update(step=at_step, elapsed_s=elapsed())
        where["phase"] = "save"
        checkpoint.save_state(state_path, model, optimizer, book)
        where["saved"] = at_step

    model.train()
    with StopSignals() as signals:
        while True:
            at_eval = step % cfg.eval_interval == 0 or step == cfg.max_iters
            if at_eval and not (curves and curves[-1]["step"] == step):
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                seg_time = time.perf_counter() - segment_start
                book["train_time_s"] += seg_time
                where.update(phase="eval", step=step)
                tr = evaluate(model, train_set, cfg.eval_batch_size, device, autocast_dtype)
                va = evaluate(model, val_set, cfg.eval_batch_size, device, autocast_dtype)
                if not all(map(math.isfinite, (tr["loss"], va["loss"]))):
                    raise NonFiniteLossError(step, last_saved)
                record = {
                    "step": step,
                    "train_loss": tr["loss"],
                    "val_loss": va["loss"],
                    "train_accuracy": tr["accuracy"],
                    "val_accuracy": va["accuracy"],
                    "lr": learning_rate(min(step, cfg.max_iters - 1), cfg),
                    "elapsed_s": elapsed(),
                }
                if segment_steps:  # training throughput since the previous evaluation
                    record["tokens_per_s"] = segment_steps * tokens_per_step / seg_time
                curves.append(record)
                if book["best"] is None or va["loss"] < book["best"]["val_loss"]:
                    book["best"] = {"step": step, "val_loss": va["loss"]}
                atomic_write_text(
                    log_path, "".join(json.dumps(r, sort_keys=True) + "\n" for r in curves)
                )
                if 0 < step < cfg.max_iters:
                    save(step)
                    last_saved = step
                if not use_bar:
                    write(
                        f"  step {step:>6}/{cfg.max_iters}  train {tr['loss']:.4f}  "
                        f"val {va['loss']:.4f}  val acc {va['accuracy']:.2f}%  "
                        f"{elapsed():.0f}s"
                        + _time_left(
                            step,
                            cfg.max_iters,
                            step - start_step,
                            time.perf_counter() - session_start,
                        )
                    )
                segment_start, segment_steps = time.perf_counter(), 0
            if step == cfg.max_iters:
                break
            reason = signals.received or (
                "stop requested" if stop_check is not None and stop_check(step) else None
            )
            if reason:
                book["train_time_s"] += time.perf_counter() - segment_start
                save(step)
                bar.close()
                raise TrainingInterrupted(step, reason)

            where.update(phase="step", step=step)
            loss_buf[step % cfg.log_interval] = setup.step(step, corpus.train)
            step += 1
            segment_steps += 1
            if step % cfg.log_interval == 0 or step == cfg.max_iters:
                n = (step - 1) % cfg.log_interval + 1
                window = loss_buf[:n].tolist()  # the one host synchronisation per log interval
                bad = [i for i, v in enumerate(window) if not math.isfinite(v)]
                if bad:
                    bar.close()
                    raise NonFiniteLossError(step - n + bad[0], last_saved)
                bar.set_postfix(loss=f"{sum(window) / n:.4f}", refresh=False)
                bar.update(step - bar.n)
    bar.close()

    where["phase"] = "save"
    weights_path = checkpoint.save_weights(out_dir / WEIGHTS_FILE, model, corpus.chars)
    final = curves[-1]
    record = {
        "protocol": cfg.protocol,
        "seed": spec.seed,
        "data_seed": spec.resolved_data_seed,
        "activation": mcfg.activation,
        "model": mcfg.to_dict(),
        "train": {
            **{k: v for k, v in asdict(cfg).items() if k not in STUDY_ONLY},
            "precision_used": setup.precision,
            "device_used": str(device),
            "optimizer_impl_used": setup.optimizer_impl,
        },
        "n_params": model.num_parameters(),
        "final": {
            k: final[k]
            for k in ("step", "train_loss", "val_loss", "train_accuracy", "val_accuracy")
        },
        "best": book["best"],
        "wall_time_s": elapsed(),
        "tokens_per_s": cfg.max_iters * tokens_per_step / book["train_time_s"]
        if book["train_time_s"] > 0
        else None,
        "weights_sha256": sha256_file(weights_path),
        "curves": curves,
        "data": corpus_record(corpus),
        "determinism": setup.determinism,
        "environment": platforms.record(device, setup.precision),
        "resumed_at_steps": book["resumed_at"],
    }
    atomic_write_json(out_dir / RECORD_FILE, record)
    state_path.unlink(missing_ok=True)
    return record
