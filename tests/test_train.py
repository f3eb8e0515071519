import json
import math
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import tiny_spec

from charlm import checkpoint
from charlm.io import atomic_write_bytes, sha256_file
from charlm.model import CharLM, ModelConfig
from charlm.train import (
    STATE_FILE,
    NonFiniteLossError,
    TrainConfig,
    TrialSpec,
    is_finished,
    learning_rate,
    train_trial,
)

WORKER = Path(__file__).with_name("train_worker.py")


def worker_args(out, seed, stop=None, max_iters=24, eval_interval=8):
    stop = -1 if stop is None else stop
    return [
        sys.executable,
        str(WORKER),
        str(out),
        str(seed),
        str(stop),
        str(max_iters),
        str(eval_interval),
    ]


def run_worker(out, seed, stop=None, max_iters=24, check=True, eval_interval=8):
    args = worker_args(out, seed, stop, max_iters, eval_interval)
    proc = subprocess.run(args, capture_output=True, text=True)
    if check and proc.returncode not in (0, 3):
        raise AssertionError(proc.stderr)
    return proc


def digest(trial_dir):
    return sha256_file(Path(trial_dir) / "weights.safetensors")


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("ref") / "gelu-s0"
    assert run_worker(out, 0).returncode == 0
    return out


def test_two_processes_give_identical_weights(reference_run, tmp_path):
    assert run_worker(tmp_path / "again", 0).returncode == 0
    assert digest(tmp_path / "again") == digest(reference_run)
    record = json.loads((reference_run / "trial.json").read_text())
    assert record["weights_sha256"] == digest(reference_run)
    assert record["determinism"]["threads"] == 2
    assert record["environment"]["threads"] == 2
    assert not (reference_run / "state.safetensors").exists()


def test_another_seed_gives_other_weights(reference_run, tmp_path):
    assert run_worker(tmp_path / "s1", 1).returncode == 0
    assert digest(tmp_path / "s1") != digest(reference_run)


def test_stopped_and_resumed_in_new_process_is_bit_identical(reference_run, tmp_path):
    out = tmp_path / "resumed"
    assert run_worker(out, 0, stop=13).returncode == 3
    assert (out / "state.safetensors").is_file() and not (out / "weights.safetensors").exists()
    assert run_worker(out, 0).returncode == 0
    assert digest(out) == digest(reference_run)
    record = json.loads((out / "trial.json").read_text())
    assert record["resumed_at_steps"] == [13]
    reference = json.loads((reference_run / "trial.json").read_text())
    for mine, theirs in zip(record["curves"], reference["curves"], strict=True):
        assert mine["step"] == theirs["step"] and mine["val_loss"] == theirs["val_loss"]


def test_sigint_saves_state_and_resume_matches(reference_run, tmp_path):
    out = tmp_path / "sigint"
    # 1,000 steps with evaluations at 0, 100, ... : the signal lands between 100 and 1,000
    args = worker_args(out, 0, max_iters=1000, eval_interval=100)
    proc = subprocess.Popen(args, stderr=subprocess.PIPE, text=True)
    log = out / "log.jsonl"
    # the signal is sent only once step 100's evaluation is logged, however slow the machine:
    # a deadline that sent it anyway would make the assertion below a race with the load
    deadline = time.monotonic() + 900
    while not (log.is_file() and log.read_text().count("\n") >= 2):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"the worker logged no evaluation after step 0 (exit {proc.poll()})")
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 3, err
    assert "stopped at step" in err and "SIGINT" in err
    state = checkpoint._read(out / "state.safetensors", checkpoint.STATE_FORMAT)[1]
    assert 100 <= state["progress"]["step"] < 1000
    assert run_worker(out, 0, max_iters=1000, eval_interval=100).returncode == 0
    uninterrupted = tmp_path / "whole"
    assert run_worker(uninterrupted, 0, max_iters=1000, eval_interval=100).returncode == 0
    assert digest(out) == digest(uninterrupted)


def test_killed_at_random_moments_leaves_only_valid_files(tmp_path):
    """SIGKILL a trial at several moments: every file present is whole (or a .tmp leftover),
    and resuming still ends bit-identical to an uninterrupted run."""
    out = tmp_path / "killed"
    args = worker_args(out, 0, max_iters=600, eval_interval=50)
    for delay in (2.5, 3.0, 3.5, 4.0):
        proc = subprocess.Popen(args, stderr=subprocess.DEVNULL)
        time.sleep(delay)
        proc.kill()
        proc.wait()
        for path in out.glob("*"):
            if path.name.endswith(".tmp"):
                continue
            if path.suffix == ".safetensors":
                checkpoint._read(
                    path,
                    checkpoint.STATE_FORMAT
                    if path.name.startswith("state")
                    else checkpoint.WEIGHTS_FORMAT,
                )
            elif path.suffix in (".json", ".jsonl"):
                for line in path.read_text().splitlines():
                    json.loads(line) if path.suffix == ".jsonl" else None
                if path.suffix == ".json":
                    json.loads(path.read_text())
    assert run_worker(out, 0, max_iters=600, eval_interval=50).returncode == 0
    whole = tmp_path / "whole"
    assert run_worker(whole, 0, max_iters=600, eval_interval=50).returncode == 0
    assert digest(out) == digest(whole)


def test_atomic_write_failure_leaves_old_content(tmp_path, monkeypatch):
    target = tmp_path / "f.json"
    target.write_text("old")

    def boom(fd):
        raise OSError("disk full")

    monkeypatch.setattr("os.fsync", boom)
    with pytest.raises(OSError, match="disk full"):
        atomic_write_bytes(target, b"new")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.json"]


def test_loss_starts_near_ln65_and_falls(corpus, tmp_path):
    spec = tiny_spec(0, max_iters=300, eval_interval=150, lr=3e-3, warmup_iters=20, batch_size=16)
    record = train_trial(spec, corpus, tmp_path / "learn", progress=False)
    first, last = record["curves"][0], record["curves"][-1]
    assert abs(first["val_loss"] - math.log(65)) < 0.1
    assert last["step"] == 300 and last["val_loss"] < 2.9
    assert record["best"]["val_loss"] <= last["val_loss"]
    assert [c["step"] for c in record["curves"]] == [0, 150, 300]
    assert 0 < last["val_accuracy"] < 100 and last["val_accuracy"] > first["val_accuracy"]


def test_non_finite_loss_names_the_step_and_keeps_state(corpus, tmp_path, monkeypatch):
    calls = {"n": 0}
    original = CharLM.forward

    def poisoned(self, idx, targets=None):
        out = original(self, idx, targets)
        if targets is not None and self.training:
            calls["n"] += 1
            if calls["n"] > 10:  # from the 11th training step on (step 10)
                return out[0], out[1] * float("nan")
        return out

    monkeypatch.setattr(CharLM, "forward", poisoned)
    with pytest.raises(NonFiniteLossError, match="step 10; the state of step 8 is kept"):
        train_trial(tiny_spec(0), corpus, tmp_path / "nan", progress=False)
    assert (tmp_path / "nan" / "state.safetensors").is_file()
    assert not is_finished(tmp_path / "nan")


@pytest.mark.parametrize(
    ("model", "train", "message"),
    [
        ({"block_size": 200_000}, {}, "block_size 200000 does not fit the data"),
        ({"vocab_size": 50}, {}, "vocab_size is 50 but the corpus has 65"),
    ],
)
def test_configs_that_do_not_fit_are_refused_before_work(corpus, tmp_path, model, train, message):
    base = tiny_spec(0)
    cfg = ModelConfig(
        **{**base.model.to_dict(), "dropout_sites": base.model.dropout_sites, **model}
    )
    with pytest.raises(ValueError, match=message):
        train_trial(TrialSpec(cfg, base.train, 0), corpus, tmp_path / "x", progress=False)
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"max_iters": 0}, "max_iters must be a positive integer"),
        ({"precision": "fp8"}, "precision must be one of"),
        ({"lr": -1.0}, "lr must be a positive number"),
        ({"threads": 0}, "threads must be a positive integer"),
        ({"device": "mps"}, "device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got 'mps'"),
        ({"device": "cuda:x"}, "device must be"),
    ],
)
def test_invalid_train_settings(settings, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**settings)


def test_unreadable_saved_state_is_kept_and_named(corpus, tmp_path):
    out = tmp_path / "trial"
    out.mkdir()
    (out / STATE_FILE).write_bytes(b"not a state")
    with pytest.raises(ValueError, match="state.safetensors .*; delete it to train this trial"):
        train_trial(tiny_spec(0), corpus, out, progress=False)
    assert (out / STATE_FILE).read_bytes() == b"not a state"


def test_learning_rate_schedule():
    cfg = TrainConfig(max_iters=1000, lr=1e-3, warmup_iters=100).resolved()
    assert cfg.min_lr == pytest.approx(1e-4) and cfg.lr_decay_iters == 1000
    assert learning_rate(0, cfg) == pytest.approx(1e-3 / 101)
    assert learning_rate(99, cfg) == pytest.approx(1e-3 * 100 / 101)
    assert learning_rate(100, cfg) == pytest.approx(1e-3)
    assert learning_rate(550, cfg) == pytest.approx(1e-4 + 0.5 * 9e-4)  # cosine midpoint
    assert learning_rate(1000, cfg) == pytest.approx(1e-4)


def test_weights_file_loads_into_recorded_architecture(reference_run):
    model, chars = checkpoint.load_weights(reference_run / "weights.safetensors")
    assert len(chars) == 65 and model.config.n_embd == 32
    raw = (reference_run / "weights.safetensors").read_bytes()
    tensors = {k: v.clone() for k, v in model.state_dict().items()}
    bad = reference_run.parent / "bad.safetensors"
    from safetensors.torch import save

    tensors["head.weight"] = torch.zeros(3, 3)
    header = checkpoint._read(reference_run / "weights.safetensors", checkpoint.WEIGHTS_FORMAT)[1]
    bad.write_bytes(save(tensors, metadata=checkpoint._metadata(header)))
    with pytest.raises(ValueError, match="does not fit its recorded architecture"):
        checkpoint.load_weights(bad)
    assert len(raw) > 0
