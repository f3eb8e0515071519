"""The sweep runner end to end on real data with a tiny config: results, manifest, skip,
resume, extension, refusals and publish."""

import json
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest
import torch
from conftest import write_sweep

from charlm.io import sha256_file
from charlm.train import TrainingInterrupted, train_trial
from reproduce import runner
from reproduce.cli import main
from reproduce.config import load_config
from reproduce.finish import finalize, kept_render_options
from reproduce.results import load_results
from reproduce.sweep import Sweep

REPO = Path(__file__).resolve().parents[1]


def sha256sum_check(directory):
    return subprocess.run(
        ["sha256sum", "--quiet", "-c", "SHA256SUMS"], cwd=directory, capture_output=True, text=True
    )


def weights_digests(directory):
    return {p.parent.name: sha256_file(p) for p in directory.glob("trials/*/weights.safetensors")}


@pytest.fixture(scope="module")
def finished(tiny_sweep):
    return tiny_sweep


def test_run_writes_valid_results_and_manifest(finished):
    _, out = finished
    data = load_results(out)  # validates against the schema
    assert [t["id"] for t in data["trials"]] == ["gelu-s0", "gelu-s1", "relu-s0", "relu-s1"]
    trial = data["trials"][0]
    assert trial["group"] == "gelu" and trial["grid"] == {} and trial["final"]["step"] == 8
    assert trial["weights_sha256"] == sha256_file(out / "trials/gelu-s0/weights.safetensors")
    assert trial["environment"]["threads"] == 2 and trial["train"]["precision_used"] == "fp32"
    assert set(data["prediction_difference"]) == {"gelu", "relu"}
    pairs = data["prediction_difference"]["gelu"]["pairs"]
    assert list(pairs) == ["s0-s1"] and 0 < pairs["s0-s1"]["relative_pd"] < 2
    assert data["samples"]["relu"]["text"].startswith("ROMEO:")
    assert data["statistics"]["cells"]["all"]["activations"]["gelu"]["n"] == 2
    assert (out / "report.md").is_file()
    assert sha256sum_check(out).returncode == 0
    listed = [line.split("  ", 1)[1] for line in (out / "SHA256SUMS").read_text().splitlines()]
    assert "state.safetensors" not in " ".join(listed) and "results.json" in listed
    assert "trials/relu-s1/weights.safetensors" in listed


def test_finished_trials_are_skipped(finished, data_path, capsys):
    config, out = finished
    before = {p: p.stat().st_mtime_ns for p in out.glob("trials/*/weights.safetensors")}
    assert main(["run", "--config", str(config), "--out", str(out), "--data", str(data_path)]) == 0
    assert "0 to train" in capsys.readouterr().out
    assert before == {p: p.stat().st_mtime_ns for p in out.glob("trials/*/weights.safetensors")}
    assert sha256sum_check(out).returncode == 0


def test_more_seeds_and_activations_train_only_whats_missing(finished, data_path, tmp_path, capsys):
    config, out = finished
    copy = tmp_path / "out"
    shutil.copytree(out, copy)
    before = weights_digests(copy)
    bigger = write_sweep(
        tmp_path / "bigger.toml", activations=("relu", "gelu", "swish"), seeds=(0, 1, 2)
    )
    assert main(["run", "--config", str(bigger), "--out", str(copy), "--data", str(data_path)]) == 0
    assert "9 trial(s), 5 to train" in capsys.readouterr().out
    after = weights_digests(copy)
    assert {k: after[k] for k in before} == before and len(after) == 9
    assert len(load_results(copy)["trials"]) == 9


def test_running_some_trials_keeps_every_finished_one_in_the_results(
    finished, data_path, tmp_path, capsys
):
    config, out = finished
    copy = tmp_path / "out"
    shutil.copytree(out, copy)
    before = load_results(copy)["trials"]
    args = ["run", "--config", str(config), "--out", str(copy), "--data", str(data_path)]
    assert main([*args, "--trials", "relu-s0"]) == 0
    assert load_results(copy)["trials"] == before
    fresh = tmp_path / "fresh"
    args[4] = str(fresh)
    assert main([*args, "--trials", "relu-s1,gelu-s0"]) == 0
    logged = capsys.readouterr().out
    assert [t["id"] for t in load_results(fresh)["trials"]] == ["gelu-s0", "relu-s1"]
    assert "covers 2 finished trial(s); not yet trained: ['gelu-s1', 'relu-s0']" in logged
    fewer = write_sweep(tmp_path / "fewer.toml", seeds=(0,))
    args[2], args[4] = str(fewer), str(copy)
    assert main(args) == 0
    assert "also holds ['gelu-s1', 'relu-s1'], trials of another config" in capsys.readouterr().out
    assert [t["id"] for t in load_results(copy)["trials"]] == ["gelu-s0", "relu-s0"]


def test_corrupted_weights_are_named_and_trained_again_to_the_same_bits(
    finished, data_path, tmp_path, capsys
):
    config, out = finished
    copy = tmp_path / "out"
    shutil.copytree(out, copy)
    path = copy / "trials/gelu-s1/weights.safetensors"
    original = sha256_file(path)
    raw = bytearray(path.read_bytes())
    raw[-1] ^= 0x01
    path.write_bytes(bytes(raw))
    assert main(["run", "--config", str(config), "--out", str(copy), "--data", str(data_path)]) == 0
    logged = capsys.readouterr().out
    assert "4 trial(s), 1 to train" in logged
    said = " ".join(logged.split())  # lines wrap at 80 columns
    assert "gelu-s1 (its weights are missing or do not match their recorded digest" in said
    assert sha256_file(path) == original


def test_other_base_settings_are_refused(finished, data_path, tmp_path, capsys):
    config, out = finished
    changed = tmp_path / "changed.toml"
    changed.write_text(config.read_text().replace("lr = 3e-3", "lr = 1e-3"))
    before = sha256_file(out / "SHA256SUMS")
    code = main(["run", "--config", str(changed), "--out", str(out), "--data", str(data_path)])
    err = capsys.readouterr().err
    assert code == 2
    assert "other base settings (train.lr: 0.003 recorded, 0.001 now)" in err
    assert err.count("\n") == 1
    assert sha256_file(out / "SHA256SUMS") == before


def test_a_refusal_lists_every_other_base_setting_up_to_twelve(
    finished, data_path, tmp_path, capsys, monkeypatch
):
    config, out = finished
    text = config.read_text()
    for old, new in [
        ("lr = 3e-3", "lr = 1e-3"),
        ("warmup_iters = 2", "warmup_iters = 3"),
        ("batch_size = 8", "batch_size = 4"),
        ("n_embd = 16", "n_embd = 32"),
        ("block_size = 16", "block_size = 24"),
        ("dropout = 0.1", "dropout = 0.2"),
    ]:
        assert old in text
        text = text.replace(old, new)
    changed = tmp_path / "changed.toml"
    changed.write_text(text)
    assert main(["run", "--config", str(changed), "--out", str(out), "--data", str(data_path)]) == 2
    err = capsys.readouterr().err
    for name in ("lr", "warmup_iters", "batch_size", "n_embd", "block_size"):
        assert f"{name}: " in err
    assert "dropout" in err and "more" not in err and err.count("\n") == 1
    monkeypatch.setattr("reproduce.sweep.MAX_DIFFERENCES_SHOWN", 2)
    assert main(["run", "--config", str(changed), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count(" recorded, ") == 2 and " more); choose another --out" in err


def test_interrupted_trial_resumes_to_identical_weights(finished, data_path, tmp_path, capsys):
    config, out = finished
    fresh = tmp_path / "fresh"
    sweep = Sweep.open(config, fresh, str(data_path))
    trial = next(t for t in sweep.trials if t.id == "relu-s1")
    with pytest.raises(TrainingInterrupted):
        train_trial(
            trial.spec,
            sweep.corpus,
            sweep.trial_dir(trial),
            stop_check=lambda step: step == 5,
            progress=False,
        )
    assert sweep.status(trial) == "resume"
    assert (
        main(["run", "--config", str(config), "--out", str(fresh), "--data", str(data_path)]) == 0
    )
    assert "relu-s1 (resuming)" in capsys.readouterr().out
    assert weights_digests(fresh) == weights_digests(out)


def test_time_limit_stops_cleanly_and_rerun_finishes(finished, data_path, tmp_path):
    config, out = finished
    limited = tmp_path / "limited"
    code = main(
        [
            "run",
            "--config",
            str(config),
            "--out",
            str(limited),
            "--data",
            str(data_path),
            "--time-limit",
            "0.001",
        ]
    )
    assert code == runner.EXIT_TIME_LIMIT
    assert not (limited / "results.json").exists()
    assert sha256sum_check(limited).returncode == 0
    assert (
        main(["run", "--config", str(config), "--out", str(limited), "--data", str(data_path)]) == 0
    )
    assert weights_digests(limited) == weights_digests(out)


def test_failed_trial_is_named_and_others_kept(finished, data_path, tmp_path, monkeypatch, capsys):
    config, _ = finished
    out = tmp_path / "failing"
    real = runner.train_trial

    def flaky(spec, corpus, directory, **kw):
        if directory.name == "gelu-s1":
            raise RuntimeError("simulated failure")
        return real(spec, corpus, directory, **kw)

    monkeypatch.setattr(runner, "train_trial", flaky)
    code = main(["run", "--config", str(config), "--out", str(out), "--data", str(data_path)])
    err = capsys.readouterr().err
    assert code == 1 and "1 trial(s) failed: gelu-s1" in err
    assert json.loads((out / "failed.json").read_text()) == {
        "gelu-s1": "RuntimeError: simulated failure"
    }
    assert sorted(weights_digests(out)) == ["gelu-s0", "relu-s0", "relu-s1"]
    assert not (out / "results.json").exists()
    monkeypatch.setattr(runner, "train_trial", real)
    assert main(["run", "--config", str(config), "--out", str(out), "--data", str(data_path)]) == 0
    assert not (out / "failed.json").exists()


def test_dry_run_lists_and_trains_nothing(finished, data_path, tmp_path, capsys):
    config, _ = finished
    out = tmp_path / "dry"
    assert (
        main(
            [
                "run",
                "--config",
                str(config),
                "--out",
                str(out),
                "--data",
                str(data_path),
                "--dry-run",
            ]
        )
        == 0
    )
    text = capsys.readouterr().out
    assert "relu-s1" in text and "estimated training time" in text and "nothing trained" in text
    assert "1 layers x 16 wide, 2 heads, context 16" in text
    assert not out.exists()


def test_bad_config_exits_2_with_one_line(tmp_path, capsys):
    bad = write_sweep(tmp_path / "bad.toml")
    bad.write_text(bad.read_text().replace("n_head = 2", "n_head = 3"))
    assert main(["run", "--config", str(bad), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "divisible" in err and err.count("\n") == 1


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_an_unavailable_device_fails_before_anything_is_written(tmp_path, data_path, capsys):
    config = write_sweep(tmp_path / "tiny.toml")
    out = tmp_path / "o"
    args = ["run", "--config", str(config), "--out", str(out), "--data", str(data_path)]
    assert main([*args, "--set", 'train.device="cuda"']) == 2
    err = capsys.readouterr().err
    assert "train.device: device 'cuda' asked for, but CUDA is not available" in err
    assert err.count("\n") == 1 and not out.exists()


def test_out_that_is_a_file_is_refused(tmp_path, data_path, capsys):
    config = write_sweep(tmp_path / "tiny.toml")
    out = tmp_path / "o"
    out.write_text("mine")
    assert main(["run", "--config", str(config), "--out", str(out), "--data", str(data_path)]) == 2
    assert (
        capsys.readouterr().err
        == f"error: --out {out} is a file; name a directory (new, or a run's)\n"
    )
    assert out.read_text() == "mine"


def test_a_directory_without_trained_trials_takes_other_settings(
    finished, tmp_path, data_path, capsys
):
    config, out = finished
    copy = tmp_path / "out"
    copy.mkdir()
    shutil.copyfile(out / "sweep.json", copy / "sweep.json")  # settings, but nothing trained
    changed = tmp_path / "changed.toml"
    changed.write_text(config.read_text().replace("lr = 3e-3", "lr = 1e-3"))
    args = ["run", "--config", str(changed), "--out", str(copy), "--data", str(data_path)]
    assert main([*args, "--trials", "relu-s0"]) == 0
    assert load_results(copy)["config"]["train"]["lr"] == 1e-3


@pytest.mark.parametrize("with_weights", [False, True])
def test_publish_ships_exactly_what_it_lists(finished, tmp_path, with_weights):
    _, out = finished
    dest = tmp_path / "pub"
    args = ["publish", str(out), str(dest)] + (["--with-weights"] if with_weights else [])
    assert main(args) == 0
    assert sha256sum_check(dest).returncode == 0
    listed = sorted(
        line.split("  ", 1)[1] for line in (dest / "SHA256SUMS").read_text().splitlines()
    )
    present = sorted(
        p.relative_to(dest).as_posix()
        for p in dest.rglob("*")
        if p.is_file() and p.name != "SHA256SUMS"
    )
    assert listed == present
    weights = [p for p in listed if p.endswith("weights.safetensors")]
    assert len(weights) == (4 if with_weights else 0)
    assert {"results.json", "report.md", "logs.tar.gz"} <= set(listed)
    with tarfile.open(dest / "logs.tar.gz") as tar:
        assert tar.getnames() == [
            f"trials/{i}/log.jsonl" for i in ("gelu-s0", "gelu-s1", "relu-s0", "relu-s1")
        ]
    first = sha256_file(dest / "logs.tar.gz")
    assert main(args) == 0  # republishing replaces the publication with identical bytes
    assert sha256_file(dest / "logs.tar.gz") == first


def test_publish_refuses_a_foreign_directory(finished, tmp_path, capsys):
    _, out = finished
    dest = tmp_path / "taken"
    dest.mkdir()
    (dest / "notes.txt").write_text("mine")
    assert main(["publish", str(out), str(dest)]) == 2
    assert "not a published directory (it has SHA256SUMS (missing))" in capsys.readouterr().err
    assert (dest / "notes.txt").read_text() == "mine"


def test_publish_never_replaces_a_run_directory(finished, tmp_path, capsys):
    """A run directory has a SHA256SUMS too; publishing onto one must not delete its trials."""
    _, out = finished
    victim = tmp_path / "victim"
    shutil.copytree(out, victim)
    before = sorted(str(p.relative_to(victim)) for p in victim.rglob("*"))
    assert main(["publish", str(out), str(victim)]) == 2
    err = capsys.readouterr().err
    assert "is not a published directory (it has" in err and "choose an empty or new DEST" in err
    assert sorted(str(p.relative_to(victim)) for p in victim.rglob("*")) == before
    assert main(["publish", str(victim), str(victim / "trials" / "published")]) == 2
    assert "DEST must be outside RUN_DIR" in capsys.readouterr().err
    afile = tmp_path / "afile"
    afile.write_text("mine")
    assert main(["publish", str(victim), str(afile)]) == 2
    assert "is a file; name a new directory" in capsys.readouterr().err
    assert sorted(str(p.relative_to(victim)) for p in victim.rglob("*")) == before


def test_render_twice_gives_identical_bytes(finished):
    _, out = finished
    first = (out / "report.md").read_bytes()
    assert main(["render", str(out)]) == 0
    assert (out / "report.md").read_bytes() == first
    assert sha256sum_check(out).returncode == 0


def test_config_records_match_results(finished):
    config, out = finished
    data = load_results(out)
    assert data["config"] == load_config(config).to_dict()


# ---------------------------------------------------------------------------------------------
# the time estimate: one rule, checked against recorded times (nothing here is timed)


def test_evaluations_left_counts_what_train_trial_evaluates(finished):
    from reproduce.estimate import evaluations_left

    _, out = finished
    curves = load_results(out)["trials"][0]["curves"]
    assert [c["step"] for c in curves] == [0, 4, 8]
    assert evaluations_left(8, 4) == len(curves) == 3
    assert evaluations_left(500, 50) == 11  # partial.toml: steps 0, 50, ..., 500
    assert evaluations_left(1500, 250) == 7  # cpu.toml
    assert evaluations_left(10, 4) == 4  # 0, 4, 8 and the final 10
    assert evaluations_left(10, 4, start=4) == 2  # resumed after the evaluation at 4: 8, 10
    assert evaluations_left(10, 4, start=5) == 2
    assert evaluations_left(10, 4, start=10) == 0
    with pytest.raises(ValueError, match="start"):
        evaluations_left(10, 4, start=11)


def test_the_rule_with_the_readmes_recorded_step_time(tmp_path, data_path, monkeypatch, capsys):
    """partial.toml at the README's recorded 1,742 ms/iter: 15 trials x 500 steps, plus 11
    evaluations of 4.0 s and 2.5 s of setup per trial, and the first trial's 7.5 s more once."""
    from reproduce import estimate

    recorded = estimate.Timings(1.742, 4.0, 2.5, "recorded", once_s=7.5)
    calls = []

    def measure(spec, corpus, activations=()):
        calls.append((spec.model.activation, activations))
        return {a: recorded for a in (spec.model.activation, *activations)}

    monkeypatch.setattr(estimate, "measure", measure)
    sweep = Sweep.open("configs/partial.toml", tmp_path / "p", str(data_path))
    seconds, how = runner.estimate_seconds(sweep, sweep.trials)
    assert seconds == pytest.approx(15 * (500 * 1.742 + 11 * 4.0 + 2.5) + 7.5)  # 13,770 s
    assert estimate.format_duration(seconds) == "3h49m"
    assert calls == [("gelu", ("gelu", "relu", "smelu-0.5", "smelu-1.0", "swish"))]  # once
    assert how.startswith("15 trial(s), 7,500 steps in all; recorded with gelu")
    assert runner.dry_run_listing(sweep) == 0
    out = capsys.readouterr().out.splitlines()
    assert "estimated training time: 3h49m; nothing trained" in out
    assert max(map(len, out[1:])) <= 80  # the first line names the (temporary) directory


def test_the_rule_from_recorded_trials_predicts_the_recorded_sweep():
    """artifacts/cpu's own records: each seed-42 trial's times, by the rule, give its
    activation's other trials; the 15 trials' recorded 29 minutes are predicted within 1%."""
    from reproduce import estimate

    trials = load_results("artifacts/cpu")["trials"]
    config = load_config("configs/cpu.toml")
    spec = {t.id: t.spec for t in config.trials(65)}
    first = {t["group"]: t for t in trials if t["seed"] == 42}
    for record in first.values():  # a trial's own times give back its wall time exactly
        times = estimate.timings_from_records([record])
        alone = estimate.trial_seconds(spec[record["id"]].train, times)
        assert alone == pytest.approx(record["wall_time_s"], rel=1e-9)
    predicted = sum(
        estimate.trial_seconds(
            spec[t["id"]].train, estimate.timings_from_records([first[t["group"]]])
        )
        for t in trials
    )
    recorded = sum(t["wall_time_s"] for t in trials)
    assert recorded == pytest.approx(1738.35, abs=0.01)
    assert predicted == pytest.approx(recorded, rel=0.01)


def test_the_running_estimate_uses_the_same_rule(finished):
    from reproduce import estimate

    config, out = finished
    sweep = Sweep.open(config, out)
    trials = sweep.trials
    records = [json.loads((sweep.trial_dir(t) / "trial.json").read_text()) for t in trials]
    trained = [(trials[0], records[0], records[0]["wall_time_s"] + 1.5)]  # 1.5 s to set up
    assert runner._eta_note(sweep, trials[1:], []) == ""  # nothing trained yet: no figure
    times = estimate.timings_from_records([records[0]], [trained[0][2]])
    assert times.setup_s == pytest.approx(1.5)
    expected = sum(estimate.trial_seconds(t.spec.train, times) for t in trials[1:])
    assert expected == pytest.approx(3 * (records[0]["wall_time_s"] + 1.5))
    note = runner._eta_note(sweep, trials[1:], trained)
    assert note == f", about {estimate.format_duration(expected)} of training left"


def test_the_dry_run_says_what_its_estimate_is_based_on(finished, data_path, tmp_path, capsys):
    config, _ = finished
    out = tmp_path / "dry"
    args = ["run", "--config", str(config), "--out", str(out), "--data", str(data_path)]
    assert main([*args, "--dry-run"]) == 0
    lines = capsys.readouterr().out.splitlines()
    at = next(i for i, x in enumerate(lines) if x.startswith("estimated training time: "))
    basis = " ".join(" ".join(lines[at + 1 :]).split())
    assert basis.startswith("4 trial(s), 32 steps in all; measured here at the config's size:")
    assert "per step at batch 8" in basis and "per evaluation of 13944 windows" in basis
    assert "relu -" in basis or "relu +" in basis  # its activation's own cost
    assert max(map(len, lines[1:])) <= 80 and not out.exists()


def test_finalize_shows_its_progress_and_writes_the_same_results(finished, tmp_path):
    _, out = finished
    copy = tmp_path / "out"
    shutil.copytree(out, copy)
    config, _ = finished
    lines = []
    finalize(Sweep.open(config, copy), log=lines.append)
    assert lines[:6] == [
        "finishing: prediction differences, samples and the report (5 steps)",
        "  [1/5] prediction differences of gelu (2 seeds)",
        "  [2/5] prediction differences of relu (2 seeds)",
        "  [3/5] sample of gelu",
        "  [4/5] sample of relu",
        "  [5/5] the report, its figures and audit.md",
    ]
    for name in ("results.json", "report.md", "audit.md", "SHA256SUMS"):
        assert (copy / name).read_bytes() == (out / name).read_bytes(), name


def test_measure_counts_the_first_trials_extra_once(corpus):
    """A real measurement at the tiny size: every activation gets its step, evaluation and
    per-trial setup time; only the measured activation carries the once-per-process extra,
    which the sweep's estimate adds once."""
    from conftest import tiny_spec

    from reproduce import estimate

    activations = ("gelu", "relu", "swish")
    times = estimate.measure(tiny_spec(0), corpus, activations, min_steps=6, max_steps=6)
    assert list(times) == ["gelu", "relu", "swish"]
    gelu = times["gelu"]
    assert gelu.step_s > 0 and gelu.eval_s > 0 and gelu.setup_s > 0 and gelu.once_s >= 0
    assert "(median of 6 after a warm-up step)" in " ".join(gelu.basis.split())
    for name in ("relu", "swish"):
        assert times[name].setup_s == gelu.setup_s and times[name].once_s == 0.0
        assert times[name].basis.startswith(f"{name} ") and times[name].step_s >= 0


def test_finishing_again_keeps_the_render_options_of_the_report(finished, tmp_path):
    """A report rendered with --compare keeps its comparison when more trials finish into the
    directory (finalize runs again), where a plain `render` would follow it (inside the
    directory); one leading outside, or whose file has gone, is dropped, not followed."""
    config, out = finished
    copy, outside = tmp_path / "out", tmp_path / "outside"
    shutil.copytree(out, copy)
    shutil.copytree(out, outside)
    assert main(["render", str(copy), "--compare", str(outside)]) == 0
    assert kept_render_options(copy) == {}
    other = copy / "compared"
    shutil.copytree(out, other)
    assert main(["render", str(copy), "--compare", str(other)]) == 0
    rendered = (copy / "report.md").read_bytes()
    finalize(Sweep.open(config, copy), log=lambda line: None)
    assert load_results(copy)["render"]["options"]["compare"] == "compared"
    assert (copy / "report.md").read_bytes() == rendered
    shutil.rmtree(other)
    finalize(Sweep.open(config, copy), log=lambda line: None)
    assert load_results(copy)["render"]["options"]["compare"] is None
    assert (copy / "report.md").read_bytes() == (out / "report.md").read_bytes()


def test_an_earlier_render_option_that_no_longer_fits_never_fails_a_finished_run(
    finished, tmp_path
):
    """Options a plain `render` would not follow are dropped (here: a compare directory inside
    the run whose results.json is gone); one that is followed but fails (the study's raw data
    beside a sweep not trained under the study protocol) is a warning, and the report is
    rendered without it: the trials are done, the run does not fail at its end."""
    config, out = finished
    copy = tmp_path / "out"
    shutil.copytree(out, copy)
    (copy / "gone").mkdir()
    data = json.loads((copy / "results.json").read_text(encoding="utf-8"))
    data["render"]["options"]["compare"] = "gone"
    (copy / "results.json").write_text(json.dumps(data), encoding="utf-8")
    assert kept_render_options(copy) == {}
    (copy / "study").mkdir()
    for name in ("study-raw.json", "provenance.json"):
        shutil.copyfile(REPO / "artifacts/reference" / name, copy / "study" / name)
    options = {"compare": None, "reference": None, "study": "study/study-raw.json"}
    data["render"]["options"] = options
    (copy / "results.json").write_text(json.dumps(data), encoding="utf-8")
    assert kept_render_options(copy) == {"study": "study/study-raw.json"}
    lines = []
    finalize(Sweep.open(config, copy), log=lines.append)
    warning = [line for line in lines if line.startswith("warning:")]
    assert len(warning) == 1 and "not trained under the study protocol" in warning[0]
    assert load_results(copy)["render"]["options"].get("study") is None
    assert (copy / "report.md").read_bytes() == (out / "report.md").read_bytes()
