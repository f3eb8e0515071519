"""Tests of ``reproduce.audit`` on the published report's reference data and on results files.

Expected values are computed here by hand with numpy from the appendix trials: means, both
SDs, and the one-way ANOVA F statistic from its sums of squares, F = (SS_between / (k - 1)) /
(SS_within / (N - k)) (e.g. Montgomery, Design and Analysis of Experiments, ch. 3).
"""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import scipy.stats
from jsonschema import Draft202012Validator
from referencing import Registry, Resource

from reproduce import audit
from reproduce.cli import main
from reproduce.results import schema_registry

REPO = Path(__file__).resolve().parents[1]
REFERENCE = REPO / "artifacts" / "reference" / "charlm-full-20251208.json"
SCHEMAS = REPO / "reproduce" / "schemas"
REPORT = REPO.parent / "shared" / "seed" / "000_4445acbe398aa690.txt"

# the appendix "Complete Results Table", typed in again here (val_loss, val_acc, train_acc, time)
APPENDIX = {
    "relu": [
        (1.5527, 57.9, 71.5, 1413.3),
        (1.5651, 59.4, 72.7, 1584.7),
        (1.5601, 57.7, 73.9, 1419.1),
    ],
    "gelu": [
        (1.5585, 61.1, 73.4, 1417.1),
        (1.5268, 59.1, 70.4, 1414.9),
        (1.5767, 59.4, 74.1, 1409.0),
    ],
    "swish": [
        (1.4738, 58.2, 65.8, 1628.2),
        (1.5198, 58.6, 67.9, 1620.0),
        (1.4985, 59.5, 69.5, 1618.8),
    ],
}


@pytest.fixture(scope="module")
def reference() -> dict:
    return json.loads(REFERENCE.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def rows() -> dict[str, dict]:
    return {row["id"]: row for row in audit.audit_file(REFERENCE)}


def column(group: str, i: int) -> np.ndarray:
    return np.array([t[i] for t in APPENDIX[group]])


def f_statistic(samples: list[np.ndarray]) -> float:
    everything = np.concatenate(samples)
    grand = everything.mean()
    ss_between = sum(s.size * (s.mean() - grand) ** 2 for s in samples)
    ss_within = sum(((s - s.mean()) ** 2).sum() for s in samples)
    k, n = len(samples), everything.size
    return (ss_between / (k - 1)) / (ss_within / (n - k))


# ---------------------------------------------------------------------------------------------
# schemas and the reference file


def test_reference_validates_against_its_schema(reference):
    registry = Registry()
    for path in SCHEMAS.glob("*.schema.json"):
        contents = json.loads(path.read_text(encoding="utf-8"))
        registry = registry.with_resource(contents["$id"], Resource.from_contents(contents))
    schema = json.loads((SCHEMAS / "reference.schema.json").read_text(encoding="utf-8"))
    Draft202012Validator.check_schema(schema)
    errors = list(Draft202012Validator(schema, registry=registry).iter_errors(reference))
    assert errors == []
    audit.validate_reference(reference)  # plus ids, references, cycles


def test_schema_ids_are_stable():
    trial = json.loads((SCHEMAS / "trial.schema.json").read_text(encoding="utf-8"))
    ref = json.loads((SCHEMAS / "reference.schema.json").read_text(encoding="utf-8"))
    assert (
        trial["$id"]
        == audit.TRIAL_SCHEMA_ID
        == ("https://charlm-repro.example/schemas/trial.schema.json")
    )
    assert ref["$id"] == audit.REFERENCE_SCHEMA_ID
    assert {"trial", "final", "best", "curve_point", "grid", "sha256"} <= set(trial["$defs"])


def test_trial_schema_accepts_a_full_results_trial_and_rejects_bad_fields():
    validator = Draft202012Validator(
        {"$ref": audit.TRIAL_SCHEMA_ID + "#/$defs/trial"}, registry=schema_registry()
    )
    good = {
        "id": "gelu-s43-lr=0.001",
        "group": "gelu-lr=0.001",
        "activation": "gelu",
        "seed": 43,
        "data_seed": 43,
        "grid": {"lr": 0.001},
        "final": {
            "step": 5000,
            "train_loss": 0.88,
            "val_loss": 1.55,
            "train_accuracy": 71.5,
            "val_accuracy": 57.9,
        },
        "best": {"step": 4500, "val_loss": 1.54},
        "wall_time_s": 1413.3,
        "tokens_per_s": 14000.0,
        "weights_sha256": "ab" * 32,
        "curves": [{"step": 0, "train_loss": 4.2, "lr": 0.0}],
        "config": {"anything": True},
    }
    assert list(validator.iter_errors(good)) == []
    minimal = {k: good[k] for k in ("id", "group", "activation", "seed", "final")}
    assert list(validator.iter_errors(minimal)) == []
    for field, value in [
        ("weights_sha256", "xyz"),
        ("seed", -1),
        ("id", "gelu"),
        ("best", {"step": 3}),
    ]:
        bad = {**good, field: value}
        assert list(validator.iter_errors(bad)), field
    bad = copy.deepcopy(good)
    bad["final"]["val_accuracy"] = 101.0
    assert list(validator.iter_errors(bad))


def test_reference_names_its_source_and_holds_the_appendix(reference):
    source = reference["source"]
    assert source["experiment_id"] == "charlm-full-20251208"
    assert source["date"] == "2025-12-08"
    if REPORT.is_file():
        assert source["sha256"] == hashlib.sha256(REPORT.read_bytes()).hexdigest()
    trials = {t["id"]: t for t in reference["trials"]}
    assert len(trials) == 9
    for group, rows_ in APPENDIX.items():
        for i, (val_loss, val_acc, train_acc, time) in enumerate(rows_):
            trial = trials[f"{group}-s{42 + i}"]
            assert trial["final"]["val_loss"] == val_loss
            assert trial["final"]["val_accuracy"] == val_acc
            assert trial["final"]["train_accuracy"] == train_acc
            assert trial["wall_time_s"] == time
    # ReLU's first two trials are swapped in "Detailed Results"
    assert trials["relu-s42"]["report_rows"]["detailed_results_trial"] == 2
    assert reference["config"]["model"]["n_params"] == 10_795_776
    assert reference["config"]["training"]["total_training_time_min"] == 231.1


# ---------------------------------------------------------------------------------------------
# recomputed values against independent ones


@pytest.mark.parametrize("group", ["relu", "gelu", "swish"])
def test_recomputed_means_and_sds_match_numpy(rows, group):
    loss, acc, train, time = (column(group, i) for i in range(4))
    assert rows[f"{group}-mean-val-loss"]["recomputed"] == pytest.approx(loss.mean(), abs=1e-12)
    assert rows[f"{group}-mean-val-acc"]["recomputed"] == pytest.approx(acc.mean(), abs=1e-12)
    assert rows[f"{group}-mean-train-acc"]["recomputed"] == pytest.approx(train.mean(), abs=1e-12)
    assert rows[f"{group}-mean-wall-time"]["recomputed"] == pytest.approx(time.mean(), abs=1e-9)
    for metric, values in (("val-loss", loss), ("val-acc", acc)):
        by_ddof = rows[f"{group}-sd-{metric}"]["recomputed_by_ddof"]
        population = np.sqrt(((values - values.mean()) ** 2).sum() / 3)
        sample = np.sqrt(((values - values.mean()) ** 2).sum() / 2)
        assert by_ddof["0"] == pytest.approx(population, abs=1e-12)
        assert by_ddof["1"] == pytest.approx(sample, abs=1e-12)
    gap = train.mean() - acc.mean()
    assert rows[f"{group}-train-val-gap"]["recomputed"] == pytest.approx(gap, abs=1e-12)


def test_anova_and_tukey_are_recomputed(rows):
    samples = [column(g, 0) for g in ("relu", "gelu", "swish")]
    f_hand = f_statistic(samples)
    assert f_hand == pytest.approx(8.7908, abs=1e-4)
    assert rows["val-loss-anova-f"]["recomputed"] == pytest.approx(f_hand, rel=1e-10)
    assert rows["val-loss-anova-p"]["recomputed"] == pytest.approx(
        scipy.stats.f.sf(f_hand, 2, 6), rel=1e-10
    )
    # the printed F (8.32) would give p = 0.0186 with df (2, 6), not the printed 0.024
    assert rows["val-loss-anova-p"]["recomputed_from_printed"] == pytest.approx(
        scipy.stats.f.sf(8.32, 2, 6), rel=1e-10
    )
    tukey = scipy.stats.tukey_hsd(*samples).pvalue  # order relu, gelu, swish
    assert rows["tukey-swish-relu-val-loss"]["recomputed"] == pytest.approx(tukey[2, 0])
    assert rows["tukey-swish-gelu-val-loss"]["recomputed"] == pytest.approx(tukey[2, 1])
    assert rows["tukey-relu-gelu-val-loss"]["recomputed"] == pytest.approx(tukey[0, 1])


def test_derived_percentages_and_totals(rows):
    relu, gelu, swish = (column(g, 0).mean() for g in ("relu", "gelu", "swish"))
    assert rows["relu-vs-swish-val-loss-pct"]["recomputed"] == pytest.approx(
        100 * (relu - swish) / swish
    )
    assert rows["gelu-vs-swish-val-loss-pct"]["recomputed"] == pytest.approx(
        100 * (gelu - swish) / swish
    )
    t_swish, t_gelu = column("swish", 3).mean(), column("gelu", 3).mean()
    assert rows["swish-slower-pct"]["recomputed"] == pytest.approx(
        100 * (t_swish - t_gelu) / t_gelu
    )
    total = sum(column(g, 3).sum() for g in APPENDIX) / 60
    assert rows["total-time-min"]["recomputed"] == pytest.approx(total)
    means = np.array([relu, gelu, swish])
    assert rows["between-var-val-loss"]["recomputed_by_ddof"]["0"] == pytest.approx(
        ((means - means.mean()) ** 2).mean()
    )


# ---------------------------------------------------------------------------------------------
# verdicts


@pytest.mark.parametrize(
    ("claim", "verdict", "ddof"),
    [
        ("relu-mean-val-loss", audit.INCONSISTENT, None),
        ("relu-sd-val-loss", audit.INCONSISTENT, None),  # 0.0033: neither SD
        ("relu-mean-val-acc", audit.INCONSISTENT, None),  # 58.57 vs 58.33
        ("relu-mean-wall-time", audit.INCONSISTENT, None),
        ("swish-mean-val-loss", audit.CONSISTENT, None),
        ("gelu-mean-val-loss", audit.CONSISTENT, None),
        ("swish-sd-val-loss", audit.CONSISTENT, 0),  # population SD, not sample
        ("gelu-sd-val-loss", audit.CONSISTENT, 0),
        ("swish-sd-val-acc", audit.CONSISTENT, 0),
        ("between-var-val-acc", audit.CONSISTENT, 0),
        ("val-loss-anova-f", audit.INCONSISTENT, None),
        ("val-loss-anova-p", audit.INCONSISTENT, None),
        ("val-loss-anova-significant", audit.CONSISTENT, None),
        ("tukey-swish-relu-val-loss", audit.INCONSISTENT, None),  # 0.019 vs 0.021
        ("tukey-swish-gelu-val-loss", audit.CONSISTENT, None),  # 0.031
        ("tukey-relu-gelu-val-loss", audit.INCONSISTENT, None),  # 0.923 vs 0.944
        ("gelu-vs-swish-val-loss-pct", audit.CONSISTENT, None),  # 3.8%
        ("relu-vs-swish-val-loss-pct", audit.INCONSISTENT, None),  # 3.9% vs 4.1%
        ("swish-slower-pct", audit.CONSISTENT, None),  # 14.8%
        ("gelu-faster-9pct", audit.INCONSISTENT, None),
        ("swish-best-val-loss", audit.CONSISTENT, None),
        ("relu-worst-val-loss", audit.CONSISTENT, None),
        ("swish-least-overfitting", audit.CONSISTENT, None),
        ("swish-lowest-sd-val-loss", audit.INCONSISTENT, None),  # ReLU's SD is lowest
        ("gelu-rank-val-loss", audit.INCONSISTENT, None),  # "3rd" of three, really 2nd
        ("swish-train-val-gap", audit.CONSISTENT, None),  # 67.7 - 58.8, double rounding
        ("relu-train-val-gap", audit.INCONSISTENT, None),  # uses the wrong 58.6
        ("total-time-min", audit.INCONSISTENT, None),  # 231.1 vs 225.4
        ("swish-pd", audit.NOT_CHECKABLE, None),
        ("partial-best-val-loss", audit.NOT_CHECKABLE, None),
        ("nt-best-val-loss", audit.NOT_CHECKABLE, None),
        ("gpu-utilisation", audit.NOT_CHECKABLE, None),
    ],
)
def test_verdicts(rows, claim, verdict, ddof):
    row = rows[claim]
    assert row["verdict"] == verdict, (claim, row)
    assert row["matched_ddof"] == ddof
    if ddof == 0:
        assert "population (ddof=0)" in row["note"]


def test_every_claim_has_a_row_and_printed_only_rows_are_marked(reference, rows):
    assert [c["id"] for c in reference["claims"]] == list(rows)
    assert rows["pd-diff-pct"]["basis"] == "printed"
    assert rows["relu-mean-val-loss"]["basis"] == "trials"
    assert rows["relu-mean-val-loss"]["recomputed"] == pytest.approx(1.5593, abs=1e-9)
    assert "relu-mean-val-loss does not follow" in rows["relu-vs-swish-val-loss-pct"]["note"]


# ---------------------------------------------------------------------------------------------
# results.json


def results_doc(reference: dict, statistics: dict | None) -> dict:
    trials = [{k: v for k, v in t.items() if k != "report_rows"} for t in reference["trials"]]
    doc = {"trials": trials}
    if statistics is not None:
        doc["statistics"] = statistics
    return doc


def test_results_without_statistics_give_recomputed_values_only(reference):
    result = {r["id"]: r for r in audit.audit_document(results_doc(reference, None))}
    assert {r["verdict"] for r in result.values()} == {audit.RECOMPUTED_ONLY}
    assert result["relu-mean-val-loss"]["recomputed"] == pytest.approx(column("relu", 0).mean())
    assert result["anova-f-val-loss"]["recomputed"] == pytest.approx(
        f_statistic([column(g, 0) for g in ("relu", "gelu", "swish")])
    )
    assert result["best-val-loss"]["recomputed"] == "swish"


def test_results_with_stored_statistics_are_checked(reference):
    loss = {g: column(g, 0) for g in APPENDIX}
    cell = {
        "grid": {},
        "activations": {
            g: {"val_loss": {"mean": float(v.mean()), "sd": float(v.std(ddof=1))}}
            for g, v in loss.items()
        },
        "val_loss_comparison": {
            "anova": {
                "F": 8.0,
                "p": float(scipy.stats.f.sf(f_statistic(list(loss.values())), 2, 6)),
            },
            "pairs": [{"a": "gelu", "b": "relu", "tukey_p": 0.5}],
            "best": "swish",
            "worst": "relu",
        },
    }
    result = {
        r["id"]: r for r in audit.audit_document(results_doc(reference, {"cells": {"all": cell}}))
    }
    assert result["relu-mean-val-loss"]["verdict"] == audit.CONSISTENT
    assert result["relu-sd-val-loss"]["verdict"] == audit.CONSISTENT
    assert result["relu-sd-val-loss"]["matched_ddof"] == 1
    assert result["anova-f-val-loss"]["verdict"] == audit.INCONSISTENT  # stored 8.0 is wrong
    assert result["anova-p-val-loss"]["verdict"] == audit.CONSISTENT
    assert result["tukey-relu-gelu-val-loss"]["verdict"] == audit.INCONSISTENT
    assert result["worst-val-loss"]["verdict"] == audit.CONSISTENT
    assert result["relu-mean-val-acc"]["verdict"] == audit.RECOMPUTED_ONLY


# ---------------------------------------------------------------------------------------------
# command line


def test_cli_prints_the_table(capsys):
    assert main(["audit", str(REFERENCE)]) == 0
    out = capsys.readouterr().out
    line = next(x for x in out.splitlines() if x.startswith("relu-mean-val-loss "))
    assert line.split()[1:4] == ["1.5555", "1.55930", "inconsistent"]
    lines = out.splitlines()
    at = next(i for i, x in enumerate(lines) if x.startswith("swish-sd-val-loss "))
    assert "consistent" in lines[at].split()
    # the recomputed cell, wrapped within its column, then its note
    assert lines[at + 1].split() + lines[at + 2].split() == ["/", "0.02302", "(ddof=1)"]
    assert lines[at + 3].startswith("    matches the population (ddof=0) value")
    assert "124 claims" in out
    assert max(map(len, lines)) <= 80  # not a terminal: 80 columns


def test_cli_fits_the_terminal_and_audit_md_keeps_full_lines():
    rows = audit.audit_file(REFERENCE)
    full = audit.format_table(rows)
    assert max(map(len, full.splitlines())) > 300  # one line per claim, as audit.md has it
    assert audit.format_table(rows, 400) == full  # wide enough: unchanged
    for width in (80, 120):
        fitted = audit.format_table(rows, width).splitlines()
        assert max(map(len, fitted)) <= width
        assert fitted[-1] == "124 claims: 63 consistent, 24 not checkable, 37 inconsistent"
        text = " ".join(" ".join(fitted).split())
        for row in rows:  # every claim, its verdict and its note are all still there
            assert row["verdict"] in text and " ".join(row["note"].split()) in text


def test_cli_json_rows(capsys, tmp_path, reference):
    path = tmp_path / "results.json"
    path.write_text(json.dumps(results_doc(reference, None)), encoding="utf-8")
    assert main(["audit", "--json", str(path)]) == 0
    rows_ = json.loads(capsys.readouterr().out)
    assert {r["id"] for r in rows_} >= {"gelu-mean-val-loss", "anova-p-val-loss"}


def corrupt(reference: dict, how: str) -> str:
    doc = copy.deepcopy(reference)
    if how == "type":
        doc["trials"][3]["final"]["val_loss"] = "1.55"
    elif how == "unknown-claim":
        doc["claims"][0]["check"] = {"kind": "expr", "op": "diff", "a": {"claim": "nope"}, "b": 1}
    elif how == "unknown-group":
        doc["claims"][0]["check"] = {
            "kind": "stat",
            "stat": "mean",
            "metric": "val_loss",
            "group": "mish",
        }
    elif how == "cycle":
        doc["claims"][0]["check"] = {
            "kind": "expr",
            "op": "diff",
            "a": {"claim": doc["claims"][1]["id"]},
            "b": 1,
        }
        doc["claims"][1]["check"] = {
            "kind": "expr",
            "op": "diff",
            "a": {"claim": doc["claims"][0]["id"]},
            "b": 1,
        }
    elif how == "duplicate":
        doc["trials"].append(copy.deepcopy(doc["trials"][0]))
    elif how == "no-trials":
        return json.dumps({"statistics": {}})
    return json.dumps(doc)


@pytest.mark.parametrize(
    ("how", "expected"),
    [
        ("not-json", "is not valid JSON"),
        ("missing", "no such file"),
        ("type", "trials/3/final/val_loss"),
        ("unknown-claim", "unknown claim 'nope'"),
        ("unknown-group", "group 'mish'"),
        ("cycle", "cycle"),
        ("duplicate", "duplicate trial id 'relu-s42'"),
        ("no-trials", "no 'trials' list"),
    ],
)
def test_bad_input_exits_2_with_one_line(capsys, tmp_path, reference, how, expected):
    path = tmp_path / "input.json"
    if how == "not-json":
        path.write_text('{"trials": [', encoding="utf-8")
    elif how != "missing":
        path.write_text(corrupt(reference, how), encoding="utf-8")
    assert main(["audit", str(path)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0]


@pytest.mark.parametrize("width", [30, 60, 80])
def test_fitted_table_keeps_claim_ids_whole_and_claimed_texts_uncut(width):
    rows = audit.audit_file(REFERENCE)
    fitted = audit.format_table(rows, width)
    lines = fitted.splitlines()
    ids = {row["id"] for row in rows}
    if width >= 60:  # a table: each id starts a line, whole
        assert {line.split()[0] for line in lines if line.split() and line.split()[0] in ids} == ids
    else:  # too narrow for the ids: each id on a line of its own
        assert ids <= set(lines)
    assert "..." not in fitted
    words = fitted.split()  # the claimed text's words all there, in order
    at = words.index("swish-val-trajectory")
    claimed = "Monotonic decrease, minimal overfitting (best generalization)".split()
    assert [w for w in words[at:] if w in claimed][: len(claimed)] == claimed
    full = audit.format_table(rows)
    assert "Monotonic decrease, minimal overfitting (best generalization)" in full
