"""verify: integrity, analysis and retraining checks on a tiny real run."""

import base64
import json
import shutil
from pathlib import Path

import pytest
import torch
from conftest import REPO, write_sweep

from charlm import cpu, platforms
from charlm.data import Corpus
from charlm.io import atomic_write_json
from reproduce import results
from reproduce.cli import main
from reproduce.manifest import write_manifest
from reproduce.verification import tolerance
from reproduce.verify import (
    FAIL,
    NOT_DISTRIBUTED,
    PASS,
    PLATFORM_DIFFERS,
    TOLERANCES,
    judge_retrain,
    outlook_line,
    retrain,
    retrain_outlook,
    verify,
)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, data_path):
    root = tmp_path_factory.mktemp("verify")
    config = write_sweep(root / "tiny.toml", activations=("relu", "swish"))
    out = root / "run"
    assert main(["run", "--config", str(config), "--out", str(out), "--data", str(data_path)]) == 0
    return out


@pytest.fixture
def copy(run_dir, tmp_path):
    dest = tmp_path / "copy"
    shutil.copytree(run_dir, dest)
    return dest


def verdicts(rows, check):
    return {r.subject: r.verdict for r in rows if r.check == check}


def test_clean_run_passes(run_dir, capsys):
    assert main(["verify", str(run_dir)]) == 0
    out = capsys.readouterr().out
    assert "verification passed" in out and FAIL not in out
    rows = verify(run_dir)
    assert verdicts(rows, "weights") == {
        i: PASS for i in ("relu-s0", "relu-s1", "swish-s0", "swish-s1")
    }
    assert verdicts(rows, "statistics") == {"results.json": PASS}
    assert verdicts(rows, "metrics") == {i: PASS for i in verdicts(rows, "weights")}
    assert verdicts(rows, "prediction difference") == {"results.json": PASS}
    assert verdicts(rows, "report")["report.md"] == PASS
    assert verdicts(rows, "trials") == {}


@pytest.mark.parametrize(
    "target", ["trials/swish-s1/weights.safetensors", "results.json", "report.md"]
)
def test_one_changed_byte_fails_and_is_named(copy, target, capsys):
    path = copy / target
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    path.write_bytes(bytes(raw))
    assert main(["verify", str(copy)]) == 1
    out = capsys.readouterr().out
    assert "verification FAILED" in out and target in out.splitlines()[-1]
    rows = verify(copy)
    assert verdicts(rows, "manifest")[target] == FAIL


def test_weights_changed_and_manifest_rewritten_still_fails(copy):
    path = copy / "trials/relu-s0/weights.safetensors"
    raw = bytearray(path.read_bytes())
    raw[-1] ^= 0x01
    path.write_bytes(bytes(raw))
    write_manifest(copy)  # an attacker who also rewrites SHA256SUMS
    rows = verify(copy)
    assert verdicts(rows, "manifest") == {"SHA256SUMS": PASS}
    assert verdicts(rows, "weights")["relu-s0"] == FAIL


def test_missing_listed_file_fails(copy):
    (copy / "report.md").unlink()
    rows = verify(copy)
    failed = [r for r in rows if r.verdict == FAIL]
    assert [(r.subject, r.detail) for r in failed] == [("report.md", "listed but missing")]


def test_tampered_statistics_fail(copy):
    data = json.loads((copy / "results.json").read_text())
    cell = data["statistics"]["cells"]["all"]["val_loss_comparison"]
    cell["anova"]["p"] = 0.01
    atomic_write_json(copy / "results.json", data)
    write_manifest(copy)
    rows = verify(copy)
    stats_row = next(r for r in rows if r.check == "statistics")
    assert stats_row.verdict == FAIL and "anova/p" in stats_row.detail


def test_published_without_weights_reports_not_distributed(run_dir, tmp_path, capsys):
    dest = tmp_path / "pub"
    assert main(["publish", str(run_dir), str(dest)]) == 0
    assert main(["verify", str(dest)]) == 0
    rows = verify(dest)
    assert set(verdicts(rows, "weights").values()) == {NOT_DISTRIBUTED}
    assert verdicts(rows, "prediction difference") == {"results.json": NOT_DISTRIBUTED}
    assert not any(r.verdict == FAIL for r in rows)


def test_retrain_is_bit_identical_on_the_same_platform(run_dir, data_path, capsys):
    assert main(["verify", str(run_dir), "--retrain", "swish-s1", "--data", str(data_path)]) == 0
    rows = verify(run_dir, ["swish-s1"], str(data_path))
    assert verdicts(rows, "retrain") == {"swish-s1": PASS}
    assert "bit-identical" in next(r for r in rows if r.check == "retrain").detail


def _edit_trial(directory, trial_id, edit):
    data = json.loads((directory / "results.json").read_text())
    edit(next(t for t in data["trials"] if t["id"] == trial_id))
    atomic_write_json(directory / "results.json", data)
    write_manifest(directory)


def test_retrain_on_another_platform_checks_tolerances(copy, data_path):
    def edit(trial):
        trial["environment"].update(cpu_model="Another CPU")
        trial["weights_sha256"] = "0" * 64  # as another CPU's bits would be

    _edit_trial(copy, "relu-s0", edit)
    notes = []
    rows = verify(copy, ["relu-s0"], str(data_path), on_note=notes.append)
    row = next(r for r in rows if r.check == "retrain")
    assert row.verdict == PLATFORM_DIFFERS
    assert row.detail.startswith("platform differs (cpu_model: 'Another CPU' recorded")
    assert row.detail.endswith("within tolerance; final metrics equal")  # fp32: measured
    # after the rows, one note: the tolerance, its source, the rankings it cannot confirm
    assert len(notes) == 1
    assert notes[0].startswith(
        "tolerance on another platform: losses 0.007 nats, accuracies 0.13 points (3 x the "
        "largest difference measured in each unit, rounded up to 0.001 nats or 0.01 points; "
        "measured once: relu-s42 of artifacts/cpu trained on AMD Zen 4 (AVX512-BF16), "
        "retrained on AMD Zen 3 (AVX2), fp32, torch 2.13, 2026-12-07: val_loss -0.002245, "
        "train_loss -0.000371 nats, val_accuracy -0.019, train_accuracy +0.041 points); the "
        "report's rankings it cannot confirm (means within twice the tolerance, four times "
        "for a gap): "
    )
    assert "not measured" not in notes[0]
    assert notes[0].endswith("the PD ranking (a retrain does not recompute PD)")


def test_bit_identical_retrain_passes_whatever_platform_is_recorded(copy, data_path):
    _edit_trial(copy, "relu-s0", lambda t: t["environment"].update(cpu_model="Another CPU"))
    row = next(r for r in verify(copy, ["relu-s0"], str(data_path)) if r.check == "retrain")
    assert row.verdict == PASS
    assert row.detail == (
        "bit-identical weights and final metrics (platform record: cpu_model: 'Another CPU' "
        f"recorded, {platforms.record(torch.device('cpu'), 'fp32')['cpu_model']!r} here)"
    )


OLDER_KEYS = ("cpu_vendor", "cpu_family", "cpu_model_number", "cpu_stepping", "cpu_capability")


def test_retrain_of_an_older_record_is_platform_unknown_with_the_metric_differences(
    copy, data_path
):
    """A record that lacks the keys deciding bit-identity (as artifacts/cpu's) cannot be
    called the same platform: other weights are 'platform differs', never a bit-mismatch FAIL,
    and the metric differences are printed."""

    def edit(trial):
        for key in (*OLDER_KEYS, "cpu_isa", "cpu_bf16", "mkl", "onednn", "cuda_capability"):
            trial["environment"].pop(key)
        trial["weights_sha256"] = "0" * 64
        trial["final"]["val_loss"] += 0.001

    _edit_trial(copy, "swish-s1", edit)
    row = next(r for r in verify(copy, ["swish-s1"], str(data_path)) if r.check == "retrain")
    assert row.verdict == PLATFORM_DIFFERS
    assert row.detail.startswith(
        "platform unknown (not recorded: cpu_vendor, cpu_family, cpu_model_number, "
        "cpu_stepping, cpu_capability, cpu_isa, cpu_bf16, mkl, onednn); metrics within "
        "tolerance; retrained - recorded: val_loss -0.001 nats, train_loss +0 nats"
    )


def test_retrain_says_before_training_what_it_can_show(run_dir, data_path, tmp_path):
    data = json.loads((run_dir / "results.json").read_text())
    lines = []
    corpus = Corpus.load(data_path)
    rows = retrain(data, ["relu-s1"], corpus, tmp_path, log=lines.append)
    assert rows[0].verdict == PASS and rows[0].detail.endswith("final metrics")
    assert lines[0].startswith("relu-s1: same platform as recorded (")
    assert lines[0].endswith("): the weights must be bit-identical")
    steps = [line for line in lines if line.lstrip().startswith("step")]
    assert len(steps) == 3 and steps[1].endswith("left")
    assert not steps[0].endswith("left") and not steps[-1].endswith("left")
    trial = next(t for t in data["trials"] if t["id"] == "relu-s1")
    trial["environment"]["cpu_capability"] = "AVX512_FOR_THIS_TEST"
    line = outlook_line(trial, retrain_outlook(trial))
    assert line.startswith("relu-s1: the outcome can only be 'platform differs' (cpu_capability:")
    for key in OLDER_KEYS:
        trial["environment"].pop(key)
    line = outlook_line(trial, retrain_outlook(trial))
    assert line.startswith(f"relu-s1: its record lacks {', '.join(OLDER_KEYS)}, so this")


def test_retrain_out_of_tolerance_fails(copy, data_path):
    def edit(trial):
        trial["environment"]["threads"] = 64
        trial["final"]["val_loss"] += 0.2

    _edit_trial(copy, "relu-s1", edit)
    rows = verify(copy, ["relu-s1"], str(data_path))
    row = next(r for r in rows if r.check == "retrain")
    assert row.verdict == FAIL and "val_loss off by 0.2" in row.detail


def test_retrain_same_platform_different_bits_fails(copy, data_path):
    _edit_trial(copy, "swish-s0", lambda t: t.update(weights_sha256="0" * 64))
    rows = verify(copy, ["swish-s0"], str(data_path))
    row = next(r for r in rows if r.check == "retrain")
    assert row.verdict == FAIL and "same platform" in row.detail


def test_unknown_trial_and_missing_manifest(run_dir, tmp_path, capsys):
    assert main(["verify", str(run_dir), "--retrain", "tanh-s0"]) == 2
    assert "unknown trial id(s) ['tanh-s0']" in capsys.readouterr().err
    assert main(["verify", str(tmp_path)]) == 2
    assert "SHA256SUMS not found" in capsys.readouterr().err


def test_a_publication_carries_its_reference_and_re_renders_anywhere(run_dir, tmp_path):
    """publish ships the files a report was rendered with; without them (here a run
    directory whose reference file was removed) the report cannot be checked, which fails."""
    shipped = Path(__file__).resolve().parents[1] / "artifacts/reference/charlm-full-20251208.json"
    reference = tmp_path / "refs" / "reference.json"
    reference.parent.mkdir()
    shutil.copyfile(shipped, reference)
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    assert (
        main(["render", str(copy), "--reference", str(reference), "--compare", str(run_dir)]) == 0
    )
    published = tmp_path / "published"
    assert main(["publish", str(copy), str(published)]) == 0
    moved = tmp_path / "a" / "b" / "moved"
    shutil.copytree(published, moved)
    assert json.loads((moved / "results.json").read_text())["render"]["options"] == {
        "compare": "compare",
        "reference": "reference.json",
    }
    assert (moved / "reference.json").read_bytes() == shipped.read_bytes()
    compared = (moved / "compare/results.json").read_bytes()
    assert compared == (run_dir / "results.json").read_bytes()
    assert "Replication of the published report" in (moved / "report.md").read_text()
    assert "## Comparison:" in (moved / "report.md").read_text()
    reference.unlink()
    rows = verify(moved)
    assert not any(r.verdict == FAIL for r in rows)
    assert verdicts(rows, "report")["report.md"] == PASS
    rows = verify(copy)  # nothing can say whether this report is true: it fails
    failed = [r for r in rows if r.verdict == FAIL]
    assert [(r.check, r.subject) for r in failed] == [("report", "re-render")]
    assert "reference file" in failed[0].detail and "republish" in failed[0].detail


def test_a_final_metric_that_the_weights_do_not_give_fails(copy):
    """An edited val_loss with every summary recomputed and SHA256SUMS rewritten: only the
    weights can tell, and they do."""
    data = json.loads((copy / "results.json").read_text())
    trial = next(t for t in data["trials"] if t["id"] == "relu-s0")
    recorded = trial["final"]["val_loss"]
    trial["final"]["val_loss"] = recorded - 0.01
    data["statistics"] = results.statistics(data["trials"])
    atomic_write_json(copy / "results.json", data)
    assert main(["render", str(copy)]) == 0  # re-renders the report and rewrites SHA256SUMS
    rows = verify(copy)
    assert verdicts(rows, "statistics") == {"results.json": PASS}
    assert verdicts(rows, "metrics") == {
        "relu-s0": FAIL,
        "relu-s1": PASS,
        "swish-s0": PASS,
        "swish-s1": PASS,
    }
    row = next(r for r in rows if r.check == "metrics" and r.verdict == FAIL)
    assert f"val_loss recorded {recorded - 0.01:.6g}, the weights give {recorded:.6g}" in row.detail


def test_retrain_same_platform_different_metrics_fails(copy, data_path):
    _edit_trial(copy, "swish-s0", lambda t: t["final"].update(val_accuracy=99.0))
    rows = verify(copy, ["swish-s0"], str(data_path))
    row = next(r for r in rows if r.check == "retrain")
    assert row.verdict == FAIL
    assert row.detail.startswith(
        "bit-identical weights on the same platform, but final metrics differ; retrained - "
        "recorded: val_loss +0 nats, train_loss +0 nats, val_accuracy "
    )


def test_trial_directory_missing_from_results_fails(copy):
    """A half-trained trial (an interrupted extension of the sweep) is not a verified result."""
    shutil.copytree(copy / "trials/relu-s0", copy / "trials/relu-s7")
    write_manifest(copy)
    rows = verify(copy)
    assert verdicts(rows, "trials") == {"trials/relu-s7": FAIL}
    assert verdicts(rows, "manifest") == {"SHA256SUMS": PASS}


def _forge_stack(directory):
    data = json.loads((directory / "results.json").read_text())
    data["render"]["stack"]["matplotlib"] = "0.0-forged"
    atomic_write_json(directory / "results.json", data)
    assert main(["render", str(directory)]) == 0


def _other_figure_bytes(directory):
    """What another matplotlib might draw: one PNG's bytes and report.html's embedded copy."""
    png = directory / "figures/final_val_loss.png"
    old = base64.b64encode(png.read_bytes())
    raw = bytearray(png.read_bytes())
    raw[-20] ^= 0x01
    png.write_bytes(bytes(raw))
    html = directory / "report.html"
    assert old in html.read_bytes()
    html.write_bytes(html.read_bytes().replace(old, base64.b64encode(bytes(raw))))
    write_manifest(directory)


@pytest.mark.parametrize("stack", ["recorded", "another"])
def test_figures_compare_by_bytes_only_on_the_recorded_stack(copy, stack):
    """Where figure bytes cannot be compared, report.md and audit.md still are, and report.html
    with its embedded images set aside."""
    if stack == "another":
        _forge_stack(copy)
    _other_figure_bytes(copy)
    rows = verdicts(verify(copy), "report")
    assert rows["report.md"] == PASS and rows["audit.md"] == PASS
    expected = FAIL if stack == "recorded" else PLATFORM_DIFFERS
    assert rows["report.html"] == expected and rows["figures/final_val_loss.png"] == expected
    assert rows["figures/relative_pd.png"] == PASS


@pytest.mark.parametrize("target", ["report.md", "report.html", "audit.md"])
def test_an_edited_report_fails_whatever_stack_is_recorded(copy, target):
    _forge_stack(copy)
    path = copy / target
    text = path.read_text()
    edited = text.replace("relu", "swish", 1)
    assert edited != text
    path.write_text(edited)
    write_manifest(copy)
    assert verdicts(verify(copy), "report")[target] == FAIL


def test_truncated_weights_fail_their_row_and_stop_nothing(copy):
    path = copy / "trials/relu-s1/weights.safetensors"
    path.write_bytes(path.read_bytes()[:100])
    write_manifest(copy)
    rows = verify(copy)
    assert verdicts(rows, "weights")["relu-s1"] == FAIL
    assert "relu-s1" not in verdicts(rows, "metrics")
    assert verdicts(rows, "prediction difference") == {"results.json": NOT_DISTRIBUTED}
    assert verdicts(rows, "report")["report.md"] == PASS


@pytest.fixture(scope="module")
def auto_run(tmp_path_factory, data_path):
    """A tiny sweep with ``precision = "auto"``: bf16 on CPUs with native bf16, as published."""
    root = tmp_path_factory.mktemp("verify-auto")
    config = write_sweep(root / "tiny.toml", activations=("gelu",), seeds=(3,))
    config.write_text(config.read_text().replace('precision = "fp32"', 'precision = "auto"'))
    out = root / "run"
    assert main(["run", "--config", str(config), "--out", str(out), "--data", str(data_path)]) == 0
    return out


def test_auto_precision_trial_records_what_it_resolved_to(auto_run):
    trial = json.loads((auto_run / "results.json").read_text())["trials"][0]
    expected = "bf16" if cpu.bf16_native() else "fp32"
    assert trial["train"]["precision"] == "auto"
    assert trial["train"]["precision_used"] == trial["environment"]["precision"] == expected
    assert trial["environment"]["cpu_bf16"] == cpu.bf16_capability()


def test_auto_precision_retrain_is_bit_identical_here(auto_run, data_path):
    rows = verify(auto_run, ["gelu-s3"], str(data_path))
    assert verdicts(rows, "retrain") == {"gelu-s3": PASS}


def test_retrain_at_another_thread_count_reports_platform_differs(auto_run, data_path, monkeypatch):
    real = torch.set_num_threads
    monkeypatch.setattr(torch, "set_num_threads", lambda n: real(1))
    try:
        rows = verify(auto_run, ["gelu-s3"], str(data_path))
    finally:
        real(2)
    row = next(r for r in rows if r.check == "retrain")
    assert row.verdict == PLATFORM_DIFFERS
    assert "threads: 2 recorded, 1 here" in row.detail


def test_retrain_on_a_cpu_without_native_bf16_reports_platform_differs(
    auto_run, data_path, monkeypatch
):
    if not cpu.bf16_native():
        pytest.skip("this CPU has no native bf16: the published trial was fp32 already")
    monkeypatch.setattr(cpu, "bf16_capability", lambda: "none")
    monkeypatch.setattr(cpu, "bf16_native", lambda: False)
    rows = verify(auto_run, ["gelu-s3"], str(data_path))
    row = next(r for r in rows if r.check == "retrain")
    assert row.verdict == PLATFORM_DIFFERS
    assert "precision: 'bf16' recorded, 'fp32' here" in row.detail
    assert "cpu_bf16: 'avx512_bf16' recorded, 'none' here" in row.detail or (
        "cpu_bf16: 'amx' recorded" in row.detail
    )


def test_outlook_on_a_cpu_without_native_bf16_names_the_precision(run_dir, monkeypatch):
    """A bf16 trial (``precision = "auto"`` on a CPU with native bf16, as artifacts/partial-cpu)
    retrained on a CPU without it trains in fp32: verify says before training that the outcome
    can only be "platform differs" and why. No training: the outlook is decided first."""
    data = json.loads((run_dir / "results.json").read_text())
    trial = data["trials"][0]
    trial["train"]["precision"] = "auto"
    trial["environment"].update(precision="bf16", cpu_bf16="avx512_bf16")
    monkeypatch.setattr(cpu, "bf16_capability", lambda: "none")
    monkeypatch.setattr(cpu, "bf16_native", lambda: False)
    match = retrain_outlook(trial)
    assert match.differs == [
        "precision: 'bf16' recorded, 'fp32' here",
        "cpu_bf16: 'avx512_bf16' recorded, 'none' here",
    ]
    line = outlook_line(trial, match)
    assert line == (
        f"{trial['id']}: the outcome can only be 'platform differs' (precision: 'bf16' "
        "recorded, 'fp32' here; cpu_bf16: 'avx512_bf16' recorded, 'none' here): the weights "
        "cannot be bit-identical here, and the final metrics are compared within tolerances "
        "(losses 0.007 nats, accuracies 0.13 points)"
    )


# --- the cross-platform tolerance, from a measured spread --------------------------------------


def _smallest_val_loss_rank_difference(name):
    cells = json.loads((REPO / "artifacts" / name / "results.json").read_text())["statistics"]
    found = []
    for cell in cells["cells"].values():
        means = {a: s["val_loss"]["mean"] for a, s in cell["activations"].items()}
        ranking = cell["val_loss_comparison"]["ranking"]
        found += [means[b] - means[a] for a, b in zip(ranking, ranking[1:], strict=False)]
    return min(found)


def test_the_tolerance_is_the_stated_multiple_of_the_measured_spread():
    spread = tolerance.SPREAD
    assert (spread.trial, spread.precision, spread.torch, spread.date) == (
        "relu-s42 of artifacts/cpu",
        "fp32",
        "2.13",
        "2026-12-07",
    )
    assert TOLERANCES == tolerance.tolerances_from(spread)
    assert TOLERANCES == {
        "val_loss": 0.007,  # 3 x 0.002245, rounded up to 0.001
        "train_loss": 0.007,
        "val_accuracy": 0.13,  # 3 x 0.041, rounded up to 0.01
        "train_accuracy": 0.13,
    }
    for key, value in TOLERANCES.items():
        assert value >= tolerance.MULTIPLE * abs(spread.differences[key])


def test_the_loss_tolerance_is_below_every_ranked_difference_of_the_publications():
    cpu = _smallest_val_loss_rank_difference("cpu")
    partial = _smallest_val_loss_rank_difference("partial-cpu")
    assert cpu == pytest.approx(0.0167, abs=1e-4) and partial == pytest.approx(0.0079, abs=1e-4)
    assert TOLERANCES["val_loss"] < min(cpu, partial)
    # a difference of means is confirmed to twice the tolerance: artifacts/cpu's val loss
    # ranking is, three of artifacts/partial-cpu's are not, and verify names them
    for name, expected in (
        ("cpu", []),
        (
            "partial-cpu",
            [
                "val loss relu < gelu (0.0082 nats)",
                "val loss gelu < smelu-0.5 (0.0101 nats)",
                "val loss smelu-0.5 < swish (0.0079 nats)",
            ],
        ),
    ):
        data = json.loads((REPO / "artifacts" / name / "results.json").read_text())
        found = tolerance.unconfirmed_rankings(data)
        assert [r for r in found if r.startswith("val loss")] == expected


def _judged(environment, deltas):
    """The retrain row of a trial recorded on ``environment`` and retrained here, its final
    metrics off by ``deltas`` (retrained minus recorded)."""
    recorded = {"val_loss": 1.9, "train_loss": 1.8, "val_accuracy": 43.0, "train_accuracy": 47.0}
    here = platforms.record(torch.device("cpu"), "fp32", threads=2)
    trial = {
        "id": "relu-s42",
        "environment": environment,
        "weights_sha256": "a" * 64,
        "final": recorded,
    }
    retrained = {k: v + deltas.get(k, 0.0) for k, v in recorded.items()}
    return judge_retrain(
        trial, {"environment": here, "weights_sha256": "b" * 64, "final": retrained}
    )


def test_a_difference_within_the_measured_spread_is_platform_differs_and_passes():
    elsewhere = {**platforms.record(torch.device("cpu"), "fp32", threads=2), "cpu_model": "Zen 4"}
    row = _judged(elsewhere, tolerance.SPREAD.differences)
    assert row.verdict == PLATFORM_DIFFERS
    assert "metrics within tolerance; retrained - recorded: val_loss -0.002245 nats" in row.detail
    assert "not measured" not in row.detail
    row = _judged(elsewhere, {"val_loss": 0.04})  # the forgery that passed at 0.05 nats
    assert row.verdict == FAIL and "val_loss off by 0.04 (tolerance 0.007)" in row.detail


def test_a_bf16_trial_gets_the_fp32_tolerance_and_says_its_spread_is_unmeasured():
    bf16 = {**platforms.record(torch.device("cpu"), "fp32", threads=2), "precision": "bf16"}
    row = _judged(bf16, {"val_loss": 0.003})
    assert row.verdict == PLATFORM_DIFFERS
    assert row.detail.endswith(
        "; tolerance from an fp32 CPU measurement, the spread of bf16 not measured"
    )
    data = json.loads((REPO / "artifacts" / "partial-cpu" / "results.json").read_text())
    line = tolerance.tolerance_line(data, [data["trials"][0]["environment"]])
    unmeasured = "; the spread of bf16 is not measured: such trials are judged with this fp32 CPU "
    assert unmeasured in line
