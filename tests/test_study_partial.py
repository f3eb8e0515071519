"""artifacts/study-partial-cpu: the report's partial scale under the study protocol, 15 trials
trained a group at a time and kept in artifacts/parts until merged and published.

The publication must be its parts merged (each trial's record and log byte for byte; the
statistics, both PDs and the samples as ``merge`` computes them from the parts), ship no
weights, and README.md must state what its report holds. ``verify`` of the publication runs
as a README command (tests/test_readme.py); nothing here trains.
"""

from __future__ import annotations

import contextlib
import io
import json
import tarfile
from pathlib import Path

import pytest

from reproduce import results
from reproduce.cli import main

REPO = Path(__file__).resolve().parents[1]
PUBLISHED = REPO / "artifacts" / "study-partial-cpu"
PARTS = sorted(p.parent for p in (REPO / "artifacts/parts/study-partial-cpu").glob("*/sweep.json"))
ADDED = ("id", "grid", "group")  # what a results.json trial adds to its trial.json


@pytest.fixture(scope="module")
def published() -> dict:
    return results.load_results(PUBLISHED)


@pytest.fixture(scope="module")
def merged(tmp_path_factory, data_path) -> dict:
    """results.json of the parts merged afresh (README, "Machines that share no filesystem")."""
    out = tmp_path_factory.mktemp("study-partial") / "merged"
    argv = ["merge", *map(str, PARTS), "--config", str(REPO / "configs/study-partial.toml")]
    with contextlib.redirect_stdout(io.StringIO()):
        assert main([*argv, "--out", str(out), "--data", str(data_path)]) == 0
    return results.load_results(out)


def test_every_trial_is_its_part_s_record_and_log_byte_for_byte(published):
    with tarfile.open(PUBLISHED / "logs.tar.gz") as tar:
        logs = {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}
    trials = {t["id"]: t for t in published["trials"]}
    kept = [trial for part in PARTS for trial in sorted((part / "trials").iterdir())]
    assert sorted(t.name for t in kept) == sorted(trials) and len(trials) == 15
    for trial in kept:
        assert logs[f"trials/{trial.name}/log.jsonl"] == (trial / "log.jsonl").read_bytes()
        record = json.loads((trial / "trial.json").read_text(encoding="utf-8"))
        assert {k: v for k, v in trials[trial.name].items() if k not in ADDED} == record
        assert record["train"]["protocol"] == "study" and record["train"]["precision"] == "fp32"


def test_the_results_are_what_merge_computes_from_the_parts(published, merged):
    assert set(published) - set(merged) <= {"render"}
    for key in sorted(set(merged) - {"render"}):
        assert published[key] == merged[key], key
    assert sorted(published["prediction_difference_study"]) == sorted(
        {t["group"] for t in published["trials"]}
    )


def test_no_weights_are_shipped_and_every_file_is_listed():
    files = sorted(p.relative_to(PUBLISHED).as_posix() for p in PUBLISHED.rglob("*") if p.is_file())
    assert not [f for f in files if f.endswith(".safetensors")]
    listed = sorted(
        line.split("  ", 1)[1] for line in (PUBLISHED / "SHA256SUMS").read_text().splitlines()
    )
    assert listed == [f for f in files if f != "SHA256SUMS"]


def test_the_readme_s_tables_are_the_report_s():
    """README.md's section on the publication quotes its report's tables: every table row
    there is a row of report.md, which verify re-renders from results.json."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    start = readme.index("## The report's partial scale under the study's own procedure")
    section = readme[start : readme.index("\n## ", start + 1)]
    rows = [line for line in section.splitlines() if line.startswith("| ") and "---" not in line]
    report = (PUBLISHED / "report.md").read_text(encoding="utf-8").splitlines()
    assert len(rows) >= 12
    assert [row for row in rows if row not in report] == []
