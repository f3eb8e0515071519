"""``python3 -m reproduce.preflight``: can this machine run a sweep? Checked in seconds.

Checks, in order, stopping at the first failure: the Python version (3.11 or newer); that
every package the pipeline imports is importable (:data:`PACKAGES`), then the project's own
modules (:data:`PROJECT_MODULES`, which catches anything they import besides); with
``--device cuda``, that torch was built with CUDA, sees a GPU and runs a bf16 matrix product
on it; with ``--data FILE``, that FILE is tiny Shakespeare (its SHA-256).

On success it prints the versions and the device (at most 80 columns a line), naming the
packages imported from a ``PYTHONPATH`` entry (wheels installed beside the system's
packages), optionally writes them as JSON (``--json FILE``), and exits 0. On a failure it
prints exactly one line, ``preflight: ...`` naming what is missing, on stderr, and exits 2.

This module runs before anything else is known about the interpreter, so it keeps to syntax
and standard-library calls that Python 3.8 accepts until the version has been checked.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import textwrap

__all__ = [
    "EXIT_NOT_READY",
    "MIN_PYTHON",
    "NotReady",
    "PACKAGES",
    "PROJECT_MODULES",
    "check",
    "describe",
    "main",
]

MIN_PYTHON = (3, 11)
EXIT_NOT_READY = 2
WIDTH = 80
# (module imported, distribution that provides it): pyproject.toml's dependencies and the
# packages jsonschema needs, which some machines lack (their wheels can travel instead).
PACKAGES = (
    ("torch", "torch"),
    ("numpy", "numpy"),
    ("scipy", "scipy"),
    ("matplotlib", "matplotlib"),
    ("jinja2", "jinja2"),
    ("safetensors", "safetensors"),
    ("tqdm", "tqdm"),
    ("jsonschema", "jsonschema"),
    ("referencing", "referencing"),
    ("rpds", "rpds-py"),
    ("jsonschema_specifications", "jsonschema-specifications"),
)
# Importing these imports everything a sweep, its report and its publication use.
PROJECT_MODULES = (
    "charlm.train",
    "reproduce.runner",
    "reproduce.distributed",
    "reproduce.checks",
    "reproduce.report",
    "reproduce.figures",
    "reproduce.publish",
    "reproduce.verify",
)


class NotReady(Exception):
    """The machine cannot run a sweep; the message is the one line to print."""


def _version_text(info) -> str:
    return ".".join(str(part) for part in tuple(info)[:3])


def _python_path_entries(environ) -> list:
    entries = environ.get("PYTHONPATH", "").split(os.pathsep)
    return [os.path.realpath(p) for p in entries if p]


def _distribution_version(module, distribution: str):
    from importlib import metadata

    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        version = getattr(module, "__version__", None)
        return version if isinstance(version, str) else None


def _pack(items: list, prefix: str = "") -> list:
    """``items`` joined by ", " into lines of at most :data:`WIDTH` columns, none split."""
    lines, current = [], prefix
    for item in items:
        joined = item if current == prefix else f"{current}, {item}"
        if current != prefix and len(joined) > WIDTH:
            lines.append(current + ",")
            current = "  " + item
        else:
            current = prefix + item if current == prefix else joined
    if current.strip():
        lines.append(current)
    return lines


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")


def _import_packages() -> dict:
    """Import :data:`PACKAGES`; returns module name -> module. Raises NotReady naming every
    distribution that is missing, or the first one that fails to import."""
    modules, missing = {}, []
    for name, distribution in PACKAGES:
        try:
            modules[name] = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name is not None and exc.name.split(".")[0] != name:
                top = exc.name.split(".")[0]
                raise NotReady(
                    f"preflight: {distribution} is installed but needs the missing module "
                    f"{top!r}; install it (or carry its wheel)"
                ) from None
            missing.append(distribution)
        except Exception as exc:  # a broken install: a binary for another Python, say
            raise NotReady(
                f"preflight: {distribution} does not import: {_first_line(exc)}"
            ) from None
    if missing:
        raise NotReady(
            f"preflight: missing Python package(s): {', '.join(missing)} (for "
            f"{sys.executable}); install them or carry their wheels (README, GPU section)"
        )
    return modules


def _import_project() -> None:
    for name in PROJECT_MODULES:
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as exc:
            top = (exc.name or "?").split(".")[0]
            raise NotReady(
                f"preflight: {name} needs the missing module {top!r}; install it (or carry "
                "its wheel)"
            ) from None
        except Exception as exc:
            raise NotReady(f"preflight: {name} does not import: {_first_line(exc)}") from None


def _cuda_record(torch, require: bool) -> dict:
    """The GPUs torch sees; with ``require``, NotReady unless one runs a bf16 matmul."""
    record = {
        "cuda_build": torch.version.cuda,
        "cuda_available": False,
        "cudnn": None,
        "devices": [],
    }
    build = f"torch {torch.__version__}"
    if torch.version.cuda is None:
        if require:
            raise NotReady(f"preflight: CUDA is required, but {build} is a CPU-only build")
        return record
    if not torch.cuda.is_available() or torch.cuda.device_count() < 1:
        if require:
            hidden = os.environ.get("CUDA_VISIBLE_DEVICES")
            why = f"CUDA_VISIBLE_DEVICES={hidden!r}" if hidden is not None else "no driver?"
            raise NotReady(
                f"preflight: CUDA is required, but {build} (CUDA {torch.version.cuda}) "
                f"sees no GPU ({why})"
            )
        return record
    record["cuda_available"] = True
    record["cudnn"] = torch.backends.cudnn.version()
    for index in range(torch.cuda.device_count()):
        props = torch.cuda.get_device_properties(index)
        record["devices"].append(
            {
                "index": index,
                "name": props.name,
                "memory_gib": round(props.total_memory / 2**30, 1),
                "capability": f"sm_{props.major}{props.minor}",
            }
        )
    if require:
        try:
            a = torch.ones(64, 64, device="cuda:0", dtype=torch.bfloat16)
            value = float((a @ a).float().sum().item())
        except Exception as exc:  # e.g. no kernel image for this GPU
            name = record["devices"][0]["name"]
            raise NotReady(
                f"preflight: CUDA is required, but a bf16 matmul failed on cuda:0 ({name}): "
                f"{_first_line(exc)}"
            ) from None
        if value != 64.0**3:
            raise NotReady(f"preflight: a bf16 matmul on cuda:0 gave {value}, not {64**3}")
    return record


def _check_data(path: str) -> str:
    """The data file's SHA-256, checked against tiny Shakespeare's (run after the project's
    modules imported, so their digest helpers are at hand)."""
    from charlm.data import TINY_SHAKESPEARE_SHA256
    from charlm.io import sha256_file

    if not os.path.isfile(path):
        raise NotReady(f"preflight: data file {path} not found (tiny Shakespeare's input.txt)")
    digest = sha256_file(path)
    if digest != TINY_SHAKESPEARE_SHA256:
        raise NotReady(
            f"preflight: {path} is not tiny Shakespeare (SHA-256 {digest[:16]}..., "
            f"expected {TINY_SHAKESPEARE_SHA256[:16]}...)"
        )
    return digest


def check(device: str = "auto", data: str | None = None, environ=None) -> dict:
    """Run every check; returns what was found (versions, device, data digest).

    Args:
        device: ``cuda`` requires a working GPU; ``cpu`` or ``auto`` require none.
        data: tiny Shakespeare's file to check by digest (None: not checked).
        environ: the environment (default ``os.environ``): its ``PYTHONPATH`` decides which
            packages are reported as coming from there.

    Returns:
        ``{"python", "executable", "packages": {distribution: version}, "from_pythonpath":
        [distributions], "cuda": {...}, "cpu_count", "data_sha256"}``.

    Raises:
        NotReady: the first failed check, with the one line to print.
    """
    environ = os.environ if environ is None else environ
    if tuple(sys.version_info)[:2] < MIN_PYTHON:
        raise NotReady(
            f"preflight: Python {MIN_PYTHON[0]}.{MIN_PYTHON[1]} or newer is needed, "
            f"{sys.executable} is {_version_text(sys.version_info)}"
        )
    if device not in ("auto", "cpu", "cuda"):
        raise NotReady(f"preflight: --device must be auto, cpu or cuda, got {device!r}")
    modules = _import_packages()
    _import_project()
    extra = _python_path_entries(environ)
    packages, from_path = {}, []
    for name, distribution in PACKAGES:
        module = modules[name]
        packages[distribution] = _distribution_version(module, distribution)
        origin = os.path.realpath(getattr(module, "__file__", None) or "")
        if any(origin.startswith(entry + os.sep) for entry in extra):
            from_path.append(distribution)
    torch = modules["torch"]
    found = {
        "python": _version_text(sys.version_info),
        "executable": sys.executable,
        "packages": packages,
        "from_pythonpath": from_path,
        "cuda": _cuda_record(torch, require=device == "cuda"),
        "cpu_count": os.cpu_count(),
        "data_sha256": _check_data(data) if data is not None else None,
    }
    return found


def describe(found: dict) -> list:
    """The lines printed on success (each at most 80 columns)."""
    packages = found["packages"]
    cuda = found["cuda"]
    head = f"python {found['python']} ({found['executable']})"
    lines = textwrap.wrap(head, WIDTH, break_on_hyphens=False)
    lines += _pack([f"{name} {version}" for name, version in packages.items()])
    if found["from_pythonpath"]:
        lines += _pack(found["from_pythonpath"], "from PYTHONPATH (wheels): ")
    if cuda["cuda_available"]:
        lines.append(f"CUDA {cuda['cuda_build']}, cuDNN {cuda['cudnn']}")
        for gpu in cuda["devices"]:
            lines.append(
                f"cuda:{gpu['index']} {gpu['name']}, {gpu['memory_gib']:.0f} GiB, "
                f"{gpu['capability']}"
            )
    else:
        build = f"CUDA {cuda['cuda_build']} build" if cuda["cuda_build"] else "CPU-only torch"
        lines.append(f"no GPU ({build}): the CPU, {found['cpu_count']} cores")
    if found["data_sha256"]:
        lines.append(f"data: tiny Shakespeare (SHA-256 {found['data_sha256'][:16]}...)")
    return [line[:WIDTH] for line in lines]


def main(argv=None) -> int:
    """Command line: ``python3 -m reproduce.preflight [--device D] [--data F] [--json F]``."""
    parser = argparse.ArgumentParser(
        prog="python3 -m reproduce.preflight",
        description="Check, in seconds, that this machine can run a sweep: Python 3.11+, "
        "every package importable, CUDA working (--device cuda), the data file. Exit 0 and "
        "print the versions, or exit 2 with one line naming what is missing.",
    )
    parser.add_argument(
        "--device",
        default="auto",
        choices=("auto", "cpu", "cuda"),
        help="cuda: require a working GPU (default auto: report what is there)",
    )
    parser.add_argument("--data", default=None, help="tiny Shakespeare's input.txt to check")
    parser.add_argument("--json", default=None, help="also write what was found to this file")
    args = parser.parse_args(argv)
    try:
        found = check(args.device, args.data)
    except NotReady as exc:
        print(str(exc).replace("\n", " "), file=sys.stderr)
        return EXIT_NOT_READY
    if args.json:
        from charlm.io import atomic_write_json

        atomic_write_json(args.json, found)
    print("\n".join(describe(found)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
