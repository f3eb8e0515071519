"""verify against a hostile publication: one made by someone who wants it to pass.

Each test forges a copy of a tiny real publication (the shared tiny sweep, published with its
weights) the way an attacker would, digests and SHA256SUMS rewritten to match, and checks that
verify fails with a one-line reason naming what is wrong, or shows what it cannot check as
such. Everything a test writes or names lies under its own temporary directory: the "outside"
an attack aims at is a sibling of the publication there, and the tests check nothing was
written to it.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import re
import shutil
import signal
import tarfile

import pytest
from conftest import write_sweep
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from charlm.__main__ import main as charlm_main
from charlm.io import atomic_write_json, sha256_file
from reproduce import results, runlock, runner
from reproduce.cli import main
from reproduce.manifest import write_manifest
from reproduce.publish import logs_archive
from reproduce.verification.integrity import check_integrity
from reproduce.verification.numbers import check_logs, check_samples
from reproduce.verify import FAIL, NOT_VERIFIABLE, PASS, verify

WEIGHTS = "trials/relu-s0/weights.safetensors"


@pytest.fixture(scope="module")
def publication(tiny_sweep, tmp_path_factory):
    _, out = tiny_sweep
    dest = tmp_path_factory.mktemp("hostile") / "published"
    assert main(["publish", str(out), str(dest), "--with-weights"]) == 0
    return dest


@pytest.fixture
def pub(publication, tmp_path):
    """A copy to forge, in ``tmp_path/pub``; ``tmp_path/outside`` is what attacks aim at."""
    dest = tmp_path / "pub"
    shutil.copytree(publication, dest)
    (tmp_path / "outside").mkdir()
    return dest


def only_weights(directory, keep="relu-s0"):
    """Ship one trial's weights only (as a publication may), so that verify evaluates one
    model: the other trials' metrics are then "not verifiable", never a failure."""
    for path in (directory / "trials").glob("*/weights.safetensors"):
        if path.parent.name != keep:
            path.unlink()
    write_manifest(directory)


def load(directory):
    return json.loads((directory / "results.json").read_text())


def save(directory, data):
    """Write a forged results.json and rewrite SHA256SUMS, as an attacker would."""
    atomic_write_json(directory / "results.json", data)
    write_manifest(directory)


def failures(rows):
    return [r for r in rows if r.verdict == FAIL]


def fails_with(directory, capsys, *words, args=()):
    """verify exits 1 and names each of ``words`` in its FAIL rows (one row each, wrapped
    only for the terminal); returns the printed FAIL rows, unwrapped."""
    assert main(["verify", str(directory), *args]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert any(line.startswith("verification FAILED: ") for line in lines[-3:])
    rows, current = [], None
    for line in lines[1:]:
        if line.startswith(" ") and current is not None:
            rows[-1] += " " + line.strip()
            continue
        current = line if line.startswith("FAIL ") else None
        if current:
            rows.append(line)
    assert rows, "no FAIL row"
    text = " ".join(rows)
    for word in words:
        assert word in text, (word, text)
    return rows


# ------------------------------------------------------------------ 1: containment


def test_manifest_entries_outside_the_directory_are_never_read(pub, tmp_path, capsys):
    secret = tmp_path / "outside" / "secret"
    secret.write_text("not for verify")
    lines = (pub / "SHA256SUMS").read_text()
    lines += f"{sha256_file(secret)}  ../outside/secret\n"
    lines += f"{sha256_file(secret)}  {secret}\n"
    (pub / "SHA256SUMS").write_text(lines)
    rows = fails_with(pub, capsys, "leads outside", "is absolute", "not read")
    assert len(rows) == 2 and rows[0].split()[:3] == ["FAIL", "manifest", "../outside/secret:"]


def test_a_symbolic_link_inside_is_refused_before_anything_is_read(pub, tmp_path, capsys):
    (tmp_path / "outside" / "notes.md").write_text("elsewhere")
    (pub / "notes.md").symlink_to(tmp_path / "outside" / "notes.md")
    write_manifest(pub)  # an attacker lists it too (write_manifest itself skips links)
    lines = (pub / "SHA256SUMS").read_text()
    digest = sha256_file(tmp_path / "outside" / "notes.md")
    (pub / "SHA256SUMS").write_text(lines + f"{digest}  notes.md\n")
    rows = fails_with(pub, capsys, "a symbolic link to")
    assert len(rows) == 1 and rows[0].split()[:3] == ["FAIL", "layout", "notes.md:"]


def test_a_trial_id_that_climbs_out_writes_nothing_outside(pub, tmp_path, capsys, data_path):
    planted = "relu-s0-x/../../outside/planted"
    data = load(pub)
    data["trials"][0]["id"] = planted
    save(pub, data)
    assert main(["verify", str(pub), "--retrain", "all", "--data", str(data_path)]) == 1
    assert "verification FAILED" in capsys.readouterr().out
    rows = verify(pub)
    assert [(r.check, r.verdict) for r in rows if r.check == "trial ids"] == [("trial ids", FAIL)]
    assert "is not a plain file name" in failures(rows)[0].detail
    assert list((tmp_path / "outside").iterdir()) == []


def test_a_trial_id_that_names_another_trials_weights_fails(pub, capsys):
    data = load(pub)
    a, b = data["trials"][0], data["trials"][1]
    a["id"], b["id"] = b["id"], a["id"]  # each record now points at the other's directory
    save(pub, data)
    fails_with(pub, capsys, "is not the id of its activation, seed and grid")


def test_render_options_outside_are_not_followed(pub, tmp_path, capsys):
    (tmp_path / "outside" / "reference.json").write_text("{}")  # never read
    only_weights(pub)
    data = load(pub)
    data["render"]["options"]["reference"] = "../outside/reference.json"
    save(pub, data)
    fails_with(pub, capsys, "render option reference", "reads only inside")
    assert main(["render", str(pub)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "name it with --reference" in err


def test_publish_refuses_a_run_directory_with_a_link(tiny_sweep, tmp_path, capsys):
    _, out = tiny_sweep
    run = tmp_path / "run"
    shutil.copytree(out, run)
    (tmp_path / "outside" / "x").parent.mkdir()
    (tmp_path / "outside" / "x").write_text("x")
    (run / "figures" / "extra.png").symlink_to(tmp_path / "outside" / "x")
    assert main(["publish", str(run), str(tmp_path / "dest")]) == 2
    assert "is a symbolic link" in capsys.readouterr().err
    assert not (tmp_path / "dest").exists()


# ---------------------------------------------- 2: every number checked or marked


def _forge_val_loss(directory, delta):
    """One trial's val_loss changed everywhere results.json shows it, the statistics and the
    report recomputed: only the shipped logs (and the weights) still hold the truth."""
    data = load(directory)
    trial = next(t for t in data["trials"] if t["id"] == "relu-s0")
    trial["final"]["val_loss"] += delta
    trial["curves"][-1]["val_loss"] += delta
    if trial["best"]["step"] == trial["final"]["step"]:
        trial["best"]["val_loss"] += delta
    data["statistics"] = results.statistics(data["trials"])
    atomic_write_json(directory / "results.json", data)
    assert main(["render", str(directory)]) == 0


def test_a_consistent_forgery_is_caught_by_the_shipped_logs(pub, capsys):
    for path in (pub / "trials").rglob("weights.safetensors"):
        path.unlink()  # published without weights, like artifacts/partial-cpu
    _forge_val_loss(pub, -0.04)
    capsys.readouterr()
    fails_with(pub, capsys, "curves differ from logs.tar.gz for relu-s0")


def test_a_forged_curve_with_forged_logs_is_caught_by_a_retrain(pub, capsys, data_path):
    only_weights(pub)
    data = load(pub)
    trial = next(t for t in data["trials"] if t["id"] == "relu-s0")
    trial["curves"][1]["val_loss"] += 0.01  # an intermediate point: the final one stays true
    atomic_write_json(pub / "results.json", data)
    logs = {t["id"]: t["curves"] for t in data["trials"]}
    _write_logs(pub, logs)
    assert main(["render", str(pub)]) == 0  # the figures redrawn, SHA256SUMS rewritten
    rows = verify(pub)
    assert not failures(rows)  # logs and results agree, final metrics match the weights
    rows = verify(pub, ["relu-s0"], str(data_path))
    curve = next(r for r in rows if r.check == "retrain curve")
    assert curve.verdict == FAIL and "step 4: val_loss differ" in curve.detail


def test_a_forgery_on_a_claimed_other_cpu_fails_the_retrain(pub, capsys, data_path):
    """A 0.04-nat forgery whose record claims another CPU (no weights shipped, logs and
    summaries forged to match) passes everything but a retrain; the retrain's tolerance,
    from a measured cross-platform spread, is smaller than the forgery: it fails, and verify
    names the tolerance and its source."""
    for path in (pub / "trials").rglob("weights.safetensors"):
        path.unlink()
    data = load(pub)
    trial = next(t for t in data["trials"] if t["id"] == "relu-s0")
    trial["environment"]["cpu_model"] = "Another CPU"
    trial["weights_sha256"] = "0" * 64  # as another CPU's bits would be
    atomic_write_json(pub / "results.json", data)
    _forge_val_loss(pub, -0.04)
    _write_logs(pub, {t["id"]: t["curves"] for t in load(pub)["trials"]})
    write_manifest(pub)
    assert not failures(verify(pub))
    capsys.readouterr()
    assert main(["verify", str(pub), "--retrain", "relu-s0", "--data", str(data_path)]) == 1
    said = " ".join(line.strip() for line in capsys.readouterr().out.splitlines())
    row = "retrain relu-s0: platform differs (cpu_model: 'Another CPU' recorded"
    assert re.search(r"FAIL +" + re.escape(row), said)
    assert "val_loss off by 0.04 (tolerance 0.007)" in said
    assert "note: tolerance on another platform: losses 0.007 nats, accuracies 0.13 " in said
    assert said.endswith("verification FAILED: relu-s0")


def _write_logs(directory, logs):
    staging = directory.parent / "logs-staging"
    for trial_id, curve in logs.items():
        path = staging / "trials" / trial_id / "log.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in curve))
    (directory / "logs.tar.gz").write_bytes(logs_archive(staging, list(logs)))


def test_a_hand_written_sample_fails(pub, capsys):
    only_weights(pub)
    data = load(pub)
    group = "relu"
    data["samples"][group]["text"] = data["samples"][group]["prompt"] + " a better sample"
    save(pub, data)
    assert main(["render", str(pub)]) == 0
    fails_with(pub, capsys, "the weights give another text from character")


def test_timings_are_shown_as_claims_and_the_last_line_says_so(pub, capsys):
    only_weights(pub)
    data = load(pub)
    data["trials"][0]["tokens_per_s"] = 1e9
    save(pub, data)
    assert main(["render", str(pub)]) == 0
    capsys.readouterr()
    assert main(["verify", str(pub)]) == 0
    out = capsys.readouterr().out
    assert "claim            timings results.json: wall_time_s, tokens_per_s" in out
    last = " ".join(line.strip() for line in out.splitlines()[-3:])
    assert last.endswith(
        "3 trials' metrics not verifiable without weights or --retrain; 2 claims not verifiable"
    )  # the timings and gelu's sample


def test_without_weights_the_last_line_names_what_was_not_verified(pub, capsys):
    shutil.rmtree(pub / "trials")
    write_manifest(pub)
    assert main(["verify", str(pub)]) == 0
    last = " ".join(line.strip() for line in capsys.readouterr().out.splitlines()[-3:])
    assert "verification passed:" in last
    assert "4 trials' metrics not verifiable without weights or --retrain" in last
    rows = verify(pub)
    assert {r.verdict for r in rows if r.check == "sample"} == {NOT_VERIFIABLE}


def _rewrite_header(directory, edit):
    """Change a weights file's header metadata, then its digest in results.json and
    SHA256SUMS."""
    path = directory / WEIGHTS
    raw = path.read_bytes()
    tensors = st_load(raw)
    size = int.from_bytes(raw[:8], "little")
    meta = json.loads(json.loads(raw[8 : 8 + size])["__metadata__"]["charlm"])
    edit(meta)
    path.write_bytes(st_save(tensors, metadata={"charlm": json.dumps(meta, sort_keys=True)}))
    data = load(directory)
    next(t for t in data["trials"] if t["id"] == "relu-s0")["weights_sha256"] = sha256_file(path)
    save(directory, data)


def test_a_weights_header_with_a_reordered_vocabulary_fails(pub, capsys):
    def swap(meta):
        v = meta["vocabulary"]
        meta["vocabulary"] = v[1] + v[0] + v[2:]

    only_weights(pub)
    _rewrite_header(pub, swap)
    fails_with(pub, capsys, "vocabulary is the corpus's reordered (positions [0, 1])")


# ------------------------------------------------------------- 4: one writer per run


def test_a_second_run_into_a_locked_directory_refuses(tmp_path, data_path, capsys):
    config = write_sweep(tmp_path / "tiny.toml")
    out = tmp_path / "out"
    with runlock.locked(out):  # held by this process: as if another run were writing
        argv = ["run", "--config", str(config), "--out", str(out), "--data", str(data_path)]
        assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert f"is being written by another run (pid {os.getpid()} on " in err
    assert not (out / "trials").exists()


def test_a_lock_left_by_a_killed_run_is_stale_and_taken_over(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / runlock.LOCK_FILE).write_text("pid 999999 on elsewhere since 2026-01-01\n")
    seen = []
    with runlock.locked(out, seen.append):
        assert runlock.holder(out).startswith(f"pid {os.getpid()} on ")
    assert seen == [
        f"note: {out} was left by a run that ended without finishing "
        "(pid 999999 on elsewhere since 2026-01-01)"
    ]
    with pytest.raises(RuntimeError), runlock.locked(out):  # released on an exception too
        raise RuntimeError
    with runlock.locked(out):
        pass


# ------------------------------------------------------------ 5: bounded work


def test_a_header_declaring_a_huge_model_is_refused_before_allocating(pub, capsys):
    only_weights(pub)
    _rewrite_header(pub, lambda meta: meta["model_config"].update(n_embd=2**20, n_head=1))
    fails_with(pub, capsys, "header n_embd = 1048576 is larger than any tensor in it")
    assert charlm_main(["sample", "--checkpoint", str(pub / WEIGHTS), "--prompt", "A"]) == 2
    assert "larger than any tensor" in capsys.readouterr().err


def test_a_data_file_that_is_not_a_regular_file_is_refused(tmp_path, capsys):
    fifo = tmp_path / "corpus.txt"
    os.mkfifo(fifo)  # reading it would block forever
    config = write_sweep(tmp_path / "tiny.toml", extra='\n[data]\npath = "corpus.txt"\n')
    assert main(["run", "--config", str(config), "--out", str(tmp_path / "o"), "--dry-run"]) == 2
    assert "is not a regular file" in capsys.readouterr().err


def test_a_model_too_large_for_memory_is_refused_before_the_dry_run(tmp_path, capsys, data_path):
    config = write_sweep(tmp_path / "tiny.toml")
    text = config.read_text().replace("n_layer = 1", "n_layer = 1000000")
    config.write_text(text.replace("n_embd = 16", "n_embd = 4096"))
    argv = ["run", "--config", str(config), "--out", str(tmp_path / "o"), "--dry-run"]
    assert main([*argv, "--data", str(data_path)]) == 2
    err = capsys.readouterr().err
    assert "needs at least" in err and "lower model.n_layer or model.n_embd" in err


def test_sampling_options_are_validated(pub, capsys):
    argv = ["sample", "--checkpoint", str(pub / WEIGHTS), "--prompt", "A"]
    assert charlm_main([*argv, "--temperature", "nan"]) == 2
    assert "temperature must be a positive finite number" in capsys.readouterr().err
    assert charlm_main([*argv, "--seed", "-1"]) == 2
    assert "the seed must be from 0 to 2**64 - 1" in capsys.readouterr().err
    data = load(pub)
    group = sorted(data["samples"])[0]
    data["samples"][group]["tokens"] = 10**9
    save(pub, data)
    intact = {t["id"] for t in data["trials"]}
    rows = check_samples(pub, data, intact, lambda trial: [])
    row = next(r for r in rows if r.subject == group)
    assert row.verdict == FAIL and "tokens 1000000000 is not an integer from 0 to" in row.detail


def test_a_results_file_missing_a_field_fails_the_schema(pub, capsys):
    data = load(pub)
    del data["render"]["options"]
    save(pub, data)
    fails_with(pub, capsys, "render: 'options' is a required property")


# --------------------------------------------------------------- 6: smaller items


def test_what_sha256sum_accepts_passes_and_duplicates_fail(pub, capsys):
    lines = (pub / "SHA256SUMS").read_text().splitlines()
    digest, rel = lines[0].split("  ", 1)
    lines[0] = f"{digest.upper()} *{rel}"  # binary mode, upper-case hex
    (pub / "SHA256SUMS").write_text("\n".join(lines) + "\n")
    rows, _ = check_integrity(pub)
    assert [r.verdict for r in rows if r.check == "manifest"] == [PASS]
    (pub / "SHA256SUMS").write_text("\n".join([*lines, lines[0]]) + "\n")
    fails_with(pub, capsys, f"lists {rel!r} a second time")


def test_an_unknown_key_deep_in_results_fails(pub, capsys):
    data = load(pub)
    data["trials"][0]["curves"][0]["note"] = "trust me"
    save(pub, data)
    fails_with(pub, capsys, "'note' is not one of")


def test_a_log_that_is_not_utf8_is_named(pub):
    data = load(pub)
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0) as gz:
        with tarfile.open(fileobj=gz, mode="w") as tar:
            payload = b"\xff\xfe not json\n"
            info = tarfile.TarInfo("trials/relu-s0/log.jsonl")
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    (pub / "logs.tar.gz").write_bytes(buffer.getvalue())
    row = check_logs(pub, data)[0]
    assert row.verdict == FAIL
    assert row.detail.startswith("logs.tar.gz: trials/relu-s0/log.jsonl is not JSON lines")


def test_retrain_naming_no_trial_is_refused(pub, capsys):
    assert main(["verify", str(pub), "--retrain", ","]) == 2
    assert "--retrain ',' names no trial" in capsys.readouterr().err


def test_sigterm_while_a_run_finishes_prints_a_line(tiny_sweep, tmp_path, monkeypatch, capsys):
    config, out = tiny_sweep
    copy = tmp_path / "out"
    shutil.copytree(out, copy)
    (copy / "results.json").unlink()  # every trial is done: the run only finishes

    def terminated(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGTERM)  # delivered here, in the main thread

    monkeypatch.setattr(runner, "finalize", terminated)
    assert main(["run", "--config", str(config), "--out", str(copy)]) == 130
    assert "interrupted: finished trials are kept" in capsys.readouterr().err
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
