"""What the CPU can do fast, and the process setting that lets training steps use it.

Two facts decide CPU training speed on the project's machines (AMD EPYC with AVX512-BF16,
torch CPU build, 2 threads; figures in the README, Performance):

- **Native bf16.** On CPUs with AVX512-BF16 or AMX, bf16 matrix products run about 3x faster
  than fp32 ones; on CPUs without them, bf16 is emulated and many times slower than fp32.
  :func:`bf16_capability` says which, and ``precision = "auto"`` follows it.
- **Page faults.** glibc's ``malloc`` serves blocks above its mmap threshold (at most 32 MiB)
  with fresh ``mmap`` pages and unmaps them on ``free``, so every large activation of every step
  is faulted in again, page by page (measured: a bf16 (16384 x 256) @ (256 x 1024) product takes
  31 ms into a new tensor and 21 ms into a reused one). :func:`keep_freed_memory` makes freed
  blocks stay in the heap for reuse. It changes no result, only where memory comes from.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

import torch

__all__ = ["allocator_state", "bf16_capability", "bf16_native", "cpuinfo", "keep_freed_memory"]

# glibc's mallopt parameters (malloc.h): M_TRIM_THRESHOLD -1, M_MMAP_MAX -4.
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_TRIM_THRESHOLD = 2**31 - 1  # bytes of free heap top kept (mallopt takes an int: 2 GiB)
_allocator_state: str | None = None


def cpuinfo() -> dict[str, str]:
    """The first processor's fields of ``/proc/cpuinfo`` (``"model name"``, ``"cpu family"``,
    ``"flags"``, ...); empty where there is none (not Linux). Never raises."""
    fields: dict[str, str] = {}
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if not line.strip():
                    break  # end of the first processor's block
                key, _, value = line.partition(":")
                fields.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    return fields


def _cpuinfo_flags() -> set[str]:
    return set(cpuinfo().get("flags", "").split())


def bf16_capability() -> str:
    """The CPU's native bf16 arithmetic: ``"amx"``, ``"avx512_bf16"`` or ``"none"``.

    Asks torch's own checks (``torch.cpu._is_amx_tile_supported``,
    ``torch.cpu._is_avx512_bf16_supported``) where this torch has them, else the ``amx_bf16``
    and ``avx512_bf16`` flags of ``/proc/cpuinfo``. "none" means bf16 is emulated (slow).
    """
    checks = {
        "amx": getattr(torch.cpu, "_is_amx_tile_supported", None),
        "avx512_bf16": getattr(torch.cpu, "_is_avx512_bf16_supported", None),
    }
    flags = None
    for name, check in checks.items():
        if check is not None:
            found = bool(check())
        else:
            flags = _cpuinfo_flags() if flags is None else flags
            found = {"amx": "amx_bf16", "avx512_bf16": "avx512_bf16"}[name] in flags
        if found:
            return name
    return "none"


def bf16_native() -> bool:
    """True when the CPU computes bf16 natively (:func:`bf16_capability` is not "none")."""
    return bf16_capability() != "none"


def keep_freed_memory() -> str:
    """Make glibc keep freed memory in the heap instead of returning it to the system.

    Calls ``mallopt(M_MMAP_MAX, 0)`` (no block is served by its own mmap) and
    ``mallopt(M_TRIM_THRESHOLD, 2^31 - 1)`` (up to 2 GiB of free heap top is kept) once per
    process, so the same-shaped tensors of every training step reuse pages already faulted in.
    Peak memory stays that of one step; the process keeps it until it exits.

    Returns:
        "glibc: freed memory kept" once set, or why it was not set ("not glibc" elsewhere, e.g.
        macOS or musl). Never raises.
    """
    global _allocator_state
    if _allocator_state is None:
        _allocator_state = _set_glibc_options()
    return _allocator_state


def _set_glibc_options() -> str:
    if not sys.platform.startswith("linux"):
        return f"not glibc ({sys.platform}): allocator unchanged"
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return "not glibc: allocator unchanged"
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    if mallopt(_M_MMAP_MAX, 0) != 1 or mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD) != 1:
        return "glibc refused mallopt: allocator unchanged"
    return "glibc: freed memory kept"


def allocator_state() -> str:
    """What :func:`keep_freed_memory` set in this process, or "default" if it was not called."""
    return _allocator_state or "default"
