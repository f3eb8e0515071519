"""Sessions of the reproducibility package: ``nox -s <session>`` (``nox`` alone runs ``tests``).

Sessions
    tests   pytest on tests/ (arguments after ``--`` go to pytest: ``nox -s tests -- -k stats``)
    lint    ``ruff check .`` (``nox -s lint -- PATH ...`` checks only those)
    smoke   the CPU smoke sweep on real data into artifacts/smoke
    full    the full study sweep into artifacts/full (meant for a machine with a CUDA GPU)
    verify  ``python -m reproduce verify DIR`` (``nox -s verify -- DIR``; default: artifacts/full,
            else artifacts/cpu)
    container  builds a stand-in for NVIDIA's image and the project's image, runs the compose
            ``smoke`` and ``verify`` services (Docker or podman; minutes, see the README)

What each session installs (into its own virtual environment under .nox/)
    1. torch, by version only: ``CHARLM_TORCH_SPEC`` (default ``torch==2.13.0``), split like a
       shell command line and handed to ``pip install``. torch's build differs by platform
       (CPU, CUDA, the NVIDIA container's own), so it is not in a hash-locked file; the packages
       torch itself pulls in come unhashed with it.
    2. one lock file with hashes (``pip install --require-hashes -r requirements/<lock>.txt``):
       test.txt for tests, lint.txt for lint (ruff only, no torch), runtime.txt for the rest.
    3. the project itself: ``pip install --no-deps --no-build-isolation -e .`` (its build
       backend, setuptools, is pinned with hashes in the lock file).

torch elsewhere (set CHARLM_TORCH_SPEC before running nox)
    * On the project's own machines ``torch==2.13.0`` is served from a local CPU wheel.
    * On another CPU-only Linux machine, plain ``pip install torch`` downloads a CUDA build of
      several GB; ask PyTorch's CPU index instead::

          CHARLM_TORCH_SPEC="torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu" \\
              nox -s tests

    * On a Linux x86_64 GPU machine the default (PyPI's torch) is already a CUDA build; for
      another CUDA version pick the index that matches the driver from PyTorch's install page,
      e.g.::

          CHARLM_TORCH_SPEC="torch==2.13.0 --index-url https://download.pytorch.org/whl/cu128" \\
              nox -s full

      (The study itself ran in the NVIDIA PyTorch 24.11 container: see the Dockerfile.)

Reuse
    Environments are reused between runs (``nox.options.reuse_venv = "yes"``), and a session
    skips all three installs when a stamp in its environment shows that the lock file,
    pyproject.toml, CHARLM_TORCH_SPEC and the interpreter are unchanged since the last install.
    ``nox -R`` (reuse and never install) and ``nox --reuse-venv=no`` (rebuild) still work.

Environment
    Sessions see the caller's environment (CHARLM_DATA, CHARLM_CACHE_DIR, CUDA_VISIBLE_DEVICES,
    ...). The sweep sessions also set PYTHONHASHSEED=0 and CUBLAS_WORKSPACE_CONFIG=:4096:8
    (needed before cuBLAS starts for deterministic CUDA matmuls) unless already set.
"""

from __future__ import annotations

import hashlib
import os
import shlex
import shutil
import sys
from pathlib import Path

import nox

ROOT = Path(__file__).resolve().parent
REQUIREMENTS = ROOT / "requirements"
DEFAULT_TORCH_SPEC = "torch==2.13.0"
STAMP_NAME = ".charlm-install-stamp"

nox.options.sessions = ["tests"]
nox.options.reuse_venv = "yes"
nox.options.error_on_missing_interpreters = True

# Environment for the sweeps: same values as the Dockerfile's ENV lines.
SWEEP_ENV = {"PYTHONHASHSEED": "0", "CUBLAS_WORKSPACE_CONFIG": ":4096:8"}


def torch_spec() -> list[str]:
    """The ``pip install`` arguments for torch: CHARLM_TORCH_SPEC split like a shell line."""
    spec = shlex.split(os.environ.get("CHARLM_TORCH_SPEC", DEFAULT_TORCH_SPEC))
    if not spec:
        raise ValueError("CHARLM_TORCH_SPEC is empty: unset it or give e.g. 'torch==2.13.0'")
    return spec


def _stamp(lock: Path, with_torch: bool, with_project: bool) -> str:
    """A digest of everything that decides what ``_install`` puts into the environment."""
    digest = hashlib.sha256()
    digest.update(lock.read_bytes())
    digest.update(repr((with_torch and torch_spec(), with_project, sys.version)).encode())
    if with_project:
        digest.update((ROOT / "pyproject.toml").read_bytes())
    return digest.hexdigest()


def _install(session: nox.Session, lock: str, *, torch: bool, project: bool) -> None:
    """Install torch (optional), one hash-locked file, and the project (optional).

    Skipped when the environment's stamp matches (see the module docstring, "Reuse").
    """
    lock_path = REQUIREMENTS / lock
    if not lock_path.is_file():
        session.error(f"{lock_path} is missing: regenerate the locks with requirements/compile.sh")
    stamp = _stamp(lock_path, torch, project)
    location = getattr(session.virtualenv, "location", None)
    stamp_file = Path(location) / STAMP_NAME if location else None
    if stamp_file is not None and stamp_file.is_file() and stamp_file.read_text() == stamp:
        session.log(f"environment up to date with requirements/{lock}: skipping installs")
        return
    if torch:
        session.install(*torch_spec())
    session.install("--require-hashes", "-r", str(lock_path))
    if project:
        session.install("--no-deps", "--no-build-isolation", "-e", str(ROOT))
    if stamp_file is not None:
        # run_install is skipped exactly when nox skips the installs above (``nox -R``), so the
        # stamp never claims an install that did not happen
        write = "import pathlib, sys; pathlib.Path(sys.argv[1]).write_text(sys.argv[2])"
        session.run_install("python", "-c", write, str(stamp_file), stamp, silent=True)


def _sweep_env() -> dict[str, str]:
    """SWEEP_ENV, except where the caller's environment already sets a value."""
    return {key: os.environ.get(key, value) for key, value in SWEEP_ENV.items()}


@nox.session
def tests(session: nox.Session) -> None:
    """Run pytest (tests/); arguments after ``--`` are passed to pytest."""
    _install(session, "test.txt", torch=True, project=True)
    session.run("pytest", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """Run ``ruff check .`` (or ``ruff check <posargs>``); ruff from requirements/lint.txt only."""
    _install(session, "lint.txt", torch=False, project=False)
    session.run("ruff", "check", *(session.posargs or ["."]))


def _run_sweep(session: nox.Session, name: str) -> None:
    """``python -m reproduce run --config configs/<name>.toml --out artifacts/<name>``."""
    _install(session, "runtime.txt", torch=True, project=True)
    args = ["run", "--config", f"configs/{name}.toml", "--out", f"artifacts/{name}"]
    session.run("python", "-m", "reproduce", *args, *session.posargs, env=_sweep_env())


@nox.session
def smoke(session: nox.Session) -> None:
    """The CPU smoke sweep on real tiny Shakespeare into artifacts/smoke."""
    _run_sweep(session, "smoke")


@nox.session
def full(session: nox.Session) -> None:
    """The full study sweep into artifacts/full: for a CUDA machine (set CHARLM_TORCH_SPEC)."""
    _run_sweep(session, "full")


def default_verify_dir() -> str:
    """artifacts/full if it exists, else artifacts/cpu (relative to the repository root)."""
    for candidate in ("artifacts/full", "artifacts/cpu"):
        if (ROOT / candidate).is_dir():
            return candidate
    return "artifacts/full"


@nox.session
def verify(session: nox.Session) -> None:
    """Verify a results directory: ``nox -s verify -- DIR [options]``."""
    args = list(session.posargs) or [default_verify_dir()]
    _install(session, "runtime.txt", torch=True, project=True)
    session.run("python", "-m", "reproduce", "verify", *args)


@nox.session
def container(session: nox.Session) -> None:
    """The container route for real: ``containers/check.py`` (see its docstring and the README).

    Builds a stand-in for NVIDIA's image (cached) and the project's image from the Dockerfile,
    runs the compose ``smoke`` and ``verify`` services and checks what they wrote. Docker if it
    answers, else podman (podman-compose is installed here, hash-pinned, when it is missing).
    ``nox -s container -- --offline-build`` times a build with no network instead.
    """
    if shutil.which("podman") and not shutil.which("podman-compose"):
        session.install("--require-hashes", "-r", str(ROOT / "containers" / "podman-compose.txt"))
    session.run("python", str(ROOT / "containers" / "check.py"), *session.posargs)
