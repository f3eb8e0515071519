"""``python -m reproduce bench --config C [--iters N]``: time training steps of a config's model.

Warms up, then times ``N`` training iterations exactly as :func:`charlm.train.train_trial` takes
them (:meth:`charlm.train.TrainingSetup.step`, real tiny Shakespeare batches, the config's
precision, compile, optimizer and thread settings), and prints ms/iter, tokens/s, peak memory, the
step's model FLOP/s as a fraction of this machine's own matrix-product rate at the model's shapes
(measured in the same run, :func:`matmul_rate`) and, on CUDA, model FLOPs utilisation (MFU)
against the device's dense bf16 peak. ``--baseline`` first times a plain fp32 PyTorch step of the
same model (:mod:`reproduce.plain_baseline`). The figures are also written as JSON with the
environment record. Nothing here is asserted by tests: timings vary.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import time
from functools import partial

import torch

from charlm import determinism
from charlm.activations import canonical_name
from charlm.io import atomic_write_json
from charlm.platforms import record as platform_record
from charlm.train import TrainingSetup
from reproduce import protocols
from reproduce.config import add_override_option, load_config
from reproduce.errors import UserError
from reproduce.options import add_data_option
from reproduce.plain_baseline import time_plain_steps
from reproduce.sweep import load_corpus

__all__ = ["BF16_PEAK_FLOPS", "flops_per_iteration", "matmul_rate", "benchmark", "register"]

# Dense bf16 tensor-core peak, FLOP/s, by device-name fragment (NVIDIA data sheets: A100 SXM
# 312 TF; H100 SXM and H200 989.4 TF without sparsity; L4 121 TF; L40S 362 TF).
BF16_PEAK_FLOPS = {
    "H200": 989.4e12,
    "H100": 989.4e12,
    "A100": 312e12,
    "L40S": 362e12,
    "L4": 121e12,
}


def flops_per_iteration(
    n_params: int, n_layer: int, n_embd: int, block_size: int, batch_size: int
) -> float:
    """Training FLOPs of one iteration: ``(6 N + 12 L C T) * T * B``.

    6N per token for the forward and backward matmuls over N parameters, plus 12 L C T per token
    for attention scores and their use (Kaplan et al. 2020, "Scaling Laws for Neural Language
    Models", Table 1, forward 2N + 2 L C T, backward twice the forward).
    """
    per_token = 6 * n_params + 12 * n_layer * n_embd * block_size
    return per_token * block_size * batch_size


def _median_seconds(run, reps: int, device: torch.device) -> float:
    times = []
    for _ in range(reps + 1):  # the first call warms up
        start = time.perf_counter()
        run()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times[1:])


def matmul_rate(setup: TrainingSetup, reps: int = 3) -> dict:
    """This machine's matrix-product rate at the model's shapes, in the step's precision.

    For every ``nn.Linear`` of the model (in x out) and M = batch x context rows, times the three
    products a training step takes: forward (M x in) @ (in x out), input gradient
    (M x out) @ (out x in) and weight gradient (out x M) @ (M x in), into preallocated outputs,
    with the configured thread count. The rate is their FLOPs (2 M in out each) over their
    median times summed: what the step's matrix products could reach if they ran as fast alone.

    Returns:
        ``rate_tflops`` and per-shape ``shapes`` [(in, out, count, ms for the three, TFLOP/s)].
    """
    device = setup.device
    dtype = torch.bfloat16 if setup.precision == "bf16" else torch.float32
    rows = setup.spec.model.block_size * setup.cfg.batch_size
    counts: dict[tuple[int, int], int] = {}
    for module in setup.model.modules():
        if isinstance(module, torch.nn.Linear):
            key = (module.in_features, module.out_features)
            counts[key] = counts.get(key, 0) + 1
    total_flops = total_seconds = 0.0
    shapes = []
    for (n_in, n_out), count in sorted(counts.items()):
        x = torch.randn(rows, n_in, device=device, dtype=dtype)
        w = torch.randn(n_out, n_in, device=device, dtype=dtype)
        g = torch.randn(rows, n_out, device=device, dtype=dtype)
        out_y, out_dx, out_dw = (torch.empty_like(t) for t in (g, x, w))
        products = ((x, w.t(), out_y), (g, w, out_dx), (g.t(), x, out_dw))
        seconds = sum(
            _median_seconds(partial(torch.mm, a, b, out=out), reps, device)
            for a, b, out in products
        )
        flops = 3 * 2 * rows * n_in * n_out
        shapes.append([n_in, n_out, count, 1000 * seconds, flops / seconds / 1e12])
        total_flops += count * flops
        total_seconds += count * seconds
    return {
        "dtype": str(dtype).removeprefix("torch."),
        "rate_tflops": total_flops / total_seconds / 1e12,
        "shapes": shapes,
    }


def benchmark(setup: TrainingSetup, train_data: torch.Tensor, iters: int, warmup: int) -> dict:
    """Time ``iters`` training steps after ``warmup`` untimed ones.

    Returns:
        figures: ms/iter (median, mean, min), tokens/s (from the median), peak memory in MiB,
        FLOPs per iteration, achieved TFLOP/s and MFU (CUDA with a known peak, else None).
    """
    device = setup.device
    cuda = device.type == "cuda"
    if cuda:
        torch.cuda.reset_peak_memory_stats(device)
    for step in range(warmup):
        setup.step(step, train_data)
    if cuda:
        torch.cuda.synchronize(device)
    times = []
    for step in range(warmup, warmup + iters):
        start = time.perf_counter()
        loss = setup.step(step, train_data)
        if cuda:
            torch.cuda.synchronize(device)
        else:
            loss.item()
        times.append(time.perf_counter() - start)
    spec = setup.spec
    median = statistics.median(times)
    flops = flops_per_iteration(
        setup.model.num_parameters(),
        spec.model.n_layer,
        spec.model.n_embd,
        spec.model.block_size,
        spec.train.batch_size,
    )
    name = torch.cuda.get_device_name(device) if cuda else "cpu"
    peak = next((v for k, v in BF16_PEAK_FLOPS.items() if k in name), None) if cuda else None
    if cuda:
        memory = torch.cuda.max_memory_allocated(device) / 2**20
    else:
        memory = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    achieved = flops / median
    return {
        "iters": iters,
        "warmup": warmup,
        "ms_per_iter_median": 1000 * median,
        "ms_per_iter_mean": 1000 * statistics.fmean(times),
        "ms_per_iter_min": 1000 * min(times),
        "tokens_per_s": spec.train.batch_size * spec.model.block_size / median,
        "peak_memory_mib": memory,
        "peak_memory_kind": "max allocated (CUDA)" if cuda else "process max RSS",
        "flops_per_iter": flops,
        "achieved_tflops": achieved / 1e12,
        "mfu": achieved / peak if peak else None,
        "mfu_peak_flops": peak,
    }


def _command(args: argparse.Namespace) -> int:
    config = load_config(args.config, args.overrides)
    corpus = load_corpus(config, args.config, args.data)
    trials = config.trials(corpus.vocab_size)
    wanted = canonical_name(args.activation) if args.activation else trials[0].activation
    trial = next((t for t in trials if t.activation == wanted), None)
    if trial is None:
        raise UserError(f"{args.config} has no {wanted} trial; it has {list(config.activations)}")
    m, t = trial.spec.model, trial.spec.train
    baseline = None
    if args.baseline:  # first, before the setup below changes the process's allocator
        if determinism.resolve_device(t.device).type != "cpu":
            raise UserError("--baseline compares CPU implementations; use a config on the CPU")
        baseline = time_plain_steps(
            m, corpus.train, t.batch_size, t.lr, args.iters, args.warmup, t.threads
        )
    setup = protocols.build_setup(trial.spec, corpus)
    figures = benchmark(setup, corpus.train, args.iters, args.warmup)
    limit = matmul_rate(setup)
    figures["matmul_rate_tflops"] = limit["rate_tflops"]
    figures["fraction_of_matmul_rate"] = figures["achieved_tflops"] / limit["rate_tflops"]
    for line in _report_lines(config.name, trial.activation, setup, figures, limit, args.iters):
        print(line)
    if baseline is not None:
        baseline["speedup"] = figures["tokens_per_s"] / baseline["tokens_per_s"]
        baseline["achieved_tflops"] = (
            figures["flops_per_iter"] / (baseline["ms_per_iter_median"] / 1000) / 1e12
        )
        print(
            f"  plain fp32 PyTorch step: {baseline['ms_per_iter_median']:,.1f} ms/iter, "
            f"{baseline['tokens_per_s']:,.0f} tokens/s; this one is {baseline['speedup']:.2f}x"
        )
    atomic_write_json(
        args.out,
        {
            "config": config.to_dict(),
            "trial": trial.id,
            "figures": figures,
            "matmul_rate": limit,
            "plain_baseline": baseline,
            "environment": platform_record(setup.device, setup.precision),
            "settings": {
                "protocol": t.protocol,
                "precision": setup.precision,
                "optimizer_impl": setup.optimizer_impl,
                "compile": t.compile,
                "threads": t.threads,
            },
        },
    )
    print(f"  written to {args.out}")
    return 0


def _report_lines(name, activation, setup, figures, limit, iters) -> list[str]:
    m, t = setup.spec.model, setup.spec.train
    mfu = ""
    if figures["mfu"] is not None:
        mfu = f"; MFU {100 * figures['mfu']:.1f}% of {figures['mfu_peak_flops'] / 1e12:.0f} bf16"
    return [
        f"bench {name} ({activation}, {t.protocol} protocol): {m.n_layer} layers x "
        f"{m.n_embd}, context {m.block_size}, batch {t.batch_size}",
        f"  {setup.precision}, optimizer {setup.optimizer_impl}, compile {t.compile}, "
        f"{t.threads} threads, {setup.device}",
        f"  {figures['ms_per_iter_median']:,.1f} ms/iter (median of {iters}; mean "
        f"{figures['ms_per_iter_mean']:,.1f}, min {figures['ms_per_iter_min']:,.1f})",
        f"  {figures['tokens_per_s']:,.0f} tokens/s, {figures['achieved_tflops']:.3f} TFLOP/s "
        f"of model FLOPs{mfu}",
        f"  matmul rate here at the model's shapes ({limit['dtype']}): "
        f"{limit['rate_tflops']:.3f} TFLOP/s;",
        *_fraction_lines(figures["fraction_of_matmul_rate"]),
        f"  peak memory {figures['peak_memory_mib']:,.0f} MiB ({figures['peak_memory_kind']})",
    ]


def _fraction_lines(fraction: float) -> list[str]:
    """What fraction of the matmul rate the step reaches, explained where it is above 100%."""
    if fraction <= 1:
        return [f"  the step runs at {100 * fraction:.0f}% of it"]
    return [
        f"  the step runs at {100 * fraction:.0f}% of it: above the rate, which is timed",
        "  on the Linear products alone (3 repetitions each), while the step's model",
        "  FLOPs also count attention; both timings vary by 10-25% on a shared machine,",
        "  so read it as 'at the matmul rate'",
    ]


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of at least 1, got {text!r}")
    return int(text)


def _non_negative(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"must be a whole number (0 or more), got {text!r}")
    return int(text)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``bench`` command."""
    p = subparsers.add_parser(
        "bench",
        help="time training iterations of a config's model",
        description="Time training steps of a config's model exactly as run takes them, beside "
        "this machine's matrix-product rate at the model's shapes; --baseline also times a "
        "plain fp32 PyTorch step of the same model. Prints the figures and writes them as JSON.",
    )
    p.add_argument("--config", required=True, help="sweep config (TOML) whose model to time")
    p.add_argument(
        "--iters", type=_positive, default=20, help="timed iterations, at least 1 (default 20)"
    )
    p.add_argument(
        "--warmup", type=_non_negative, default=3, help="untimed iterations first (default 3)"
    )
    p.add_argument("--activation", default=None, help="which activation's model (default: first)")
    add_override_option(p, 'train.precision="fp32"')
    add_data_option(p)
    p.add_argument("--out", default="bench.json", help="JSON file for the figures")
    p.add_argument(
        "--baseline",
        action="store_true",
        help="also time a plain fp32 PyTorch implementation of the same step (CPU), first",
    )
    p.set_defaults(func=_command)
