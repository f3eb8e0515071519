"""Deterministic execution: seeds, deterministic kernels and the thread count.

Bit-exact results are a same-platform promise: PyTorch guarantees nothing across releases,
platforms, or CPU vs GPU (PyTorch docs, "Reproducibility"). On the CPU the intra-op thread count
changes the order of floating-point reductions, hence the bits, so it is a setting enforced here
and recorded. :mod:`charlm.platforms` records what else a result depends on and decides when
two results may be compared bit for bit.
"""

from __future__ import annotations

import os
import random

import numpy as np
import torch

__all__ = [
    "CUBLAS_WORKSPACE_CONFIG",
    "configure",
    "resolve_device",
    "seed_everything",
]

# cuBLAS needs a fixed workspace for deterministic matmuls (CUDA docs, "cuBLAS reproducibility").
CUBLAS_WORKSPACE_CONFIG = ":4096:8"
VALID_CUBLAS = (":4096:8", ":16:8")


def resolve_device(device: str = "auto") -> torch.device:
    """``auto`` -> ``cuda`` when available, else ``cpu``; anything else as given.

    Raises:
        ValueError: CUDA is asked for but not available.
    """
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    resolved = torch.device(device)
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} asked for, but CUDA is not available; use 'cpu'")
    return resolved


def seed_everything(seed: int) -> None:
    """Seed Python's ``random``, NumPy's global generator and torch (CPU and every CUDA device).

    Raises:
        ValueError: ``seed`` is negative or not an integer (0 is valid).
    """
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)  # also seeds every CUDA device's default generator


def _ensure_cublas_config() -> None:
    current = os.environ.get("CUBLAS_WORKSPACE_CONFIG")
    if current in VALID_CUBLAS:
        return
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        raise RuntimeError(
            "CUDA was initialised before CUBLAS_WORKSPACE_CONFIG was set, so cuBLAS cannot be "
            f"deterministic; export CUBLAS_WORKSPACE_CONFIG={CUBLAS_WORKSPACE_CONFIG} before "
            "starting Python"
        )
    os.environ["CUBLAS_WORKSPACE_CONFIG"] = CUBLAS_WORKSPACE_CONFIG


def configure(seed: int, threads: int, allow_tf32: bool = False) -> dict:
    """Make this process deterministic for one trial and return what was set.

    Sets ``CUBLAS_WORKSPACE_CONFIG`` (before CUDA starts),
    ``torch.use_deterministic_algorithms(True)`` (without its filling of uninitialised memory),
    ``cudnn.deterministic = True``, ``cudnn.benchmark = False``, TF32 on or off for matmuls and
    cuDNN as ``allow_tf32`` says, ``torch.set_num_threads(threads)``, and seeds every
    generator (:func:`seed_everything`).

    Returns:
        the determinism settings as a JSON-serialisable dict.

    Raises:
        ValueError: ``threads`` < 1 or a bad seed.
        RuntimeError: CUDA started without a valid ``CUBLAS_WORKSPACE_CONFIG``.
    """
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ValueError(f"threads must be a positive integer, got {threads!r}")
    _ensure_cublas_config()
    torch.use_deterministic_algorithms(True)
    # With deterministic algorithms on, PyTorch also fills every new tensor's memory (a debugging
    # aid against reads of uninitialised memory, which no kernel here does); that costs up to a
    # tenth of a CPU training step, so it is switched off (PyTorch docs,
    # torch.utils.deterministic.fill_uninitialized_memory).
    torch.utils.deterministic.fill_uninitialized_memory = False
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False
    torch.backends.cuda.matmul.allow_tf32 = allow_tf32
    torch.backends.cudnn.allow_tf32 = allow_tf32
    torch.set_num_threads(threads)
    seed_everything(seed)
    return {
        "seed": seed,
        "threads": torch.get_num_threads(),
        "use_deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
        "fill_uninitialized_memory": torch.utils.deterministic.fill_uninitialized_memory,
        "cudnn_deterministic": torch.backends.cudnn.deterministic,
        "cudnn_benchmark": torch.backends.cudnn.benchmark,
        "allow_tf32": allow_tf32,
        "cublas_workspace_config": os.environ.get("CUBLAS_WORKSPACE_CONFIG"),
        "pythonhashseed": os.environ.get("PYTHONHASHSEED"),
    }
