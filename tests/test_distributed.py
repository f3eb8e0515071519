"""Sweeps under torchrun (2 CPU ranks over gloo): same weights and records as one process,
failed trials named with the others kept, reruns train only what is missing, the determinism
check as one more share of the sweep, the exit status written where a script finds it; the
rules (assignment, devices, launcher variables, timeout) on their own; and the runner, which
never calls this driver.

The torchrun sweeps train on the first 50,000 characters of tiny Shakespeare (a ``[data] path``
corpus): evaluation over the full 111k-character validation split would dominate the run time.
"""

import ast
import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tarfile
from dataclasses import replace
from datetime import timedelta

import pytest
from conftest import REPO, run_group, tiny_spec, write_sweep

from charlm.data import Corpus
from charlm.io import sha256_file
from charlm.train import NonFiniteLossError, TrainingInterrupted, train_trial
from reproduce import checks, distributed, runlock, runner
from reproduce.cli import main
from reproduce.config import load_config
from reproduce.errors import UserError
from reproduce.results import load_results
from reproduce.sweep import Sweep

# Fields that legitimately differ between two runs of the same trial: timing. Removed at any
# depth (trial records, their curves, and the statistics of results.json) before comparing.
TIMING_FIELDS = {"wall_time_s", "tokens_per_s", "elapsed_s"}
LAUNCH_TIMEOUT_S = 300
EXCERPT_CHARS = 50_000


@pytest.fixture(scope="module")
def excerpt(data_path, tmp_path_factory):
    """The first 50,000 characters of tiny Shakespeare, as a file."""
    path = tmp_path_factory.mktemp("data") / "excerpt.txt"
    path.write_text(data_path.read_text(encoding="utf-8")[:EXCERPT_CHARS], encoding="utf-8")
    return path


def data_table(path):
    return f'\n[data]\npath = "{path.as_posix()}"\n'


def without_timing(value):
    if isinstance(value, dict):
        return {k: without_timing(v) for k, v in value.items() if k not in TIMING_FIELDS}
    if isinstance(value, list):
        return [without_timing(v) for v in value]
    return value


def weights_digests(directory):
    return {p.parent.name: sha256_file(p) for p in directory.glob("trials/*/weights.safetensors")}


def records(directory):
    return {p.parent.name: json.loads(p.read_text()) for p in directory.glob("trials/*/trial.json")}


def manifest_matches_files(directory):
    listed = sorted(
        line.split("  ", 1)[1] for line in (directory / "SHA256SUMS").read_text().splitlines()
    )
    present = sorted(
        p.relative_to(directory).as_posix()
        for p in directory.rglob("*")
        if p.is_file() and p.name not in ("SHA256SUMS", "state.safetensors")
    )
    check = subprocess.run(
        ["sha256sum", "--quiet", "-c", "SHA256SUMS"], cwd=directory, capture_output=True
    )
    return listed == present and check.returncode == 0


def launch(config, out, data_path, *extra):
    """``torchrun --standalone --nproc_per_node=2 -m reproduce run ...``: (command, env)."""
    env = {k: v for k, v in os.environ.items() if k not in distributed.LAUNCHER_VARS}
    env.update(CHARLM_DATA=str(data_path), REPRODUCE_DIST_TIMEOUT_S=str(LAUNCH_TIMEOUT_S))
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    command += ["--nproc_per_node=2", "-m", "reproduce", "run"]
    command += ["--config", str(config), "--out", str(out), *extra]
    return command, env


def said(stdout, rank, text):
    """Whether rank ``rank`` printed a line starting ``text`` (after any indentation)."""
    return re.search(rf"^rank {rank}: +{re.escape(text)}", stdout, flags=re.M) is not None


def torchrun(config, out, data_path, *extra):
    """Run :func:`launch`'s command to its end (cwd: the repository)."""
    command, env = launch(config, out, data_path, *extra)
    return run_group(command, LAUNCH_TIMEOUT_S, cwd=REPO, env=env)


# --- the rules -------------------------------------------------------------------------------


def test_assignment_is_round_robin_over_sorted_ids():
    ids = ["relu-s1", "gelu-s0", "swish-s0", "gelu-s1", "relu-s0"]
    shares = distributed.assign(ids, 2)
    assert shares == [["gelu-s0", "relu-s0", "swish-s0"], ["gelu-s1", "relu-s1"]]
    assert distributed.assign(reversed(ids), 2) == shares  # input order does not matter
    three = distributed.assign(ids, 3)
    assert three == [["gelu-s0", "relu-s1"], ["gelu-s1", "swish-s0"], ["relu-s0"]]
    many = distributed.assign(ids, 8)  # more ranks than trials: some ranks idle
    assert many[:5] == [[i] for i in sorted(ids)] and many[5:] == [[], [], []]
    assert distributed.assign([], 4) == [[], [], [], []]
    for world_size in (1, 2, 3, 4, 7):
        shares = distributed.assign(ids, world_size)
        flat = [i for share in shares for i in share]
        assert sorted(flat) == sorted(ids) and len(flat) == len(ids)
        assert max(map(len, shares)) - min(map(len, shares)) <= 1


@pytest.mark.parametrize("world_size", [0, -1, True, 1.5])
def test_assignment_refuses_a_bad_world_size(world_size):
    with pytest.raises(ValueError, match="world_size"):
        distributed.assign(["a"], world_size)


def test_assignment_refuses_duplicates():
    with pytest.raises(ValueError, match="duplicate"):
        distributed.assign(["a", "b", "a"], 2)


@pytest.mark.parametrize(
    ("configured", "local_rank", "gpus", "expected"),
    [
        ("cpu", 3, 8, "cpu"),
        ("auto", 3, 0, "cpu"),
        ("auto", 3, 8, "cuda:3"),
        ("cuda", 5, 2, "cuda:1"),  # more ranks than GPUs: ranks share
        ("cuda:7", 0, 4, "cuda:0"),  # the local rank chooses the GPU
        ("auto", 0, 1, "cuda:0"),
    ],
)
def test_rank_device(configured, local_rank, gpus, expected):
    assert distributed.rank_device(configured, local_rank, gpus) == expected


def test_rank_device_refuses_a_missing_gpu_or_unknown_device():
    with pytest.raises(ValueError, match="CUDA is not available"):
        distributed.rank_device("cuda", 0, 0)
    with pytest.raises(ValueError, match="train.device"):
        distributed.rank_device("tpu", 0, 1)


def test_launcher_variables():
    assert distributed.world_from_env({}) is None
    assert distributed.world_from_env({"WORLD_SIZE": "4", "RANK": "3", "LOCAL_RANK": "1"}) == (
        distributed.World(rank=3, world_size=4, local_rank=1)
    )
    with pytest.raises(ValueError, match="LOCAL_RANK not"):
        distributed.world_from_env({"WORLD_SIZE": "2", "RANK": "0"})
    with pytest.raises(ValueError, match="integers"):
        distributed.world_from_env({"WORLD_SIZE": "two", "RANK": "0", "LOCAL_RANK": "0"})
    with pytest.raises(ValueError, match="out of range"):
        distributed.world_from_env({"WORLD_SIZE": "2", "RANK": "2", "LOCAL_RANK": "0"})


def test_collective_timeout():
    assert distributed.collective_timeout({}) == timedelta(days=7)
    assert distributed.collective_timeout({"REPRODUCE_DIST_TIMEOUT_S": "90.5"}) == timedelta(
        seconds=90.5
    )
    for bad in ("0", "-3", "soon", "inf", "nan"):
        with pytest.raises(ValueError, match="REPRODUCE_DIST_TIMEOUT_S"):
            distributed.collective_timeout({"REPRODUCE_DIST_TIMEOUT_S": bad})


def test_a_launch_names_itself_in_the_lock_that_its_other_ranks_check(tmp_path):
    """Rank 0 holds the lock with its launch's key in the lock file; a rank of the same launch
    goes on, a rank of another launch (or one under a single-process run's lock) refuses with
    one line naming the holder, and a second launch's rank 0 cannot take the lock."""
    out = tmp_path / "out"
    key, other = 0x1234, 0x5678
    first = runlock.launch_tag(key, {"TORCHELASTIC_RUN_ID": "first"})
    assert first == "rank 0 of torchrun launch first, key 0000000000001234"
    static = runlock.launch_tag(other, {"MASTER_ADDR": "10.0.0.1", "MASTER_PORT": "29500"})
    assert static == "rank 0 of torchrun launch 10.0.0.1:29500, key 0000000000005678"
    assert 0 < runlock.launch_key() < 2**62
    with pytest.raises(UserError, match="no lock file, though this launch's rank 0 holds"):
        runlock.check_launch(out, key)  # a rank that does not see rank 0's directory
    with runlock.locked(out, launch=first):
        holder = runlock.holder(out)
        assert holder.startswith(f"pid {os.getpid()} on ") and holder.endswith(f" ({first})")
        runlock.check_launch(out, key)
        with pytest.raises(UserError) as refused:
            runlock.check_launch(out, other)
        assert str(refused.value) == (
            f"{out} is being written by another run ({holder}), not this launch's rank 0; wait "
            "for it to finish or choose another --out"
        )
        with pytest.raises(UserError, match=r"rank 0 of torchrun launch first, key 0+1234\)\)"):
            with runlock.locked(out, launch=static):  # the second launch's rank 0
                pass
    with runlock.locked(out):  # a single-process run
        with pytest.raises(UserError, match="not this launch's rank 0"):
            runlock.check_launch(out, key)
    with runlock.locked(out, launch=static):  # released: the next launch takes it
        runlock.check_launch(out, other)
    assert not (out / runlock.LOCK_FILE).exists()


# --- torchrun, 2 ranks on the CPU ------------------------------------------------------------


@pytest.fixture(scope="module")
def reference(data_path, excerpt, tmp_path_factory):
    """A 2 activations x 2 seeds sweep (4 steps, 2 threads, cpu) trained by the single-process
    trainer: (config, output directory)."""
    root = tmp_path_factory.mktemp("reference")
    config = write_sweep(root / "tiny.toml", max_iters=4, extra=data_table(excerpt))
    sweep = Sweep.open(config, root / "single", str(data_path))
    assert runner.train_trials(sweep, sweep.trials, log=lambda line: None) == {}
    return config, root / "single"


def test_torchrun_sweep_equals_single_process(reference, data_path, tmp_path):
    config, single = reference
    multi = tmp_path / "multi"
    run = torchrun(config, multi, data_path)
    assert run.returncode == 0, run.stderr[-3000:]
    # the i-th trial of the sorted list goes to rank i % 2; each rank reports its own trials
    for rank, ids in ((0, ["gelu-s0", "relu-s0"]), (1, ["gelu-s1", "relu-s1"])):
        for number, trial in enumerate(ids, 1):
            assert said(run.stdout, rank, f"[{number}/2] {trial}")
    assert "4 trial(s), 4 to train" in run.stdout

    digests = weights_digests(single)
    assert len(digests) == 4 and weights_digests(multi) == digests
    mine, theirs = records(multi), records(single)
    # torchrun exports OMP_NUM_THREADS=1; each trial still ran on the configured 2 threads
    assert {r["environment"]["threads"] for r in mine.values()} == {2}
    assert without_timing(mine) == without_timing(theirs)
    published = load_results(multi)["trials"]  # schema-valid, written by rank 0
    assert [t["id"] for t in published] == sorted(theirs)
    for entry in published:
        record = {k: v for k, v in entry.items() if k not in ("id", "group", "grid")}
        assert without_timing(record) == without_timing(theirs[entry["id"]])
    assert manifest_matches_files(multi)
    assert not (multi / distributed.RANKS_DIR).exists()
    assert not (multi / runlock.LOCK_FILE).exists()  # rank 0's lock, shared, then released


def test_failed_trials_are_named_others_kept_and_rerun_trains_only_whats_missing(
    data_path, excerpt, tmp_path
):
    # a learning rate of 1e30 makes the loss non-finite at once: charlm.train stops those
    # trials (a config the corpus cannot serve is refused before training, so this failure
    # comes from training); sorted, they are the 2nd and 4th, so both belong to rank 1
    config = write_sweep(
        tmp_path / "grid.toml",
        activations=("relu",),
        max_iters=4,
        extra=data_table(excerpt) + "\n[sweep.grid]\nlr = [0.003, 1e30]\n",
    )
    corpus = Corpus.load(excerpt)
    config.write_text(config.read_text().replace("lr = 3e-3\n", "", 1))
    failing = [t for t in load_config(config).trials(corpus.vocab_size) if "1e+30" in t.id]
    expected = {}
    for trial in failing:
        with pytest.raises(NonFiniteLossError) as info:
            train_trial(trial.spec, corpus, tmp_path / "probe" / trial.id, progress=False)
        expected[trial.id] = f"NonFiniteLossError: {info.value}"
    assert sorted(expected) == ["relu-s0-lr=1e+30", "relu-s1-lr=1e+30"]
    out = tmp_path / "out"

    run = torchrun(config, out, data_path)
    assert run.returncode != 0
    assert re.search(r"exitcode\s*:\s*1\b", run.stderr), run.stderr[-3000:]  # rank 0's status
    assert "error: 2 trial(s) failed: relu-s0-lr=1e+30, relu-s1-lr=1e+30" in run.stderr
    assert len(re.findall(r"^rank 1: +FAILED: NonFiniteLossError", run.stdout, re.M)) == 2
    assert json.loads((out / "failed.json").read_text()) == expected
    kept = weights_digests(out)
    assert sorted(kept) == ["relu-s0-lr=0.003", "relu-s1-lr=0.003"]
    assert not (out / "results.json").exists()
    assert manifest_matches_files(out)  # covers failed.json; the ranks' files are gone
    assert not (out / distributed.RANKS_DIR).exists()

    mtimes = {p: p.stat().st_mtime_ns for p in out.glob("trials/*/weights.safetensors")}
    config.write_text(config.read_text().replace("[0.003, 1e30]", "[0.003, 0.001]"))
    rerun = torchrun(config, out, data_path)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert "4 trial(s), 2 to train" in rerun.stdout
    assert said(rerun.stdout, 0, "[1/1] relu-s0-lr=0.001"), rerun.stdout
    assert said(rerun.stdout, 1, "[1/1] relu-s1-lr=0.001"), rerun.stdout
    assert mtimes == {p: p.stat().st_mtime_ns for p in mtimes}
    after = weights_digests(out)
    assert {k: after[k] for k in kept} == kept and len(after) == 4
    assert [t["id"] for t in load_results(out)["trials"]] == [
        "relu-s0-lr=0.001",
        "relu-s0-lr=0.003",
        "relu-s1-lr=0.001",
        "relu-s1-lr=0.003",
    ]
    assert not (out / "failed.json").exists()
    assert manifest_matches_files(out)


def test_time_limit_stops_every_rank_and_rerun_resumes(reference, data_path, tmp_path):
    config, single = reference
    out = tmp_path / "limited"
    status = tmp_path / "status"
    run = torchrun(config, out, data_path, "--time-limit", "0.001", "--status-file", str(status))
    assert run.returncode == 1  # torchrun's own status whenever a rank fails
    # torchrun's summary names rank 0, the first to exit, with the run's status
    assert re.search(rf"exitcode\s*:\s*{runner.EXIT_TIME_LIMIT}\b", run.stderr), run.stderr[-3000:]
    assert status.read_text() == f"{runner.EXIT_TIME_LIMIT}\n"  # which the status file keeps
    assert "rank 0: time limit reached" in run.stdout and "rank 1: time limit reached" in run.stdout
    # each rank saved the state of its first trial; nobody started a second one
    assert sorted(p.parent.name for p in out.glob("trials/*/state.safetensors")) == [
        "gelu-s0",
        "gelu-s1",
    ]
    assert not (out / "results.json").exists() and manifest_matches_files(out)
    rerun = torchrun(config, out, data_path)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert said(rerun.stdout, 0, "[1/2] gelu-s0 (resuming)"), rerun.stdout
    assert said(rerun.stdout, 1, "[1/2] gelu-s1 (resuming)"), rerun.stdout
    assert weights_digests(out) == weights_digests(single)


def test_a_second_launch_into_a_directory_a_launch_holds_refuses(excerpt, data_path, tmp_path):
    config = write_sweep(tmp_path / "tiny.toml", max_iters=4, extra=data_table(excerpt))
    out, status = tmp_path / "out", tmp_path / "status"
    first = runlock.launch_tag(runlock.launch_key(), {"TORCHELASTIC_RUN_ID": "first"})
    with runlock.locked(out, launch=first):  # as the first launch's rank 0 holds it
        holder = runlock.holder(out)
        run = torchrun(config, out, data_path, "--status-file", str(status))
    assert run.returncode == 1 and status.read_text() == "2\n"  # torchrun's 1: the status file
    errors = [line for line in run.stderr.splitlines() if line.startswith("error: ")]
    assert errors == [
        f"error: {out} is being written by another run ({holder}); wait for it to finish or "
        "choose another --out"
    ]
    assert sorted(p.name for p in out.iterdir()) == []  # nothing written, the lock file gone


def test_dry_run_rank_0_lists_the_others_stay_quiet(reference, data_path, tmp_path):
    config, _ = reference
    out = tmp_path / "dry"
    run = torchrun(config, out, data_path, "--dry-run", "--determinism-check", "4")
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.count("4 trial(s), 4 to train") == 1
    assert run.stdout.count("nothing trained") == 1
    owners = re.findall(r"^  (\S+) +new  rank (\d)$", run.stdout, flags=re.MULTILINE)
    assert owners == [("gelu-s0", "0"), ("gelu-s1", "1"), ("relu-s0", "0"), ("relu-s1", "1")]
    # the check is the fifth share of the work: rank 4 % 2
    check = "  determinism check (rank 0): copy of gelu-s0 (4 steps), 4 steps resumed at 2\n"
    assert run.stdout.count(check) == 1
    assert "rank 1:" not in run.stdout + run.stderr
    assert not out.exists()


def test_sigint_stops_every_rank_with_state_saved(excerpt, data_path, tmp_path):
    # long enough that no trial finishes before the signal
    config = write_sweep(tmp_path / "long.toml", max_iters=100_000, extra=data_table(excerpt))
    out = tmp_path / "interrupted"
    command, env = launch(config, out, data_path)
    proc = subprocess.Popen(
        command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        seen, started = [], set()
        for line in proc.stdout:  # wait until both ranks started their first trial
            seen.append(line)
            started |= {r for r in (0, 1) if said(line, r, "[1/2]")}
            if started == {0, 1}:
                break
        proc.send_signal(signal.SIGINT)
        rest, err = proc.communicate(timeout=LAUNCH_TIMEOUT_S)
    finally:
        if proc.poll() is None:
            proc.kill()
    stdout = "".join(seen) + rest
    assert proc.returncode != 0
    assert "rank 0: interrupted" in stdout and "rank 1: interrupted" in stdout, stdout + err
    assert "interrupted: finished trials are kept" in stdout
    assert sorted(p.parent.name for p in out.glob("trials/*/state.safetensors")) == [
        "gelu-s0",
        "gelu-s1",
    ]
    assert not (out / "results.json").exists() and manifest_matches_files(out)
    assert not (out / distributed.RANKS_DIR).exists()


# --- the determinism check, the snapshot, the status file ------------------------------------


def archive_members(path):
    with tarfile.open(fileobj=io.BytesIO(path.read_bytes())) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers()}


def test_determinism_check_is_one_more_share_of_the_sweep(reference, data_path, tmp_path):
    config, single = reference
    out = tmp_path / "checked"
    status, snapshot = tmp_path / "status", tmp_path / "back" / "records.tar.gz"
    extra = ("--determinism-check", "4", "--status-file", str(status), "--snapshot", str(snapshot))
    run = torchrun(config, out, data_path, *extra)
    assert run.returncode == 0, run.stderr[-3000:]
    assert status.read_text() == "0\n"
    # four trials to train, so the check is the fifth share: rank 4 % 2 = 0, after its trials
    assert "determinism check (rank 0): copy of gelu-s0 (4 steps), 4 steps resumed at 2" in (
        run.stdout
    )
    assert re.search(r"^rank 0: .*: gelu-s0, relu-s0, determinism check$", run.stdout, re.M)
    assert "rank 0: determinism check: 4-step run, stopped at 2, resumed" in run.stdout
    assert "rank 0: determinism check: second copy of gelu-s0" in run.stdout

    expected = weights_digests(single)
    assert weights_digests(out) == expected  # the sweep's own trials are untouched by it
    verdict = json.loads((out / checks.VERDICT_FILE).read_text())
    assert verdict["trial"] == "gelu-s0" and verdict["identical"] is True
    assert verdict["copies"]["weights_sha256"] == [expected["gelu-s0"]] * 2
    resume = verdict["resume"]
    assert (resume["steps"], resume["stopped_at"], resume["resumed_at_steps"]) == (4, 2, [2])
    assert resume["uninterrupted_sha256"] == resume["resumed_sha256"]
    assert verdict["environment"]["threads"] == 2
    assert "determinism check of gelu-s0: copy identical, stopped at 2 and resumed identical" in (
        run.stdout
    )
    assert load_results(out)["trials"][0]["id"] == "gelu-s0"
    assert manifest_matches_files(out)  # SHA256SUMS covers the check's files too
    assert not (out / checks.RESUME_DIR).exists()

    kept = archive_members(snapshot)
    assert sorted(n for n in kept if n.startswith("trials/")) == sorted(
        f"trials/{t}/{name}" for t in expected for name in ("trial.json", "log.jsonl")
    )
    assert json.loads(kept[checks.VERDICT_FILE]) == verdict
    assert "checks/replica/gelu-s0/trial.json" in kept and "checks/resume.json" in kept
    assert os.listdir(snapshot.parent) == ["records.tar.gz"]  # no lock or temporary file

    # a copy whose weights differ fails the check
    other = tmp_path / "other"
    shutil.copytree(out, other)
    sweep = Sweep.open(config, other, str(data_path))
    plan = checks.plan(sweep.trials, 4)
    replica = checks.replica_dir(other, plan)
    shutil.copy(other / "trials/relu-s1/weights.safetensors", replica / "weights.safetensors")
    record = json.loads((replica / "trial.json").read_text())
    record["weights_sha256"] = expected["relu-s1"]
    (replica / "trial.json").write_text(json.dumps(record))
    different = checks.verdict(other, plan, sweep.trial_dir(plan.trial))
    assert different["identical"] is False and different["copies"]["identical"] is False
    assert different["resume"]["identical"] is True


def test_determinism_check_and_snapshot_rules(reference, data_path, tmp_path):
    config, single = reference
    # the check needs ranks of its own: refused in one process, before anything is written
    out = tmp_path / "one"
    assert main(["run", "--config", str(config), "--out", str(out), "--determinism-check", "4"])
    assert not out.exists()
    with pytest.raises(ValueError, match="at least 2 steps"):
        checks.plan(Sweep.open(config, out, str(data_path)).trials, 1)
    # one process: --status-file and --snapshot work too (nothing left to train here)
    copy = tmp_path / "copy"
    shutil.copytree(single, copy)
    status, snapshot = tmp_path / "status", tmp_path / "records.tar.gz"
    args = ["run", "--config", str(config), "--out", str(copy), "--data", str(data_path)]
    assert main([*args, "--status-file", str(status), "--snapshot", str(snapshot)]) == 0
    assert status.read_text() == "0\n"
    kept = archive_members(snapshot)
    records = {n: json.loads(b) for n, b in kept.items() if n.endswith("trial.json")}
    assert {n.split("/")[1]: r["weights_sha256"] for n, r in records.items()} == (
        weights_digests(single)
    )
    # a bad config is status 2 in the file too
    assert (
        main(
            [
                "run",
                "--config",
                str(tmp_path / "none.toml"),
                "--out",
                str(copy),
                "--status-file",
                str(status),
            ]
        )
        == 2
    )
    assert status.read_text() == "2\n"


def test_snapshot_is_rewritten_as_each_trial_finishes(reference, data_path, tmp_path):
    config, single = reference
    sweep = Sweep.open(config, tmp_path / "run", str(data_path))
    target = tmp_path / "back" / "records.tar.gz"
    seen = []

    def on_done(trial, record):
        checks.snapshot(sweep.out, target)
        names = archive_members(target)
        seen.append(sorted(n.split("/")[1] for n in names if n.endswith("/trial.json")))
        assert json.loads(names[f"trials/{trial.id}/trial.json"]) == record

    assert runner.train_trials(sweep, sweep.trials, log=lambda line: None, on_done=on_done) == {}
    ids = [t.id for t in sweep.trials]
    assert seen == [ids[: k + 1] for k in range(len(ids))]
    first = target.read_bytes()
    checks.snapshot(sweep.out, target)  # the same files give the same bytes
    assert target.read_bytes() == first


def test_resume_check_equals_the_uninterrupted_run(excerpt, tmp_path):
    corpus = Corpus.load(excerpt)
    spec = tiny_spec(max_iters=6)
    spec = replace(spec, model=replace(spec.model, vocab_size=corpus.vocab_size))
    result = checks.resume_check(spec, corpus, tmp_path / "work", 6)
    assert result["identical"] is True
    assert (result["stopped_at"], result["resumed_at_steps"]) == (3, [3])
    assert result["uninterrupted_sha256"] == result["resumed_sha256"]
    straight = train_trial(spec, corpus, tmp_path / "straight", progress=False)
    assert straight["weights_sha256"] == result["uninterrupted_sha256"]  # same 6-step trial
    assert not (tmp_path / "work").exists()
    # an outside stop (a time limit) is not a resume check: it propagates
    with pytest.raises(TrainingInterrupted):
        checks.resume_check(spec, corpus, tmp_path / "work", 6, stop_check=lambda step: step >= 1)


def test_runner_never_imports_the_distributed_driver():
    tree = ast.parse((REPO / "reproduce" / "runner.py").read_text(encoding="utf-8"))
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            imported |= {f"{node.module}.{alias.name}" for alias in node.names}
    assert "reproduce.distributed" not in imported and "reproduce.runner" not in imported
    assert not any(name.startswith("reproduce.checks") for name in imported)
    loaded = subprocess.run(
        [sys.executable, "-c", "import sys, reproduce.runner; print(*sorted(sys.modules))"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert "reproduce.runner" in loaded and "reproduce.distributed" not in loaded
    from reproduce.cli import COMMANDS

    assert COMMANDS["run"] == "reproduce.distributed"  # which calls the runner
