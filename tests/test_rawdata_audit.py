"""The audit of the report against the study's raw data: each finding's numbers pinned on the
real reference data (artifacts/reference/), with independent recomputations where they are
short (numpy, scipy, the binomial formula)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import scipy.stats

from reproduce.cli import main
from reproduce.rawdata import command, findings
from reproduce.verdicts import CONTRADICTS, SUPPORTS, UNDECIDED

REFERENCE = Path(__file__).resolve().parents[1] / "artifacts" / "reference"


@pytest.fixture(scope="module")
def found() -> dict:
    return command.load_findings(REFERENCE / command.RAW)[0]


@pytest.fixture(scope="module")
def verdicts(found) -> dict[str, dict]:
    return {v["claim"]: v for v in found["verdicts"]}


def test_partial_table_rebuilt_from_its_files(found):
    rows = {r["activation"]: r for r in found["partial_table"]}
    assert all(r["agrees"] for r in rows.values())  # summary.txt follows from the files
    assert {a: r["trials"] for a, r in rows.items()} == {
        "gelu": 6,
        "relu": 9,
        "smelu_05": 3,
        "smelu_1": 3,
        "swish": 6,
    }
    assert rows["relu"]["configurations"] == [
        "Config",
        "ConfigGPULite",
        "unidentified: none",
    ]
    assert rows["smelu_1"]["one_configuration"] and not rows["gelu"]["one_configuration"]
    # ReLU's printed 2.3006 is the mean of three files' averages from three configurations
    means = [f["avg_val_loss"] for f in rows["relu"]["files"]]
    assert np.mean(means) == pytest.approx(2.3006, abs=5e-5)


def test_partial_ranking_within_one_configuration(found):
    within = found["partial_within_config"]
    assert within["ranking"] == ["relu", "smelu_05", "gelu", "swish", "smelu_1"]
    assert within["means"]["relu"] == pytest.approx(1.990977, abs=1e-6)
    assert within["means"]["smelu_1"] == pytest.approx(2.156429, abs=1e-6)
    samples = [within["val_loss"][a] for a in within["ranking"]]
    assert within["anova_f"] == pytest.approx(scipy.stats.f_oneway(*samples).statistic)
    assert within["anova_f"] == pytest.approx(263.47, abs=0.01)


def test_printed_rows_against_log_and_files(found):
    rows = {(r["activation"], r["appendix_trial"]): r for r in found["printed_rows"]}
    assert rows[("relu", 1)]["matches_file_seeds"] == [43] == rows[("relu", 1)]["matches_log_seeds"]
    assert rows[("relu", 3)]["matches_file_seeds"] == [44]
    missing = rows[("relu", 2)]
    assert missing["matches_file_seeds"] == missing["matches_log_seeds"] == []
    assert missing["nearest_seed"] == 42
    assert missing["differences"]["val_loss"] == round(1.5651 - 1.5537720918655396, 6)
    for act in ("gelu", "swish"):
        for k in (1, 2, 3):
            assert rows[(act, k)]["matches_file_seeds"] == [41 + k]


def test_claims_recomputed_from_the_raw_trials(found):
    claims = found["claims_on_raw"]
    assert claims["on_report"] == {"consistent": 63, "not checkable": 24, "inconsistent": 37}
    assert claims["on_raw"] == {"consistent": 73, "not checkable": 24, "inconsistent": 27}
    changed = {c["id"]: c for c in claims["changed"]}
    assert changed["relu-mean-val-loss"]["on_raw"] == "consistent"
    assert changed["tukey-swish-gelu-val-loss"]["recomputed_on_raw"] == "0.0301"
    assert len(changed) == 16


def test_swish_pd_differs_between_log_and_result_file(found):
    pds = {p["activation"]: p for p in found["pd_sources"]}
    assert pds["relu"]["agree"] and pds["gelu"]["agree"]
    assert pds["relu"]["log_pairs"] == [0.908809, 0.895457, 0.914136]
    swish = pds["swish"]
    assert not swish["agree"]
    assert swish["log_mean"] == 0.896534 and swish["file_mean"] == 0.860026


def test_printed_curves_against_the_log(found):
    curves = {c["activation"]: c for c in found["printed_curves"]}
    assert curves["swish"]["one_trial_train_loss"] == [42]
    assert curves["gelu"]["one_trial_train_loss"] == [] == curves["relu"]["one_trial_train_loss"]
    gelu_500 = next(p for p in curves["gelu"]["points"] if p["step"] == 500)
    assert gelu_500["matches"] == [{"seed": 43, "loss": "train_loss"}]  # log: 2.0763
    relu_5000 = next(p for p in curves["relu"]["points"] if p["step"] == 5000)
    assert relu_5000["matches"] == [{"seed": 43, "loss": "train_loss"}]  # final 0.8769


def test_stopping_point(found):
    stop = found["stopping_point"]
    by_trial = {f"{t['activation']}-s{t['seed']}": t for t in stop["trials"]}
    assert (by_trial["gelu-s44"]["best_step"], by_trial["swish-s42"]["best_step"]) == (2500, 4000)
    assert by_trial["relu-s42"]["best_val_loss"] == pytest.approx(1.4908277, abs=1e-7)
    assert stop["by_best"]["ranking"] == ["gelu", "swish", "relu"]
    assert stop["by_final"]["ranking"] == ["swish", "gelu", "relu"]
    best = {
        a: [t["best_val_loss"] for t in stop["trials"] if t["activation"] == a]
        for a in ("gelu", "relu", "swish")
    }
    assert stop["by_best"]["anova_p"] == pytest.approx(scipy.stats.f_oneway(*best.values()).pvalue)
    assert stop["by_best"]["anova_p"] == pytest.approx(0.00395, abs=1e-5)
    assert stop["by_final"]["anova_p"] == pytest.approx(0.01851, abs=1e-5)
    assert stop["by_best"]["swish_best"]["verdict"] == UNDECIDED
    assert stop["by_final"]["swish_best"]["verdict"] == SUPPORTS


def test_sampling_error(found):
    loss = found["loss_error"]
    d = np.array(loss["pairs"])
    assert len(d) == 9
    assert loss["sigma"] == pytest.approx(math.sqrt(np.mean(d**2) / 2), abs=1e-6)
    assert loss["sigma"] == pytest.approx(0.00331, abs=1e-5)
    acc = found["accuracy_error"]
    p = 0.601  # relu seed 42: 60.1% of 1,000 windows
    assert acc["single_trial_se"]["relu"] == pytest.approx(100 * math.sqrt(p * (1 - p) / 1000))
    diffs = {d["difference"]: d for d in acc["differences"]}
    assert diffs["val accuracy GELU - ReLU"]["inside"]
    assert diffs["val accuracy GELU - ReLU"]["bound_95"] == pytest.approx(2.486, abs=1e-3)
    assert not diffs["train-val gap GELU - Swish"]["inside"]


@pytest.mark.parametrize(
    ("claim", "verdict"),
    [
        ("partial-best-val-loss", CONTRADICTS),
        ("partial-best-activation", CONTRADICTS),
        ("partial-worst-activation", UNDECIDED),
        ("partial-table", CONTRADICTS),
        ("relu-appendix-trial-2", CONTRADICTS),
        ("swish-pd", SUPPORTS),
        ("total-time-min", SUPPORTS),
        ("swish-printed-curve", SUPPORTS),
        ("relu-printed-curve", CONTRADICTS),
        ("relu-mean-val-loss", SUPPORTS),
        ("tukey-swish-gelu-val-loss", CONTRADICTS),
        ("swish-best-val-loss", UNDECIDED),
        ("swish-val-trajectory", CONTRADICTS),
        ("gelu-val-trajectory", SUPPORTS),
        ("relu-val-trajectory", CONTRADICTS),
        ("gelu-rank-val-loss", UNDECIDED),
        ("relu-sd-val-loss", UNDECIDED),
        ("val-acc-not-significant", SUPPORTS),
        ("swish-least-overfitting", SUPPORTS),
        ("relu-most-overfitting", UNDECIDED),
    ],
)
def test_verdicts(verdicts, claim, verdict):
    assert verdicts[claim]["verdict"] == verdict
    assert verdicts[claim]["evidence"] and verdicts[claim]["rule"]


def test_audit_md_is_current_and_fits_80_columns(capsys):
    text = (REFERENCE / command.AUDIT).read_text(encoding="utf-8")
    assert text == command.audit_markdown(REFERENCE / command.RAW)
    assert max(map(len, text.splitlines())) <= 80
    for undone in findings.UNDONE:
        assert " ".join(undone.split()[:6]) in " ".join(text.split())
    assert main(["audit", str(REFERENCE / command.RAW)]) == 0
    assert capsys.readouterr().out == text  # not a terminal: 80 columns


def test_audit_json_of_the_raw_data(capsys):
    assert main(["audit", "--json", str(REFERENCE / command.RAW)]) == 0
    data = json.loads(capsys.readouterr().out)
    assert {v["claim"] for v in data["verdicts"]} >= {"partial-table", "swish-val-trajectory"}


def test_report_replication_section_lists_the_raw_data_verdicts():
    """A report rendered with the reference as imported lists the raw data's verdicts; one
    rendered with the reference as published before (artifacts/cpu's copy) does not, so
    published reports keep their bytes (verify re-renders them)."""
    from reproduce import audit, report, results
    from reproduce.compare import replication
    from reproduce.report_context import context

    data = results.load_results(REFERENCE.parent / "partial-cpu")
    reference = audit.load_document(REFERENCE / command.REPORT_REFERENCE)
    assert reference["raw_data"]["file"] == "study-raw.json"
    extra = {"figures": {}, "replication": replication(data, reference)}
    text = report.render_markdown(context(data, None, extra=extra))
    assert "### What the study's own raw data decides" in text
    assert "- **contradicts** partial-best-val-loss (Best Val Loss 2.1564 (SmeLU-1.0))" in text
    html = report.render_html(context(data, None, extra=extra))
    assert "<h3>What the study's own raw data decides</h3>" in html
    old = audit.load_document(REFERENCE.parent / "cpu" / "reference.json")
    extra["replication"] = replication(data, old)
    assert "raw data decides" not in report.render_markdown(context(data, None, extra=extra))


def test_raw_data_without_its_neighbours_exits_2_with_one_line(tmp_path, capsys):
    (tmp_path / command.RAW).write_bytes((REFERENCE / command.RAW).read_bytes())
    assert main(["audit", str(tmp_path / command.RAW)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "provenance.json: missing" in err[0]
