"""Trial by trial against the study (reproduce.studytrials), on the real reference data.

Our study-protocol partial sweep does not exist yet, so "ours" is a synthetic results.json built
from the study's own trials of config.py (``Config``) plus known offsets: every number the
comparison shows then follows exactly from the study's files and the offsets. The nanoGPT
column is artifacts/partial-cpu as published.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from reproduce import results, studytrials
from reproduce.cli import main

REPO = Path(__file__).resolve().parents[1]
REFERENCE = REPO / "artifacts" / "reference"
RAW = json.loads((REFERENCE / "study-raw.json").read_text(encoding="utf-8"))
PROV = json.loads((REFERENCE / "provenance.json").read_text(encoding="utf-8"))
NANOGPT = results.load_results(REPO / "artifacts" / "partial-cpu")
OURS_NAMES = {"smelu_05": "smelu-0.5", "smelu_1": "smelu-1.0"}
STEP0_OFFSETS = (1e-5, -2e-5)  # ours minus the study's, train and val


def val_offset(index: int) -> float:
    """Our final val loss minus the study's, for the study's trial ``index`` (0, 1, 2)."""
    return 0.01 * (index + 1)


def synthetic(runs: dict | None = None, extra: dict | None = None) -> dict:
    """A study-protocol results.json of config.py's settings: the study's trials of ``Config``
    with our final val loss ``val_offset`` higher, train loss half that, val accuracy ten
    times that lower, step-0 losses :data:`STEP0_OFFSETS` apart; ``extra``: activation ->
    a further val-loss offset."""
    runs = runs or studytrials.published_runs(RAW, PROV, "Config")
    trials = []
    for name in ("relu", "gelu", "swish", "smelu_05", "smelu_1"):
        activation = OURS_NAMES.get(name, name)
        for i, t in enumerate(runs[name]["trials"]):
            off = val_offset(i) + (extra or {}).get(activation, 0.0)
            trials.append(
                {
                    "id": f"{activation}-s{t['seed']}",
                    "activation": activation,
                    "seed": t["seed"],
                    "protocol": "study",
                    "model": {"n_layer": 2, "n_embd": 256, "n_head": 4, "block_size": 256},
                    "train": {
                        "max_iters": 500,
                        "eval_interval": 100,
                        "eval_iters": 200,
                        "batch_size": 64,
                        "precision_used": "fp32",
                    },
                    "environment": {"cpu_model": "AMD EPYC", "cpu_capability": "AVX2"},
                    "curves": [
                        {
                            "step": 0,
                            "train_loss": t["train_loss_history"][0] + STEP0_OFFSETS[0],
                            "val_loss": t["val_loss_history"][0] + STEP0_OFFSETS[1],
                        }
                    ],
                    "final": {
                        "train_loss": t["train_loss"] + off / 2,
                        "val_loss": t["val_loss"] + off,
                        "val_accuracy": t["val_accuracy"] - 10 * off,
                    },
                }
            )
    return {"trials": trials}


def test_the_partial_scale_is_config_py_and_its_five_files():
    assert studytrials.study_config(synthetic(), PROV)["file"] == "config.py"
    runs = studytrials.published_runs(RAW, PROV, "Config")
    assert {a: r["file"] for a, r in runs.items()} == {
        "relu": "results-Dec7-3hrs/charlm-relu-20251207_224444.json",
        "gelu": "results-Dec7-3hrs/charlm-gelu-20251207_224906.json",
        "swish": "results-Dec7-3hrs/charlm-swish-20251207_225407.json",
        "smelu_05": "results-Dec7-3hrs/charlm-smelu_05-20251207_223355.json",
        "smelu_1": "results-Dec7-3hrs/charlm-smelu_1-20251207_224012.json",
    }


def test_each_trial_beside_the_published_one_with_its_differences():
    rows = {r["id"]: r for r in studytrials.trial_rows(synthetic(), RAW, PROV)}
    assert len(rows) == 15 and all(r["published"] for r in rows.values())
    relu = rows["relu-s42"]
    assert relu["source"] == {
        "file": "results-Dec7-3hrs/charlm-relu-20251207_224444.json",
        "trial": 1,
    }
    # the published step-0 losses of README's parity table (partial, ReLU, seed 42)
    assert round(relu["step0_train_loss"]["study"], 6) == 4.288942
    assert round(relu["step0_val_loss"]["study"], 6) == 4.285429
    assert relu["step0_train_loss"]["diff"] == pytest.approx(1e-5, abs=1e-12)
    assert relu["step0_val_loss"]["diff"] == pytest.approx(-2e-5, abs=1e-12)
    assert relu["step0_agrees"] is True
    smelu = rows["smelu-1.0-s44"]  # the study's smelu_1, trial 3
    assert smelu["study_activation"] == "smelu_1" and smelu["source"]["trial"] == 3
    assert smelu["val_loss"]["diff"] == pytest.approx(0.03, abs=1e-12)
    assert smelu["train_loss"]["diff"] == pytest.approx(0.015, abs=1e-12)
    assert smelu["val_accuracy"]["diff"] == pytest.approx(-0.3, abs=1e-12)
    assert smelu["val_loss"]["ours"] - smelu["val_loss"]["study"] == smelu["val_loss"]["diff"]


def test_a_step0_difference_beyond_the_tolerance_or_a_skipped_evaluation_is_shown():
    ours = synthetic()
    ours["trials"][0]["curves"][0]["val_loss"] += 2e-4  # relu-s42
    ours["trials"][1]["curves"][0] = {"step": 0, "computed": False}  # relu-s43 skipped it
    rows = {r["id"]: r for r in studytrials.trial_rows(ours, RAW, PROV)}
    assert rows["relu-s42"]["step0_agrees"] is False
    assert rows["relu-s43"]["step0_agrees"] is None
    assert rows["relu-s43"]["step0_val_loss"]["ours"] is None
    text = studytrials.markdown(studytrials.compare_trials(ours, RAW, PROV))
    assert "13 of 14 trials with a computed step-0 evaluation agree to 1e-04 nats." in text
    assert "| relu-s43 | — | 4.110332 | — | — | 4.109221 | — |" in text


def test_paired_by_seed_with_n_3_and_the_closed_form_p():
    paired = {
        p["activation"]: p
        for p in studytrials.paired(studytrials.trial_rows(synthetic(), RAW, PROV))
    }
    # differences 0.01, 0.02, 0.03: mean 0.02, SD 0.01, t = 0.02 / (0.01 / sqrt 3) = 2 sqrt 3;
    # two-sided p with 2 degrees of freedom: 1 - t / sqrt(2 + t^2)
    t = 2 * math.sqrt(3)
    for entry in paired.values():
        assert entry["n"] == 3
        assert entry["mean_diff"] == pytest.approx(0.02, abs=1e-12)
        assert entry["t"] == pytest.approx(t, rel=1e-9)
        assert entry["p"] == pytest.approx(1 - t / math.sqrt(2 + t * t), rel=1e-9)
        assert entry["distinguishable"] is False
    assert paired["relu"]["study_mean"] == pytest.approx(1.9910, abs=5e-5)  # README's figure


def test_equal_differences_leave_the_test_undefined():
    rows = studytrials.trial_rows(synthetic(), RAW, PROV)
    for row in rows:
        row["val_loss"]["ours"] = row["val_loss"]["study"] + 0.25
    entry = studytrials.paired(rows)[0]
    assert entry["t"] is None and entry["p"] is None
    assert entry["undefined"] == "every seed differs by the same amount (no variance)"


def test_rankings_agree_until_an_activation_moves():
    rows = studytrials.trial_rows(synthetic(), RAW, PROV)
    order = ["relu", "smelu-0.5", "gelu", "swish", "smelu-1.0"]  # README: within config.py
    assert studytrials.rankings(rows) == {"ours": order, "study": order, "agree": True}
    moved = studytrials.trial_rows(synthetic(extra={"relu": 0.1}), RAW, PROV)
    ranking = studytrials.rankings(moved)
    assert ranking["ours"] == ["smelu-0.5", "gelu", "relu", "swish", "smelu-1.0"]  # 2.111
    assert ranking["agree"] is False


def test_the_markdown_tables_show_the_numbers():
    text = studytrials.markdown(studytrials.compare_trials(synthetic(), RAW, PROV))
    assert "| relu-s42 | 4.288952 | 4.288942 | +1.0e-05 | 4.285409 | 4.285429 | -2.0e-05 |" in text
    assert "| smelu-1.0-s44 | 2.1080 | 2.0930 | +0.0150 | 2.1932 | 2.1632 | +0.0300 |" in text
    assert "| smelu-1.0-s44 | 24.50 | 24.80 | -0.30 |" in text
    assert "| relu | 3 | 2.0110 | 1.9910 | +0.0200 | 3.46 | 0.0742 | no |" in text
    assert "15 of 15 trials with a computed step-0 evaluation agree" in text
    prose = " ".join(text.split())
    assert "the rankings agree." in prose
    assert "dropout masks" in prose and "rounding" in prose
    assert "platform (ours: AMD EPYC (AVX2), fp32;" in prose
    assert max(len(line) for line in text.splitlines() if not line.startswith("|")) <= 80


def test_three_columns_the_study_ours_and_the_nanogpt_recipe():
    rows = {
        r["activation"]: r
        for r in studytrials.three_columns(RAW, PROV, "Config", synthetic(), NANOGPT)
    }
    assert list(rows) == ["relu", "gelu", "swish", "smelu-0.5", "smelu-1.0"]
    # the study's config.py means (README) and artifacts/partial-cpu's (README's table)
    study = {a: round(r["study"]["mean"], 4) for a, r in rows.items()}
    assert study == {
        "relu": 1.9910,
        "gelu": 2.0637,
        "swish": 2.1391,
        "smelu-0.5": 2.0474,
        "smelu-1.0": 2.1564,
    }
    for row in rows.values():
        assert row["study_protocol"]["mean"] == pytest.approx(row["study"]["mean"] + 0.02)
        assert row["study_protocol"]["n"] == row["nanogpt"]["n"] == 3
    assert round(rows["relu"]["nanogpt"]["mean"], 4) == 2.3594
    assert round(rows["relu"]["nanogpt"]["sd"], 4) == 0.0109
    assert round(rows["smelu-1.0"]["nanogpt"]["mean"], 4) == 2.4095
    text = studytrials.three_columns_markdown(rows.values(), PROV["candidates"][0])
    assert "n = 3 seeds in each cell" in text and "not like for like" in text
    assert "| relu | 1.9910 ± 0.0088 | 2.0110 ± 0.0054 | 2.3594 ± 0.0109 |" in text


def test_three_columns_without_our_study_protocol_sweep_yet():
    rows = studytrials.three_columns(RAW, PROV, "Config", None, NANOGPT)
    assert all(r["study_protocol"] is None for r in rows)
    text = studytrials.three_columns_markdown(rows, PROV["candidates"][0])
    assert "| smelu-1.0 | 2.1564 ± 0.0078 | — | 2.4095 ± 0.0025 |" in text


def test_sweeps_that_cannot_be_compared_are_refused():
    with pytest.raises(ValueError, match="not trained under the study protocol"):
        studytrials.compare_trials(NANOGPT, RAW, PROV)
    other = synthetic()
    for trial in other["trials"]:
        trial["model"]["n_embd"] = 128
    with pytest.raises(ValueError, match="none of the study's configurations"):
        studytrials.trial_rows(other, RAW, PROV)
    with pytest.raises(ValueError, match="has n_layer = 2, ConfigFullGPU 6"):
        studytrials.three_columns(RAW, PROV, "ConfigFullGPU", None, NANOGPT)


def test_the_command_prints_the_tables(monkeypatch, capsys, tmp_path):
    real = results.load_results
    monkeypatch.setattr(
        results,
        "load_results",
        lambda d: synthetic() if Path(d) == tmp_path else real(d),  # schema-free stand-in
    )
    argv = ["reference", "trials", str(tmp_path), "--nanogpt", "artifacts/partial-cpu"]
    monkeypatch.chdir(REPO)
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "| relu | 3 | 2.0110 | 1.9910 | +0.0200 | 3.46 | 0.0742 | no |" in out
    assert "| relu | 1.9910 ± 0.0088 | 2.0110 ± 0.0054 | 2.3594 ± 0.0109 |" in out
    assert main(["reference", "trials", "artifacts/partial-cpu"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not trained under the study protocol" in err
