"""The platform record: what a result's bits depend on, and when two records are the same.

Bit-exact results are a same-platform promise: PyTorch guarantees nothing across releases,
platforms, or CPU vs GPU (PyTorch docs, "Reproducibility"). What changes the bits:

- on the CPU, the instruction set that torch's own kernels dispatch to
  (``torch.backends.cpu.get_cpu_capability()``: DEFAULT, AVX2, AVX512, ...), the CPU's
  instruction-set flags that MKL and oneDNN dispatch on (their own choice, not torch's), the
  CPU's vendor, family, model and stepping (two machines may print the same model name, e.g.
  "AMD EPYC" for a Zen 3 with AVX2 only and a Zen 4 with AVX512-BF16), native bf16, the
  intra-op thread count (it changes the order of floating-point reductions), and the versions
  of torch, MKL and oneDNN;
- on a GPU, the device's name and compute capability, and the CUDA and cuDNN versions;
- everywhere, the resolved precision and the Python and NumPy versions (kept from the first
  records: no evidence either way, so a difference is reported rather than assumed harmless).

:func:`record` writes these into every trial's record; :func:`compare` decides whether two
records describe the same platform. A key that a record lacks (records made before the key
existed) is *unknown*, never assumed equal: such a platform cannot be called the same, and a
retrain's weights that differ from the record are then "platform differs or unknown", not a
failure of determinism.
"""

from __future__ import annotations

import platform
import re
from dataclasses import dataclass, field
from importlib import metadata

import numpy as np
import torch

from charlm import cpu

__all__ = ["BIT_KEYS", "ISA_FLAGS", "Match", "compare", "describe", "record"]

# The /proc/cpuinfo flags that decide which kernels MKL, oneDNN and torch's own code run.
ISA_FLAGS = (
    "sse4_2",
    "avx",
    "avx2",
    "fma",
    "f16c",
    "avx512f",
    "avx512bw",
    "avx512vl",
    "avx512dq",
    "avx512_vnni",
    "avx512_bf16",
    "avx512_fp16",
    "avx_vnni",
    "amx_tile",
    "amx_bf16",
    "amx_int8",
)

_COMMON = ("device_type", "machine", "torch", "numpy", "python", "precision")
# The keys of a record that must agree, by device type, for a bit-for-bit comparison.
BIT_KEYS = {
    "cpu": (
        *_COMMON,
        "cpu_vendor",
        "cpu_family",
        "cpu_model_number",
        "cpu_stepping",
        "cpu_model",
        "cpu_capability",
        "cpu_isa",
        "cpu_bf16",
        "threads",
        "mkl",
        "onednn",
    ),
    "cuda": (*_COMMON, "device_name", "cuda_capability", "cuda", "cudnn"),
}


def _cpu_capability() -> str | None:
    check = getattr(getattr(torch.backends, "cpu", None), "get_cpu_capability", None)
    return check() if check is not None else None


def _build_versions() -> dict[str, str | None]:
    """MKL's and oneDNN's versions as torch's build configuration names them (None if absent)."""
    shown = torch.__config__.show()
    mkl = re.search(r"Math Kernel Library Version ([\d.]+)", shown)
    onednn = re.search(r"(?:MKL-DNN|oneDNN) (v[\d.]+)", shown)
    return {"mkl": mkl.group(1) if mkl else None, "onednn": onednn.group(1) if onednn else None}


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def record(device: torch.device, precision: str, threads: int | None = None) -> dict:
    """What a result's bits depend on, for a trial run on ``device`` in ``precision``.

    Args:
        device: the device the trial runs on.
        precision: the resolved precision (``fp32`` or ``bf16``).
        threads: the intra-op thread count to record (default: torch's current one; give the
            trial's configured count to predict a record before :func:`charlm.determinism.
            configure` has set it).

    Returns:
        a JSON-serialisable dict holding :data:`BIT_KEYS` for both device types (the CPU's keys
        are recorded on a GPU run too, the GPU's are None on a CPU run), plus ``os``,
        ``safetensors`` and ``allocator`` (:func:`charlm.cpu.keep_freed_memory`; speed only),
        which decide no bit. ``cpu_isa`` is the comma-joined :data:`ISA_FLAGS` the CPU has.
        Never raises.
    """
    cuda = device.type == "cuda"
    info = cpu.cpuinfo()
    flags = set(info.get("flags", "").split())
    return {
        "device_type": device.type,
        "device_name": torch.cuda.get_device_name(device) if cuda else "cpu",
        "cuda_capability": ".".join(map(str, torch.cuda.get_device_capability(device)))
        if cuda
        else None,
        "cpu_model": info.get("model name") or platform.processor() or platform.machine(),
        "cpu_vendor": info.get("vendor_id"),
        "cpu_family": info.get("cpu family"),
        "cpu_model_number": info.get("model"),
        "cpu_stepping": info.get("stepping"),
        "cpu_capability": _cpu_capability(),
        "cpu_isa": ",".join(f for f in ISA_FLAGS if f in flags),
        "cpu_bf16": cpu.bf16_capability(),
        "machine": platform.machine(),
        "os": platform.platform(),
        "threads": torch.get_num_threads() if threads is None else threads,
        "torch": torch.__version__,
        **_build_versions(),
        "cuda": torch.version.cuda if cuda else None,
        "cudnn": torch.backends.cudnn.version() if cuda else None,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "safetensors": _version("safetensors"),
        "precision": precision,
        "allocator": cpu.allocator_state(),
    }


@dataclass(frozen=True)
class Match:
    """How a platform here compares with a recorded one.

    Attributes:
        differs: ``"key: 'recorded' recorded, 'here' here"`` for each bit-deciding key whose
            values differ.
        unknown: the bit-deciding keys the recorded platform lacks (an older record).
    """

    differs: list[str] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)

    @property
    def same(self) -> bool:
        """Both records hold every bit-deciding key, with equal values."""
        return not self.differs and not self.unknown

    def describe(self) -> str:
        """One phrase for a verdict: what differs, then what is not recorded; "" if same."""
        parts = list(self.differs)
        if self.unknown:
            parts.append("not recorded: " + ", ".join(self.unknown))
        return "; ".join(parts)


def compare(recorded: dict, here: dict) -> Match:
    """Compare a recorded platform with this one, key by key (:data:`BIT_KEYS` of the
    recorded device type; the CPU's keys if it names none).

    Args:
        recorded: a trial's ``environment`` as written by :func:`record` (or an older one).
        here: this machine's, from :func:`record`.

    Returns:
        the :class:`Match`: same only when no key differs and none is missing from
        ``recorded``.
    """
    device_type = recorded.get("device_type", "cpu")
    keys = BIT_KEYS.get(device_type, BIT_KEYS["cpu"])
    differs = [
        f"{k}: {recorded[k]!r} recorded, {here.get(k)!r} here"
        for k in keys
        if k in recorded and recorded[k] != here.get(k)
    ]
    unknown = [k for k in keys if k not in recorded]
    return Match(differs, unknown)


def describe(env: dict) -> str:
    """A short name for a recorded platform, e.g. ``"AMD EPYC (family 25 model 1), AVX2, no
    native bf16, 2 threads"``; keys an older record lacks are left out."""
    if env.get("device_type") == "cuda":
        parts = [str(env.get("device_name"))]
        if env.get("cuda_capability"):
            parts.append(f"sm {env['cuda_capability']}")
        return ", ".join(parts)
    name = str(env.get("cpu_model", "CPU"))
    if env.get("cpu_family") is not None:
        name += f" (family {env['cpu_family']} model {env.get('cpu_model_number')})"
    parts = [name]
    if env.get("cpu_capability"):
        parts.append(env["cpu_capability"])
    if "cpu_bf16" in env:
        bf16 = env["cpu_bf16"]
        parts.append("no native bf16" if bf16 == "none" else f"native bf16 ({bf16})")
    if "threads" in env:
        parts.append(f"{env['threads']} threads")
    return ", ".join(parts)
