"""How long training takes: one rule, fed by times measured on this machine.

The rule (:func:`trial_seconds`): a trial that has taken ``start`` of its ``max_iters``
optimizer steps still needs

    (max_iters - start) x step_s  +  evaluations left x eval_s  +  setup_s

seconds, where an evaluation (train sample and val split, every ``eval_interval`` steps and at
the end, :func:`evaluations_left`) includes the state save that follows it, and ``setup_s`` is
what a trial costs once (building the model, its optimizer and the evaluation text). A sweep
adds ``once_s`` once per model and speed setting: what the first trial of a process costs more
(the first build, step and evaluation batch set up kernels and memory that later trials reuse).

The times come from one of two measurements, each at the config's real size:

- :func:`measure` (``run --dry-run``): training steps taken exactly as ``run`` takes them
  (:meth:`charlm.train.TrainingSetup.step`, or :class:`charlm.study.train.StudySetup`'s under
  the study protocol; the config's batch size, precision, kernels and threads) after a warm-up
  step, and evaluation batches at ``eval_batch_size``, scaled to the evaluation's whole text
  (study protocol: to its 2 x ``eval_iters`` batches, and the 2,000 accuracy windows once per
  trial; evaluations that ``study_evals`` skips cost nothing);
- :func:`timings_from_records` (the ``about ... left`` of a running sweep): the trials that
  have finished in this run, from their records (training time from their tokens/s, the rest of
  their wall time per evaluation).

Both are wall-clock times, so they hold for the machine's load while measured: on a machine
that gets busier the sweep takes longer than estimated.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from charlm import checkpoint
from charlm.activations import canonical_name, make_activation
from charlm.data import Corpus
from charlm.memory import out_of_memory
from charlm.metrics import EvalSet, evaluate
from charlm.study.stream import ACCURACY_WINDOWS
from charlm.train import TrainConfig, TrainingSetup, TrialSpec
from reproduce import protocols

__all__ = [
    "Timings",
    "evaluations_left",
    "trial_seconds",
    "speed_key",
    "measure",
    "activation_seconds",
    "timings_from_records",
    "format_duration",
]


@dataclass(frozen=True)
class Timings:
    """Measured costs of training one trial, in seconds of wall-clock time.

    Attributes:
        step_s: one optimizer step (forward, backward, clipping, update).
        eval_s: one evaluation of the train sample and the val split, with its state save.
        setup_s: what a trial costs once besides its steps and evaluations.
        basis: what the figures were measured from, in words.
        once_s: what the first trial of a process with these settings costs more than
            ``setup_s`` (first build, first step, first evaluation batch); a sweep counts it
            once.
    """

    step_s: float
    eval_s: float
    setup_s: float = 0.0
    basis: str = ""
    once_s: float = 0.0


def evaluations_left(max_iters: int, eval_interval: int, start: int = 0) -> int:
    """Evaluations a trial still runs after ``start`` steps: at every multiple of
    ``eval_interval`` after ``start`` and at ``max_iters`` (as :func:`charlm.train.train_trial`
    does), plus the one at step 0 for a trial that has not started (``start == 0``).

    Raises:
        ValueError: ``start`` outside ``[0, max_iters]``, or a non-positive interval.
    """
    if eval_interval < 1 or not 0 <= start <= max_iters:
        raise ValueError(
            f"need 0 <= start <= max_iters and eval_interval >= 1, got start {start}, "
            f"max_iters {max_iters}, eval_interval {eval_interval}"
        )
    if start == max_iters:
        return 0
    count = max_iters // eval_interval - start // eval_interval
    if max_iters % eval_interval:
        count += 1  # the final evaluation, off the interval
    return count + (start == 0)


def trial_seconds(train: TrainConfig, timings: Timings, start: int = 0) -> float:
    """Seconds a trial with settings ``train`` still needs after ``start`` of its steps: the
    rule in the module docstring. ``setup_s`` counts for a resumed trial too (it builds its
    model again).

    Raises:
        ValueError: as :func:`evaluations_left`.
    """
    steps = train.max_iters - start
    evaluations = protocols.evaluations_left(train, start)
    if evaluations is None:
        evaluations = evaluations_left(train.max_iters, train.eval_interval, start)
    return steps * timings.step_s + evaluations * timings.eval_s + timings.setup_s


def speed_key(spec: TrialSpec) -> tuple:
    """What a trial's step and evaluation times depend on: its model (but not the activation,
    a small difference that would cost a measurement per activation), batch sizes and speed
    settings. Trials with the same key share one measurement."""
    t = spec.train
    return (
        replace(spec.model, activation="gelu"),
        t.batch_size,
        t.eval_batch_size,
        t.precision,
        t.allow_tf32,
        t.compile,
        t.optimizer_impl,
        t.threads,
        t.device,
    )


def _sync(setup: TrainingSetup, value: torch.Tensor | None = None) -> None:
    if setup.device.type == "cuda":
        torch.cuda.synchronize(setup.device)
    elif value is not None:
        value.item()


def _timed(run, setup: TrainingSetup) -> float:
    start = time.perf_counter()
    out = run()
    _sync(setup, out if isinstance(out, torch.Tensor) else None)
    return time.perf_counter() - start


def measure(
    spec: TrialSpec,
    corpus: Corpus,
    activations: tuple[str, ...] = (),
    *,
    min_steps: int = 1,
    max_steps: int = 20,
    budget_s: float = 3.0,
) -> dict[str, Timings]:
    """Time one trial's work at its real size on this machine, training nothing to keep.

    Builds the trial's model and optimizer twice (:meth:`charlm.train.TrainingSetup.build`, which
    seeds and configures this process as training does; the second build is what each later
    trial pays), takes one untimed warm-up step, then times between ``min_steps`` and
    ``max_steps`` training steps (their median; stopping once they took ``budget_s``); times one
    untimed and then up to three evaluation batches of ``eval_batch_size`` windows (within
    ``budget_s``) and scales them to the evaluation's windows; and times one state save into a
    temporary directory.

    For each other name in ``activations`` the same model with that activation differs only in
    its MLPs' activation: its step and evaluation times are the measured ones plus, per layer,
    the difference between the two activations' own times (forward and backward for a step,
    forward for an evaluation) on the MLP's (batch x context, 4 x n_embd) tensor in the step's
    precision (:func:`activation_seconds`), which costs far less than timing each model's
    steps.

    Returns:
        activation -> :class:`Timings`, for the trial's activation (first; its ``basis`` says
        what was measured) and each other of ``activations`` (its ``basis``: the difference
        per step, e.g. ``smelu-0.5 +0.12 s per step``); ``setup_s`` is the second build's
        time, ``once_s`` the first build's, the warm-up step's and the first evaluation
        batch's time beyond a later one's.

    Raises:
        ValueError: as :meth:`~charlm.train.TrainingSetup.build` (an unavailable device).
        charlm.memory.TrainingOutOfMemory: out of memory (training would fail the same way),
            naming the setting to lower and the memory asked for.
    """
    phase = ["build"]
    try:
        return _measure(spec, corpus, activations, min_steps, max_steps, budget_s, phase)
    except Exception as exc:
        error = out_of_memory(
            exc, spec, phase[0], 0, None, note="found while timing it for the estimate"
        )
        if error is None:
            raise
        raise error from None


def _measure(
    spec: TrialSpec,
    corpus: Corpus,
    activations: tuple[str, ...],
    min_steps: int,
    max_steps: int,
    budget_s: float,
    phase: list[str],
) -> dict[str, Timings]:
    """:func:`measure`'s work; ``phase[0]`` says what it is doing (build, step, eval or
    save) for the out-of-memory message."""
    cfg, model = spec.train, spec.model
    block = model.block_size

    def build() -> tuple[TrainingSetup, list[EvalSet], float]:
        started = time.perf_counter()
        setup = protocols.build_setup(spec, corpus)
        sets = [
            EvalSet.train_sample(corpus.train, len(corpus.val), block),
            EvalSet.val(corpus.val, block),
        ]
        return setup, sets, time.perf_counter() - started

    first_built_s = build()[2]
    setup, sets, built_s = build()  # as each later trial builds
    phase[0] = "step"
    warm_s = _timed(lambda: setup.step(0, corpus.train), setup)
    steps: list[float] = []
    while len(steps) < max_steps and (len(steps) < min_steps or sum(steps) < budget_s):
        number = len(steps) + 1
        steps.append(_timed(lambda: setup.step(number, corpus.train), setup))  # noqa: B023
    step_s = statistics.median(steps)

    x, y = sets[1].x[0], sets[1].y[0]  # full-length val windows
    batch = min(cfg.eval_batch_size, len(x))

    def one_batch() -> None:
        part = EvalSet([x[:batch]], [y[:batch]])
        evaluate(setup.model, part, cfg.eval_batch_size, setup.device, setup.autocast_dtype)
        _sync(setup)

    phase[0] = "eval"
    first_s = _timed(one_batch, setup)
    batches: list[float] = []
    while len(batches) < 3 and (not batches or sum(batches) < budget_s):
        batches.append(_timed(one_batch, setup))
    per_window = statistics.fmean(batches) / batch
    windows = sum(len(t) for s in sets for t in s.x)
    once_per_trial = 0.0
    if cfg.protocol == "study":  # eval_iters random batches per split; 2,000 accuracy windows
        windows = 2 * cfg.eval_iters * cfg.batch_size
        once_per_trial = 2 * ACCURACY_WINDOWS * per_window
    phase[0] = "save"
    with tempfile.TemporaryDirectory(prefix="charlm-estimate-") as tmp:
        book = {"step": 1, "elapsed_s": 0.0, "train_time_s": 0.0, "best": None, "resumed_at": []}
        save_s = _timed(
            lambda: checkpoint.save_state(
                Path(tmp) / "state.safetensors", setup.model, setup.optimizer, book
            ),
            setup,
        )
    eval_s = windows * per_window + save_s
    setup_s = built_s + once_per_trial
    once_s = (
        max(0.0, first_built_s - built_s)
        + max(0.0, warm_s - step_s)
        + max(0.0, first_s - statistics.fmean(batches))
    )
    basis = (
        f"measured here at the config's size: {_seconds(step_s)} per step at batch "
        f"{cfg.batch_size} (median of {len(steps)} after a warm-up step), {_seconds(eval_s)} per "
        f"evaluation of {windows} windows with its state save, {_seconds(setup_s)} per trial "
        f"to set up and {_seconds(once_s)} once"
    )
    out = {model.activation: Timings(step_s, eval_s, setup_s, basis, once_s)}
    others = sorted({canonical_name(a) for a in activations} - {model.activation})
    if not others:
        return out
    phase[0] = "step"
    rows = cfg.batch_size * block
    shape = (rows, 4 * model.n_embd)
    costs = {
        name: activation_seconds(name, shape, setup.autocast_dtype, setup.device)
        for name in [model.activation, *others]
    }
    base_fwd, base_both = costs[model.activation]
    eval_batches = windows * block / rows  # evaluation text in units of the step's tensor
    for name in others:
        fwd, both = costs[name]
        extra_step = model.n_layer * (both - base_both)
        extra_eval = model.n_layer * (fwd - base_fwd) * eval_batches
        out[name] = Timings(
            max(step_s + extra_step, 0.0),
            max(eval_s + extra_eval, 0.0),
            setup_s,
            f"{name} {extra_step:+.2g} s per step",
        )
    return out


def activation_seconds(
    name: str,
    shape: tuple[int, int],
    dtype: torch.dtype | None = None,
    device: torch.device | str = "cpu",
    reps: int = 3,
) -> tuple[float, float]:
    """Seconds of one forward and of one forward and backward pass of activation ``name``
    (:func:`charlm.activations.make_activation`) on a ``shape`` tensor of ``dtype`` (None:
    float32) on ``device``: medians of ``reps`` after one untimed pass each.

    Raises:
        ValueError: an unknown activation.
    """
    device = torch.device(device)
    module = make_activation(name).to(device)
    x = torch.randn(shape, device=device, dtype=dtype or torch.float32, requires_grad=True)
    grad = torch.ones_like(x)

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    def forward() -> None:
        with torch.no_grad():
            module(x)
        sync()

    def both() -> None:
        module(x).backward(grad)
        x.grad = None
        sync()

    times = []
    for run in (forward, both):
        run()
        samples = []
        for _ in range(reps):
            start = time.perf_counter()
            run()
            samples.append(time.perf_counter() - start)
        times.append(statistics.median(samples))
    return times[0], times[1]


def timings_from_records(
    records: list[dict], call_seconds: list[float] | None = None
) -> Timings | None:
    """Per-step and per-evaluation times of finished trials, from their records (None for
    none): training time is ``max_iters x tokens per step / tokens_per_s`` (the time of the
    optimizer steps alone), and the rest of ``wall_time_s`` is divided among the trial's
    evaluations (each with its state save). ``call_seconds`` (one per record: how long the
    whole :func:`charlm.train.train_trial` call took) gives ``setup_s``, the mean time a call
    took beyond its record's ``wall_time_s`` (building the model and evaluation text)."""
    pairs = [
        (r, c)
        for r, c in zip(records, call_seconds or [None] * len(records), strict=True)
        if r.get("tokens_per_s")
    ]
    if not pairs:
        return None
    records = [r for r, _ in pairs]
    calls = [c - r["wall_time_s"] for r, c in pairs if c is not None]
    setup_s = max(0.0, statistics.fmean(calls)) if calls else 0.0
    steps = train_s = other_s = evaluations = 0.0
    for record in records:
        iters = record["train"]["max_iters"]
        tokens = iters * record["train"]["batch_size"] * record["model"]["block_size"]
        seconds = tokens / record["tokens_per_s"]
        steps += iters
        train_s += seconds
        other_s += max(0.0, record["wall_time_s"] - seconds)
        evaluations += len(record["curves"])
    step_s, eval_s = train_s / steps, other_s / evaluations
    basis = (
        f"the {len(records)} trial(s) trained so far: {_seconds(step_s)} per step, "
        f"{_seconds(eval_s)} per evaluation, {_seconds(setup_s)} per trial to set up"
    )
    return Timings(step_s, eval_s, setup_s, basis)


def _seconds(value: float) -> str:
    if value >= 100:
        return f"{value:,.0f} s"
    return f"{value:.3g} s"


def format_duration(seconds: float) -> str:
    """``1h05m`` from an hour up, ``4m07s`` from a minute, ``16s`` below (seconds rounded to
    whole)."""
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"
