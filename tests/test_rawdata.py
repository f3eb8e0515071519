"""The study's raw data as reference data: the import (reproducible from the study's copy, schema
checked, every file's source), and the provenance of every result file.

Expected values are read off the study's files by eye (../shared/original-study): the log's
lines, the result files' first history points, their lengths.
"""

from __future__ import annotations

import copy
import hashlib
import json
import shutil
from pathlib import Path

import pytest

from reproduce.cli import main
from reproduce.rawdata import command, importer, provenance, selfpd, step0

REPO = Path(__file__).resolve().parents[1]
REFERENCE = REPO / "artifacts" / "reference"
SOURCE = REPO.parent / "shared" / "original-study"
needs_copy = pytest.mark.skipif(not SOURCE.is_dir(), reason="the study's copy is not beside us")


@pytest.fixture(scope="module")
def raw() -> dict:
    return importer.load(REFERENCE / command.RAW)


@pytest.fixture(scope="module")
def prov() -> dict:
    return json.loads((REFERENCE / command.PROVENANCE).read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def runs(prov) -> dict[str, dict]:
    return {r["run"]: r for f in prov["files"] for r in f["runs"]}


@needs_copy
def test_import_is_reproducible_from_the_copy(tmp_path):
    # what the import reads besides the study's copy: the report's reference (for audit.md)
    # and our measurements (recomputed step-0 losses, the study's PD against itself)
    for name in (command.REPORT_REFERENCE, step0.FILE, selfpd.FILE):
        shutil.copy(REFERENCE / name, tmp_path)
    texts = command.import_reference(SOURCE, tmp_path)
    names = (command.RAW, command.PROVENANCE, command.AUDIT, command.REPORT_REFERENCE)
    for name in names:
        assert (tmp_path / name).read_bytes() == (REFERENCE / name).read_bytes(), name
    assert set(texts) == set(names)


@needs_copy
def test_every_file_names_its_source_and_digest(raw):
    assert (
        raw["source"]["repository"] == "github.com/pankajtakawale/llm-reproducibility-activations"
    )
    assert raw["source"]["commit"] == "1551da0dbb6e0cc152163773f7cca40897fa13fd"
    paths = {f["copy_path"]: f for f in raw["files"]}
    for copy_path, entry in paths.items():
        data = (SOURCE / copy_path).read_bytes()
        assert entry["sha256"] == hashlib.sha256(data).hexdigest()
        assert entry["bytes"] == len(data)
    assert paths["results-full/charlm-relu-20251208_151223.json"]["path"] == (
        "results-char/charlm-relu-20251208_151223.json"
    )
    assert paths["results-partial/summary.txt"]["path"] == "results-Dec7-3hrs/summary.txt"
    assert paths["code/config_full_gpu.py"]["path"] == "config_full_gpu.py"
    charlm = [p for p in paths if p.rsplit("/", 1)[-1].startswith("charlm-")]
    assert len(charlm) == 12  # 3 full and 9 partial result files


def test_runs_hold_the_files_numbers(raw):
    by_id = {r["id"]: r for r in raw["runs"]}
    assert len(by_id) == 15  # 3 + 9 files, and the full run's summary with 3 activations
    relu = by_id["full/charlm-relu-20251208_151223"]
    assert [t["seed"] for t in relu["trials"]] == [42, 43, 44]
    assert relu["trials"][0]["val_loss"] == 1.5537720918655396
    assert relu["trials"][0]["train_loss_history"][0] == 4.344427108764648
    assert len(relu["trials"][0]["val_loss_history"]) == 11
    assert relu["pd_pairs"][0] == {
        "a": 1,
        "b": 2,
        "relative_pd": 0.9088090062141418,
        "prediction_differences": 937,
        "total_predictions": 1000,
    }
    swish = by_id["full/charlm-swish-20251208_174801"]
    assert swish["stored"]["avg_relative_pd"] == 0.8600262657125791
    table = raw["summary_tables"][1]
    assert table["file"] == "results-Dec7-3hrs/summary.txt"
    assert {r["activation"]: r["trials"] for r in table["rows"]} == {
        "gelu": 6,
        "relu": 9,
        "smelu_05": 3,
        "smelu_1": 3,
        "swish": 6,
    }


def test_log_is_parsed_as_printed(raw):
    log = raw["log"]
    assert log["total_time_s"] == 13868.9
    assert log["n_params"] == 10_795_776
    assert [r["activation"] for r in log["runs"]] == ["relu", "gelu", "swish"]
    relu = log["runs"][0]
    first = relu["trials"][0]
    assert first["evaluations"][0] == {
        "step": 0,
        "train_loss": 4.3444,
        "val_loss": 4.3433,
        "time_s": 92.2,
    }
    assert first["evaluations"][-1]["step"] == 4999
    assert first["final"] == {
        "train_loss": 0.8671,
        "val_loss": 1.5538,
        "train_accuracy": 73.9,
        "val_accuracy": 60.1,
    }
    assert first["training_time_s"] == 1583.06
    assert relu["results_file"] == "results/charlm-relu-20251208_151223.json"
    assert log["runs"][2]["pd_pairs"][0]["relative_pd"] == 0.898708


@pytest.mark.parametrize(
    ("how", "expected"),
    [
        ("unknown-key", "Additional properties"),
        ("bad-digest", "files/0/sha256"),
        ("duplicate-run", "duplicate run id"),
        ("trial-order", "not 1..n"),
    ],
)
def test_schema_and_checks_refuse_bad_raw_data(raw, how, expected):
    doc = copy.deepcopy(raw)
    if how == "unknown-key":
        doc["runs"][0]["trials"][0]["best"] = 1.0
    elif how == "bad-digest":
        doc["files"][0]["sha256"] = "xyz"
    elif how == "duplicate-run":
        doc["runs"].append(copy.deepcopy(doc["runs"][0]))
    else:
        doc["runs"][0]["trials"].reverse()
    with pytest.raises(ValueError, match=expected) as info:
        importer.validate(doc)
    assert "\n" not in str(info.value)


def test_import_command_refuses_a_missing_copy(tmp_path, capsys):
    assert main(["reference", "import", "--source", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no such directory" in err[0]


# ---------------------------------------------------------------------------------------------
# provenance


@pytest.mark.parametrize(
    ("max_iters", "interval", "points"),
    [(500, 100, 6), (200, 50, 5), (5000, 500, 11), (7, 3, 3), (8, 3, 4)],
)
def test_history_length_of_a_schedule(max_iters, interval, points):
    assert provenance.n_evaluations(max_iters, interval) == points


def test_provenance_validates_and_names_its_raw_data(prov):
    from reproduce import results

    results.validate(prov, provenance.SCHEMA)
    digest = hashlib.sha256((REFERENCE / command.RAW).read_bytes()).hexdigest()
    assert prov["raw_data"] == {"file": "study-raw.json", "sha256": digest}
    assert prov["summary"] == {
        "runs": 15,
        "identified": 14,
        "ambiguous": 0,
        "unidentified": 1,
        "step0_recomputed": "for 12 of 14 runs with candidates",
    }


NOT_STORED = "not recomputed: 2 of 3 step-0 evaluations are not in the store"


@pytest.mark.parametrize(
    ("run", "status", "candidates", "recomputed"),
    [
        ("full/charlm-relu-20251208_151223", "identified", ["ConfigFullGPU"], ["ConfigFullGPU"]),
        ("full/charlm-gelu-20251208_162452", "identified", ["ConfigFullGPU"], ["ConfigFullGPU"]),
        ("full/all_experiments_summary/swish", "identified", ["ConfigFullGPU"], NOT_STORED),
        ("partial/charlm-relu-20251207_224444", "identified", ["Config"], ["Config"]),
        ("partial/charlm-smelu_1-20251207_224012", "identified", ["Config"], ["Config"]),
        ("partial/charlm-gelu-20251207_224906", "identified", ["Config"], ["Config"]),
        # the lite-shaped runs: history and step-0 losses across files leave two candidates;
        # recomputed step-0 losses agree with config_gpu_lite.py's and not config_cpu.py's
        (
            "partial/charlm-gelu-20251207_220724",
            "identified",
            ["ConfigGPULite"],
            ["ConfigCPU", "ConfigGPULite"],
        ),
        (
            "partial/charlm-relu-20251207_220622",
            "identified",
            ["ConfigGPULite"],
            ["ConfigCPU", "ConfigGPULite"],
        ),
        ("partial/charlm-relu-20251207_210335", "unidentified", [], "no candidate left"),
    ],
)
def test_provenance_of_each_run(runs, run, status, candidates, recomputed):
    entry = runs[run]
    assert entry["status"] == status
    assert entry["candidates"] == candidates
    got, reason = (
        entry["evidence"]["step0_recomputed"],
        entry["evidence"]["step0_recomputed_reason"],
    )
    if isinstance(recomputed, str):
        assert got is None and reason.startswith(recomputed)
    else:
        assert sorted(got) == recomputed and reason is None
        assert all(r["agrees"] for r in got[candidates[0]])


def test_the_unidentified_relu_file_has_the_full_models_step0_losses(runs):
    entry = runs["partial/charlm-relu-20251207_210335"]
    assert entry["evidence"]["history_length"]["value"] == 5
    assert entry["evidence"]["step0"]["same_as"] == [
        "full/all_experiments_summary/relu",
        "full/charlm-relu-20251208_151223",
    ]
    assert entry["evidence"]["step0"]["trials"][0] == {
        "seed": 42,
        "train_loss": 4.344427108764648,
        "val_loss": 4.343263149261475,
    }
    implied = entry["implied"]
    assert (implied["n_layer"], implied["n_embd"], implied["n_head"], implied["block_size"]) == (
        6,
        384,
        6,
        256,
    )
    assert implied["schedules_with_that_history"] == [{"max_iters": 200, "eval_interval": 50}]
    (check,) = entry["evidence"]["time_check"]["schedules"]
    assert (check["predicted_s"], check["measured_s"], check["supports"]) == (196.6, 179.6, True)
    assert entry["evidence"]["time_per_trial_s"] == [321.5, 181.2, 177.9]


def test_full_runs_time_matches_the_logs_costs(prov, runs):
    assert prov["log_costs"]["evaluation_s"] == 30.6
    assert prov["log_costs"]["iteration_s"] == 0.218
    (check,) = runs["full/charlm-gelu-20251208_162452"]["evidence"]["time_check"]["schedules"]
    assert (check["predicted_s"], check["measured_s"], check["ratio"]) == (1426.6, 1411.9, 0.99)


def test_recomputed_step0_losses_decide_an_ambiguous_run(raw):
    """The slot, filled: a recomputation that reproduces the files' step-0 losses under
    ConfigGPULite's settings (and not under ConfigCPU's) identifies the lite runs."""
    step0 = {
        (r["activation"], t["seed"]): (t["train_loss_history"][0], t["val_loss_history"][0])
        for r in raw["runs"]
        if r["id"].startswith("partial/") and r["id"].endswith(("220622", "220724", "220836"))
        for t in r["trials"]
    }

    def fake(config, activation, seed):
        if config["n_layer"] != 2 or config["n_embd"] != 128:
            return None  # other shapes: not recomputed here
        train, val = step0[(activation, seed)]
        shift = 0.0 if config["batch_size"] == 64 else 0.01
        return {"train_loss": train + shift, "val_loss": val + shift}

    doc = provenance.build(raw, "study-raw.json", "0" * 64, fake)
    entry = {r["run"]: r for f in doc["files"] for r in f["runs"]}[
        "partial/charlm-gelu-20251207_220724"
    ]
    assert entry["status"] == "identified"
    assert entry["config"]["name"] == "ConfigGPULite"
    rows = entry["evidence"]["step0_recomputed"]
    assert [r["agrees"] for r in rows["ConfigGPULite"]] == [True, True, True]
    assert [r["agrees"] for r in rows["ConfigCPU"]] == [False, False, False]
    assert entry["evidence"]["step0_recomputed_reason"] is None
