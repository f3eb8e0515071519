"""merge: one sweep from trials trained in several run directories.

Each test splits the session's tiny sweep (conftest's ``tiny_sweep``) into inputs as two
machines would leave them: a run directory's ``sweep.json`` and some of its trial directories,
with or without their weights, with or without a results.json computed where the weights were.
What a merged results.json must equal: the uninterrupted run's, byte for byte, when the same
records and weights (or values computed from the same weights) are merged; after a later
``run`` trains a missing trial, the same apart from the trial times that any rerun changes
(``wall_time_s``, ``tokens_per_s``, the curves' ``elapsed_s`` and the statistics of those).
The report's figures, which follow from results.json alone, are not drawn here (seconds each
time; tests/test_figures.py tests them).
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from pathlib import Path

import pytest

from charlm.io import dumps_json
from reproduce import figures, report
from reproduce.cli import main
from reproduce.merged import MERGED_FILE
from reproduce.report_context import context
from reproduce.verify import FAIL, NOT_DISTRIBUTED, verify

TIMING_KEYS = ("wall_time_s", "tokens_per_s", "elapsed_s")


@pytest.fixture(scope="module", autouse=True)
def no_figures(tiny_sweep):
    """Figures are not drawn in this module (after the session's tiny sweep drew its own)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(figures, "render_figures", lambda data: [])
        yield


def _input(root: Path, name: str, run: Path, ids, weights=True, results=False) -> Path:
    """A run directory ``root/name`` holding ``run``'s sweep.json and trials ``ids`` (their
    weights only with ``weights``; ``run``'s results.json only with ``results``)."""
    directory = root / name
    (directory / "trials").mkdir(parents=True)
    shutil.copyfile(run / "sweep.json", directory / "sweep.json")
    if results:
        shutil.copyfile(run / "results.json", directory / "results.json")
    for trial_id in ids:
        shutil.copytree(run / "trials" / trial_id, directory / "trials" / trial_id)
        if not weights:
            (directory / "trials" / trial_id / "weights.safetensors").unlink()
    return directory


def _without_timings(value):
    if isinstance(value, dict):
        return {k: _without_timings(v) for k, v in value.items() if k not in TIMING_KEYS}
    if isinstance(value, list):
        return [_without_timings(v) for v in value]
    return value


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _merge(config, out, *inputs, data_path) -> int:
    args = ["merge", *map(str, inputs), "--config", str(config), "--out", str(out)]
    return main([*args, "--data", str(data_path)])


@pytest.fixture(scope="module")
def merged(tiny_sweep, tmp_path_factory, data_path):
    """(tiny sweep's run, merged directory): machine A left relu-s0, relu-s1 and gelu-s0 with
    their weights; machine B gelu-s0 and gelu-s1 without weights, and a results.json computed
    where they were (gelu-s0 is in both, identical)."""
    config, run = tiny_sweep
    root = tmp_path_factory.mktemp("merge")
    a = _input(root, "a", run, ["relu-s0", "relu-s1", "gelu-s0"])
    b = _input(root, "b", run, ["gelu-s0", "gelu-s1"], weights=False, results=True)
    out = root / "merged"
    assert _merge(config, out, a, b, data_path=data_path) == 0
    return run, out


def test_merged_trials_give_the_uninterrupted_results_byte_for_byte(merged):
    run, out = merged
    assert _digest(out / "results.json") == _digest(run / "results.json")
    listed = json.loads((out / MERGED_FILE).read_text())["trials"]
    assert {i: (Path(e["source"]).name, e["weights"]) for i, e in listed.items()} == {
        "gelu-s0": ("a", True),
        "gelu-s1": ("b", False),
        "relu-s0": ("a", True),
        "relu-s1": ("a", True),
    }
    assert not (out / "trials" / "gelu-s1" / "weights.safetensors").exists()
    assert not list(out.parent.glob(".merged.*"))  # the staging directory is gone


def test_a_merged_sweep_publishes_and_verifies_without_weights(merged, tmp_path, capsys):
    _, out = merged
    assert main(["publish", str(out), str(tmp_path / "refused"), "--with-weights"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "lacks the weights of gelu-s1" in err
    assert not (tmp_path / "refused").exists()
    assert main(["publish", str(out), str(tmp_path / "pub")]) == 0
    rows = verify(tmp_path / "pub")
    weights = {r.subject: r.verdict for r in rows if r.check == "weights"}
    assert weights == dict.fromkeys(("gelu-s0", "gelu-s1", "relu-s0", "relu-s1"), NOT_DISTRIBUTED)
    assert not [r for r in rows if r.verdict == FAIL]


def test_a_later_run_trains_the_missing_trial_and_writes_the_results(
    tiny_sweep, tmp_path, data_path, capsys
):
    config, run = tiny_sweep
    a = _input(tmp_path, "a", run, ["relu-s0", "relu-s1"], weights=False, results=True)
    b = _input(tmp_path, "b", run, ["gelu-s0"])
    out = tmp_path / "merged"
    assert _merge(config, out, a, b, data_path=data_path) == 0
    said = " ".join(capsys.readouterr().out.split())
    assert "merged 3 of 4 trial(s)" in said and "not yet trained: gelu-s1" in said
    # one line per platform and input: each input named once, before its trials
    assert re.search(rf"trained on [^:]+ \({re.escape(str(a))}\): relu-s0, relu-s1 ", said)
    assert re.search(rf"trained on [^:]+ \({re.escape(str(b))}\): gelu-s0 ", said)
    assert not (out / "results.json").exists() and (out / "SHA256SUMS").is_file()
    kept = {i: _digest(out / "trials" / i / "trial.json") for i in ("relu-s0", "gelu-s0")}
    args = ["run", "--config", str(config), "--out", str(out), "--data", str(data_path)]
    assert main(args) == 0
    assert "1 to train" in capsys.readouterr().out  # relu-s0 and relu-s1 count as finished
    assert kept == {i: _digest(out / "trials" / i / "trial.json") for i in kept}
    ours = json.loads((out / "results.json").read_text())
    theirs = json.loads((run / "results.json").read_text())
    assert dumps_json(_without_timings(ours)) == dumps_json(_without_timings(theirs))
    assert ours["trials"][1]["id"] == "gelu-s1"  # retrained here: only its times differ
    assert ours["trials"][1]["weights_sha256"] == theirs["trials"][1]["weights_sha256"]


def _refusal(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ")
    return err


def test_inputs_of_other_base_settings_are_refused_naming_the_key(
    tiny_sweep, tmp_path, data_path, capsys
):
    config, run = tiny_sweep
    a = _input(tmp_path, "a", run, ["relu-s0"])
    b = _input(tmp_path, "b", run, ["gelu-s0"])
    sweep = json.loads((b / "sweep.json").read_text())
    sweep["base_settings"]["train"]["lr"] = 0.001
    (b / "sweep.json").write_text(json.dumps(sweep))
    assert _merge(config, tmp_path / "out", a, b, data_path=data_path) == 2
    err = _refusal(capsys)
    assert f"{b} holds a sweep with other base settings" in err
    assert "train.lr: 0.001 recorded, 0.003 now" in err
    assert not (tmp_path / "out").exists()


def test_a_trial_with_two_different_records_is_refused(tiny_sweep, tmp_path, data_path, capsys):
    config, run = tiny_sweep
    a = _input(tmp_path, "a", run, ["relu-s0"])
    b = _input(tmp_path, "b", run, ["relu-s0"], weights=False)
    path = b / "trials" / "relu-s0" / "trial.json"
    record = json.loads(path.read_text())
    record["final"]["val_loss"] = 3.5
    path.write_text(json.dumps(record))
    assert _merge(config, tmp_path / "out", a, b, data_path=data_path) == 2
    err = _refusal(capsys)
    assert f"trial relu-s0 is in {a} and {b} with different records (final.val_loss: " in err


def test_weights_that_are_not_the_recorded_ones_are_refused(
    tiny_sweep, tmp_path, data_path, capsys
):
    config, run = tiny_sweep
    a = _input(tmp_path, "a", run, ["relu-s0"])
    shutil.copyfile(
        run / "trials" / "relu-s1" / "weights.safetensors",
        a / "trials" / "relu-s0" / "weights.safetensors",
    )
    assert _merge(config, tmp_path / "out", a, data_path=data_path) == 2
    assert "does not match the digest its record keeps" in _refusal(capsys)


def test_the_report_names_each_platform_with_its_trials(tiny_sweep):
    data = json.loads((tiny_sweep[1] / "results.json").read_text())
    other = data["trials"][0]["environment"]
    other.update(
        cpu_model="Other CPU",
        cpu_family="99",
        cpu_model_number="1",
        cpu_capability="AVX512",
        cpu_bf16="none",
        threads=4,
    )  # every key the description shows, so that it does not depend on this machine
    md = report.render_markdown(context(data))
    assert "The trials were trained on 2 platforms" in md
    assert "| Other CPU (family 99 model 1), AVX512, no native bf16, 4 threads | gelu-s0 |" in md
    assert "| relu-s0, relu-s1, gelu-s1 |" in md  # the report's order: config, seed
