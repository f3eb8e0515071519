"""``python -m reproduce bench --config C [--iters N]``: time training steps of a config's model.

Warms up, then times ``N`` training iterations exactly as :func:`charlm.train.train_trial` takes
them (:meth:`charlm.train.TrainingSetup.step`, real tiny Shakespeare batches, the config's
precision, compile, optimizer and thread settings), and prints ms/iter, tokens/s, peak memory and,
on CUDA, model FLOPs utilisation (MFU) against the device's dense bf16 peak. The figures are also
written as JSON with the environment record. Nothing here is asserted by tests: timings vary.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import time

import torch

from charlm.activations import canonical_name
from charlm.determinism import platform_record
from charlm.io import atomic_write_json
from charlm.train import TrainingSetup
from reproduce.cli import UserError
from reproduce.config import load_config
from reproduce.plain_baseline import time_plain_steps
from reproduce.runner import load_corpus

__all__ = ["BF16_PEAK_FLOPS", "flops_per_iteration", "benchmark", "register"]

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
    config = load_config(args.config)
    corpus = load_corpus(config, args.config, args.data)
    trials = config.trials(corpus.vocab_size)
    wanted = canonical_name(args.activation) if args.activation else trials[0].activation
    trial = next((t for t in trials if t.activation == wanted), None)
    if trial is None:
        raise UserError(f"{args.config} has no {wanted} trial; it has {list(config.activations)}")
    setup = TrainingSetup.build(trial.spec)
    figures = benchmark(setup, corpus.train, args.iters, args.warmup)
    m, t = trial.spec.model, trial.spec.train
    print(
        f"bench {config.name} ({trial.activation}): {m.n_layer} layers x {m.n_embd}, "
        f"context {m.block_size}, batch {t.batch_size}, {setup.precision}, "
        f"optimizer {setup.optimizer_impl}, compile {t.compile}, {t.threads} threads, "
        f"{setup.device}"
    )
    print(
        f"  {figures['ms_per_iter_median']:.1f} ms/iter (median of {args.iters}; mean "
        f"{figures['ms_per_iter_mean']:.1f}, min {figures['ms_per_iter_min']:.1f})"
    )
    print(
        f"  {figures['tokens_per_s']:,.0f} tokens/s, {figures['achieved_tflops']:.3f} TFLOP/s"
        + (
            f", MFU {100 * figures['mfu']:.1f}% of {figures['mfu_peak_flops'] / 1e12:.0f} "
            "TFLOP/s bf16"
            if figures["mfu"] is not None
            else ""
        )
    )
    print(f"  peak memory {figures['peak_memory_mib']:.0f} MiB ({figures['peak_memory_kind']})")
    baseline = None
    if args.baseline:
        if setup.device.type != "cpu":
            raise UserError("--baseline compares CPU implementations; use a config on the CPU")
        baseline = time_plain_steps(
            m, corpus.train, t.batch_size, t.lr, args.iters, args.warmup, t.threads
        )
        baseline["speedup"] = figures["tokens_per_s"] / baseline["tokens_per_s"]
        print(
            f"  plain PyTorch implementation: {baseline['ms_per_iter_median']:.1f} ms/iter, "
            f"{baseline['tokens_per_s']:,.0f} tokens/s; ours is {baseline['speedup']:.2f}x"
        )
    atomic_write_json(
        args.out,
        {
            "config": config.to_dict(),
            "trial": trial.id,
            "figures": figures,
            "plain_baseline": baseline,
            "environment": platform_record(setup.device, setup.precision),
            "settings": {
                "precision": setup.precision,
                "optimizer_impl": setup.optimizer_impl,
                "compile": t.compile,
                "threads": t.threads,
            },
        },
    )
    print(f"  written to {args.out}")
    return 0


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
    p = subparsers.add_parser("bench", help="time training iterations of a config's model")
    p.add_argument("--config", required=True)
    p.add_argument(
        "--iters", type=_positive, default=20, help="timed iterations, at least 1 (default 20)"
    )
    p.add_argument(
        "--warmup", type=_non_negative, default=3, help="untimed iterations first (default 3)"
    )
    p.add_argument("--activation", default=None, help="which activation's model (default: first)")
    p.add_argument("--data", default=None, help="tiny Shakespeare's file (as for run)")
    p.add_argument("--out", default="bench.json", help="JSON file for the figures")
    p.add_argument(
        "--baseline",
        action="store_true",
        help="also time a plain PyTorch implementation of the same step (CPU)",
    )
    p.set_defaults(func=_command)
