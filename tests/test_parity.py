"""Parity with the study's published runs: step-0 losses under the study protocol on the real
tiny Shakespeare equal the study's own records (../shared/original-study) to 1e-4.

A step-0 evaluation is 2 x 200 forward batches of 64 windows: see README, "The study
protocol", for what each costs on two CPU cores. The suite runs the lite scale's ReLU seed 42
through the command; ``CHARLM_PARITY=all`` adds seeds 43 and 44 and the partial scale's seed
42."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from charlm.study.train import step0_losses
from reproduce.config import load_config
from reproduce.parity import PUBLISHED, published_step0, scale_of

ROOT = Path(__file__).resolve().parents[1]
STUDY = ROOT / ".." / "shared" / "original-study"
needs_study = pytest.mark.skipif(not STUDY.is_dir(), reason="../shared/original-study missing")
# the initial weights of the lite scale, ReLU, seed 42 (also pinned in tests/test_study.py)
LITE_RELU_42_INIT = "9ff4ae56185748e6def47106e51ba2b93e2b87510fd7fdce2447686be68381f9"


def spec_of(config_path, activation, seed):
    config = load_config(ROOT / config_path)
    return next(t.spec for t in config.trials(65) if t.activation == activation and t.seed == seed)


@needs_study
def test_published_values_are_found_where_the_study_recorded_them():
    lite = published_step0(STUDY, "lite", "relu", 42)
    assert [(p["train_loss"], p["val_loss"]) for p in lite] == [
        (4.150571346282959, 4.153796195983887)  # charlm-relu-20251207_220622.json, trial 1
    ]
    assert lite[0]["source"].endswith("charlm-relu-20251207_220622.json trial 1")
    full = published_step0(STUDY, "full", "relu", 42)
    assert [round(p["train_loss"], 4) for p in full] == [4.3444] * 3  # 2 files and the log
    assert full[-1]["decimals"] == 4 and full[-1]["val_loss"] == 4.3433
    assert published_step0(STUDY, "partial", "smelu-1.0", 44)[0]["train_loss"] == (
        4.362963676452637
    )
    for scale in PUBLISHED.values():
        for files in scale.values():
            assert all((STUDY / f).is_file() for f in files)


def test_shipped_study_configs_are_the_studys_scales():
    for path, scale in [
        ("configs/study-lite.toml", "lite"),
        ("configs/study-partial.toml", "partial"),
        ("configs/full.toml", "full"),
    ]:
        assert scale_of(load_config(ROOT / path)) == scale
    with pytest.raises(Exception, match="not a study-protocol config"):
        scale_of(load_config(ROOT / "configs/full-nanogpt.toml"))


@needs_study
def test_parity_command_reports_lite_relu_seed_42(tmp_path, data_path):
    """The command end to end: the published lite-scale step-0 losses of ReLU seed 42
    (4.150571 / 4.153796) to 1e-4, exit 0, the initial weights' digest stable."""
    out = tmp_path / "parity.json"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "reproduce",
            "parity",
            "--config",
            "configs/study-lite.toml",
            "--activations",
            "relu",
            "--seeds",
            "42",
            "--data",
            str(data_path),
            "--out",
            str(out),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (result,) = json.loads(out.read_text())["results"]
    assert abs(result["train_loss"] - 4.150571346282959) <= 1e-4
    assert abs(result["val_loss"] - 4.153796195983887) <= 1e-4
    assert result["init_sha256"] == LITE_RELU_42_INIT
    assert "ok" in proc.stdout and "DIFFERS" not in proc.stdout
    # plain progress (stderr is no terminal): a line every 40 of the 400 batches, time left
    progress = [line for line in proc.stderr.splitlines() if "batches" in line]
    assert len(progress) == 9 and "relu seed 42: 40/400 batches" in progress[0]
    assert all(line.endswith(" left") for line in progress)


@needs_study
@pytest.mark.slow
@pytest.mark.skipif(
    os.environ.get("CHARLM_PARITY") != "all",
    reason="minutes of CPU each (README, The study protocol): set CHARLM_PARITY=all to run",
)
@pytest.mark.parametrize(
    ("config", "seed"),
    [
        ("configs/study-lite.toml", 43),
        ("configs/study-lite.toml", 44),
        ("configs/study-partial.toml", 42),
    ],
)
def test_step0_losses_equal_the_published_ones(config, seed, corpus):
    spec = spec_of(config, "relu", seed)
    ours = step0_losses(
        spec.model, corpus, seed, spec.train.eval_iters, spec.train.batch_size, threads=2
    )
    scale = scale_of(load_config(ROOT / config))
    (published,) = published_step0(STUDY, scale, "relu", seed)
    assert abs(ours["train_loss"] - published["train_loss"]) <= 1e-4
    assert abs(ours["val_loss"] - published["val_loss"]) <= 1e-4


def test_compare_allows_the_logs_rounding_only():
    from reproduce.parity import compare

    log = {"train_loss": 4.3444, "val_loss": 4.3433, "decimals": 4, "source": "log"}
    exact = {"train_loss": 4.344427, "val_loss": 4.343263, "decimals": None, "source": "json"}
    close = {"train_loss": 4.34443, "val_loss": 4.34327}
    assert [r["ok"] for r in compare(close, [log, exact], 1e-4)] == [True, True]
    far = {"train_loss": 4.3447, "val_loss": 4.34327}  # 2.7e-4 from the float record
    assert [r["ok"] for r in compare(far, [log, exact], 1e-4)] == [False, False]
