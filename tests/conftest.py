"""Shared fixtures: the real tiny Shakespeare corpus and a tiny trial that trains in seconds."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest

from charlm.data import Corpus, resolve_data_path
from charlm.model import ModelConfig
from charlm.train import TrainConfig, TrialSpec

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data" / "tinyshakespeare" / "input.txt"
if SHARED_DATA.is_file():  # commands run by tests find tiny Shakespeare as CI's would
    os.environ.setdefault("CHARLM_DATA", str(SHARED_DATA))


def run_group(command: list[str], timeout: float, **kwargs) -> subprocess.CompletedProcess:
    """``subprocess.run`` in a session of its own: on a timeout every process it started (the
    preflight, torchrun's ranks) is killed with it, not only the first."""
    with subprocess.Popen(
        command,
        start_new_session=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kwargs,
    ) as proc:
        try:
            stdout, stderr = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            raise
    return subprocess.CompletedProcess(command, proc.returncode, stdout, stderr)


@pytest.fixture(scope="session")
def data_path() -> Path:
    """tiny Shakespeare: $CHARLM_DATA, else the shared copy beside the repository."""
    if os.environ.get("CHARLM_DATA"):
        return Path(os.environ["CHARLM_DATA"])
    if SHARED_DATA.is_file():
        return SHARED_DATA
    pytest.fail("tiny Shakespeare not found: set CHARLM_DATA to a local copy of input.txt")


@pytest.fixture(scope="session")
def corpus(data_path) -> Corpus:
    return Corpus.load(resolve_data_path(data_path))


def tiny_spec(seed: int = 0, max_iters: int = 24, **train) -> TrialSpec:
    """A 1-layer, 32-wide model on 32-character windows: a few seconds on two CPU cores."""
    model = ModelConfig(
        n_layer=1, n_head=2, n_embd=32, block_size=32, vocab_size=65, dropout=0.1, activation="gelu"
    )
    settings = dict(
        max_iters=max_iters,
        batch_size=8,
        lr=1e-3,
        warmup_iters=4,
        eval_interval=8,
        eval_batch_size=512,
        log_interval=4,
        threads=2,
        device="cpu",
    )
    settings.update(train)
    return TrialSpec(model, TrainConfig(**settings), seed=seed)


TINY_SWEEP = """
name = "tiny"
description = "test sweep"

[model]
n_layer = 1
n_head = 2
n_embd = 16
block_size = 16
dropout = 0.1

[train]
max_iters = {max_iters}
batch_size = 8
lr = 3e-3
warmup_iters = 2
eval_interval = 4
eval_batch_size = 1024
log_interval = 2
precision = "fp32"
threads = 2
device = "cpu"

[sweep]
activations = {activations}
seeds = {seeds}

[report]
sample_tokens = 40
pd_batch_size = 1024
"""


def write_sweep(
    path: Path, activations=("relu", "gelu"), seeds=(0, 1), max_iters=8, extra: str = ""
) -> Path:
    """A tiny sweep config (1 layer, width 16, 8 steps) written to ``path``."""
    text = TINY_SWEEP.format(
        activations=list(activations), seeds=list(seeds), max_iters=max_iters
    ).replace("'", '"')
    path.write_text(text + extra, encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def tiny_sweep(tmp_path_factory, data_path) -> tuple[Path, Path]:
    """(config, output directory) of the default :func:`write_sweep` sweep, finished by
    ``python -m reproduce run``; shared read-only (tests that change it work on a copy)."""
    from reproduce.cli import main

    root = tmp_path_factory.mktemp("tiny-sweep")
    config = write_sweep(root / "tiny.toml")
    out = root / "out"
    assert main(["run", "--config", str(config), "--out", str(out), "--data", str(data_path)]) == 0
    return config, out


def nox_session_commands(name: str) -> list[list[str]]:
    """The argv of every ``session.run`` of noxfile.py's session ``name``, without nox.

    noxfile.py is loaded with a stand-in ``nox`` module and its session called with a recorder,
    so tests see what the session would run (installs are recorded apart and not returned).
    """
    import importlib.util
    import sys
    import types

    stub = types.ModuleType("nox")
    stub.session = lambda func=None, **_: func if func else (lambda f: f)
    stub.options = types.SimpleNamespace()
    stub.Session = object

    class Recorder:
        posargs: list[str] = []
        virtualenv = types.SimpleNamespace(location=None)

        def __init__(self) -> None:
            self.runs: list[list[str]] = []

        def install(self, *args: str) -> None:
            pass

        def run_install(self, *args: str, **kwargs) -> None:
            pass

        def log(self, *args) -> None:
            pass

        def error(self, message: str) -> None:
            raise AssertionError(message)

        def run(self, *args: str, **kwargs) -> None:
            self.runs.append(list(args))

    saved = sys.modules.get("nox")
    sys.modules["nox"] = stub
    try:
        spec = importlib.util.spec_from_file_location("noxfile_under_test", REPO / "noxfile.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        if saved is None:
            del sys.modules["nox"]
        else:
            sys.modules["nox"] = saved
    session = Recorder()
    getattr(module, name)(session)
    return session.runs
