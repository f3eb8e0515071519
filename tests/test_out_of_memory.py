"""Out of memory, on the CPU for real and on CUDA simulated: a one-line error naming what was
being done, the memory asked for and the setting to lower; the trial's saved state is kept."""

import pytest
import torch
from conftest import tiny_spec, write_sweep

from charlm import train
from charlm.io import sha256_file
from charlm.train import TrainingInterrupted, TrainingOutOfMemory, train_trial
from reproduce.cli import main

# 2**46 windows of int64 starts: 512 TiB, beyond any machine's address space, so the allocator
# refuses at once (no memory is touched, whatever the kernel's overcommit setting)
HUGE_BATCH = 2**46


def test_a_batch_too_large_for_memory_is_a_one_line_error(tmp_path, corpus):
    out = tmp_path / "gelu-s0"
    with pytest.raises(TrainingOutOfMemory) as info:
        train_trial(tiny_spec(0, batch_size=HUGE_BATCH), corpus, out, progress=False)
    message = str(info.value)
    assert message == (
        "out of memory (cpu) in a training step at step 0: it asked for 512.0 TiB; lower "
        f"train.batch_size ({HUGE_BATCH} windows of model.block_size 32 characters); "
        "no state was saved"
    )
    assert isinstance(info.value, MemoryError) and isinstance(info.value, ValueError)
    assert not (out / "weights.safetensors").exists() and not (out / "trial.json").exists()


def saved_state(tmp_path, corpus):
    """A trial stopped at step 8 with its state saved; returns (spec, directory, digest)."""
    spec, out = tiny_spec(0), tmp_path / "gelu-s0"
    with pytest.raises(TrainingInterrupted):
        train_trial(spec, corpus, out, stop_check=lambda step: step == 8, progress=False)
    return spec, out, sha256_file(out / "state.safetensors")


def test_cuda_out_of_memory_keeps_the_saved_state(tmp_path, corpus, monkeypatch):
    spec, out, digest = saved_state(tmp_path, corpus)
    real_step = train.TrainingSetup.step

    def step(self, number, data):
        if number >= 10:
            raise torch.OutOfMemoryError(
                "CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total capacity of "
                "79.10 GiB of which 1.50 GiB is free."
            )
        return real_step(self, number, data)

    monkeypatch.setattr(train.TrainingSetup, "step", step)
    with pytest.raises(TrainingOutOfMemory) as info:
        train_trial(spec, corpus, out, progress=False)
    assert str(info.value) == (
        "out of memory (cpu) in a training step at step 10: it asked for 2.00 GiB; lower "
        "train.batch_size (8 windows of model.block_size 32 characters); the saved state of "
        "step 8 is kept"
    )
    assert sha256_file(out / "state.safetensors") == digest  # untouched, resumable
    assert not (out / "trial.json").exists()
    monkeypatch.setattr(train.TrainingSetup, "step", real_step)
    record = train_trial(spec, corpus, out, progress=False)  # resumes from it
    assert record["resumed_at_steps"] == [8] and record["final"]["step"] == 24


def test_out_of_memory_in_an_evaluation_names_the_eval_batch(tmp_path, corpus, monkeypatch):
    def evaluate(*args, **kwargs):
        raise RuntimeError(
            "[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't allocate "
            "memory: you tried to allocate 1073741824 bytes. Error code 12 (Cannot allocate "
            "memory)"
        )

    monkeypatch.setattr(train, "evaluate", evaluate)
    with pytest.raises(TrainingOutOfMemory) as info:
        train_trial(tiny_spec(0), corpus, tmp_path / "t", progress=False)
    assert str(info.value) == (
        "out of memory (cpu) in an evaluation at step 0: it asked for 1.0 GiB; lower "
        "train.eval_batch_size (512 windows of model.block_size 32 characters); no state was "
        "saved"
    )


def test_other_errors_pass_unchanged(tmp_path, corpus, monkeypatch):
    def evaluate(*args, **kwargs):
        raise RuntimeError("shape mismatch")

    monkeypatch.setattr(train, "evaluate", evaluate)
    with pytest.raises(RuntimeError, match="^shape mismatch$"):
        train_trial(tiny_spec(0), corpus, tmp_path / "t", progress=False)


def test_run_names_the_failed_trial_and_dry_run_refuses(tmp_path, data_path, capsys):
    config = write_sweep(tmp_path / "tiny.toml")
    out = tmp_path / "out"
    args = ["run", "--config", str(config), "--out", str(out), "--data", str(data_path)]
    huge = ["--set", f"train.batch_size={HUGE_BATCH}"]
    assert main([*args, *huge, "--dry-run"]) == 2  # the estimate's timed step fails the same
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and not out.exists()
    assert err.startswith("error: out of memory (cpu) in a training step at step 0: it asked ")
    assert "lower train.batch_size" in err and "found while timing it for the estimate" in err
    assert main([*args, *huge, "--trials", "relu-s0"]) == 1
    captured = capsys.readouterr()
    assert "1 trial(s) failed: relu-s0" in captured.err
    assert "FAILED: TrainingOutOfMemory: out of memory (cpu) in a training step" in " ".join(
        captured.out.split()
    )
