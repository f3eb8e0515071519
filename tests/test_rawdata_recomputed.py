"""What the reference holds beyond the study's files: step-0 losses recomputed under the study
protocol (step0-recomputed.json) and the study's PD measured against itself (self-pd.json).

Each stored file is schema-checked and used by provenance.json and audit.md; one cheap entry of
each is recomputed here on the real tiny Shakespeare and must equal what is stored (to 1e-5
nats: another CPU rounds the forward passes differently).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from charlm import checkpoint
from reproduce import results
from reproduce.rawdata import command, importer, provenance, selfpd, step0

REPO = Path(__file__).resolve().parents[1]
REFERENCE = REPO / "artifacts" / "reference"


@pytest.fixture(scope="module")
def raw() -> dict:
    return importer.load(REFERENCE / command.RAW)


@pytest.fixture(scope="module")
def store() -> step0.Store:
    return step0.Store(REFERENCE / step0.FILE)


def test_what_provenance_can_use_cheapest_first(raw):
    items = step0.needed(raw)
    configs = [i["config"] for i in items]
    assert len(items) == 42
    assert {c: configs.count(c) for c in set(configs)} == {
        "ConfigCPU": 9,  # the three lite-like runs x 3 seeds, under each of their two
        "ConfigGPULite": 9,  # candidates
        "Config": 15,  # five activations of config.py x 3 seeds
        "ConfigFullGPU": 9,  # three activations x 3 seeds (result files and summary agree)
    }
    assert configs[:9] == ["ConfigCPU"] * 9 and configs[-9:] == ["ConfigFullGPU"] * 9
    relu = next(i for i in items if i["config"] == "ConfigFullGPU" and i["activation"] == "relu")
    assert relu["runs"] == ["full/all_experiments_summary/relu", "full/charlm-relu-20251208_151223"]


def test_stored_evaluations_decide_the_lite_runs(store):
    prov = json.loads((REFERENCE / command.PROVENANCE).read_text(encoding="utf-8"))
    runs = {r["run"]: r for f in prov["files"] for r in f["runs"]}
    for stamp in ("220622", "220724", "220836"):
        entry = next(r for k, r in runs.items() if k.endswith(stamp))
        assert entry["status"] == "identified" and entry["config"]["name"] == "ConfigGPULite"
        rows = entry["evidence"]["step0_recomputed"]
        assert [r["agrees"] for r in rows["ConfigGPULite"]] == [True] * 3
        assert [r["agrees"] for r in rows["ConfigCPU"]] == [False] * 3
    assert store.lookup(
        {
            "n_layer": 2,
            "n_embd": 128,
            "n_head": 4,
            "block_size": 128,
            "batch_size": 64,
            "eval_iters": 200,
        },
        "relu",
        42,
    )["train_loss"] == pytest.approx(4.150571, abs=1e-4)  # the published lite value


def test_a_stored_evaluation_is_recomputed(store, raw, corpus):
    """ConfigCPU, ReLU, seed 42: 100 forward batches of 32 x 128 (seconds)."""
    item = next(
        i
        for i in step0.needed(raw)
        if i["config"] == "ConfigCPU" and i["activation"] == "relu" and i["seed"] == 42
    )
    stored = store.lookup(item, "relu", 42)
    got = step0.compute(item, corpus)
    assert got["init_sha256"] == stored["init_sha256"]
    assert abs(got["train_loss"] - stored["train_loss"]) <= 1e-5
    assert abs(got["val_loss"] - stored["val_loss"]) <= 1e-5


def test_store_refuses_a_damaged_file_and_writes_atomically(tmp_path, store):
    path = tmp_path / step0.FILE
    fresh = step0.Store(path)
    entry = next(iter(store.entries.values()))
    fresh.add(entry)
    assert step0.Store(path).lookup(entry, entry["activation"], entry["seed"]) == entry
    assert [p.name for p in tmp_path.iterdir()] == [step0.FILE]
    path.write_text('{"format": "x"}')
    with pytest.raises(ValueError, match=f"{step0.FILE}: .*delete it to recompute"):
        step0.Store(path)


def test_parity_output_is_stored_with_its_source(raw):
    doc = {
        "scale": "full",
        "platform": "somewhere",
        "date": "2026-12-07",
        "results": [
            {
                "activation": "relu",
                "seed": 43,
                "train_loss": 4.1,
                "val_loss": 4.2,
                "init_sha256": "a" * 64,
                "seconds": 2000.04,
            },
        ],
    }
    (entry,) = step0.from_parity(doc, "parity-full.json", step0.needed(raw))
    assert (entry["config"], entry["activation"], entry["seed"]) == ("ConfigFullGPU", "relu", 43)
    assert entry["source"] == "python -m reproduce parity --out parity-full.json"
    assert entry["seconds"] == 2000.0
    with pytest.raises(ValueError, match="not an output of python -m reproduce parity"):
        step0.from_parity({"results": []}, "x.json", [])


def test_step0_with_parity_stores_and_computes_nothing(tmp_path, capsys):
    """``reference step0 --parity FILE`` stores FILE's evaluations and starts none of the
    others (hours at the full scale), saying how to compute them."""
    from reproduce.cli import main

    out = tmp_path / "reference"
    out.mkdir()
    (out / command.RAW).write_bytes((REFERENCE / command.RAW).read_bytes())
    parity = tmp_path / "parity-full.json"
    result = {"activation": "relu", "train_loss": 4.1, "val_loss": 4.2, "init_sha256": "a" * 64}
    parity.write_text(
        json.dumps(
            {
                "scale": "full",
                "platform": "somewhere",
                "date": "2026-12-07",
                "results": [{**result, "seed": 43, "seconds": 1.0}],
            }
        ),
        encoding="utf-8",
    )
    assert main(["reference", "step0", "--out", str(out), "--parity", str(parity)]) == 0
    said = capsys.readouterr().out
    assert "stored ConfigFullGPU relu seed 43 from" in said
    assert "with --parity nothing is computed: run the command without it" in " ".join(said.split())
    stored = json.loads((out / step0.FILE).read_text(encoding="utf-8"))
    assert [(e["config"], e["seed"], e["train_loss"]) for e in stored["evaluations"]] == [
        ("ConfigFullGPU", 43, 4.1)
    ]


def test_a_trials_step0_is_the_recomputed_evaluation_bit_for_bit(raw, store):
    """A study-protocol trial's first evaluation is :func:`step0.compute`'s computation: where
    both were made on one platform (Config GELU, seeds 42-44, on the Zen 4 kind), the losses
    and the initial weights' digest are the same floats, so --trials may stand for it."""
    doc = results.load_results(REPO / "artifacts" / "study-partial-cpu")
    from_trials = step0.from_trials(doc, "artifacts/study-partial-cpu", step0.needed(raw))
    assert len(from_trials) == 15 and {e["config"] for e in from_trials} == {"Config"}
    both = [
        (e, store.lookup(e, e["activation"], e["seed"]))
        for e in from_trials
        if (store.lookup(e, e["activation"], e["seed"]) or {}).get("source")
        == "python -m reproduce reference step0"
    ]
    assert [(e["activation"], e["seed"]) for e, _ in both] == [("gelu", s) for s in (42, 43, 44)]
    for entry, computed in both:
        assert entry["platform"] == computed["platform"]
        for key in ("train_loss", "val_loss", "init_sha256"):
            assert entry[key] == computed[key]
    assert from_trials[0]["source"] == (
        "python -m reproduce reference step0 --trials artifacts/study-partial-cpu "
        "(trial gelu-s42, step 0)"
    )


def test_trials_of_another_procedure_stand_for_nothing(raw):
    """nanoGPT's recipe in bf16 (artifacts/partial-cpu) draws other numbers at step 0."""
    doc = results.load_results(REPO / "artifacts" / "partial-cpu")
    assert len(doc["trials"]) == 15
    assert step0.from_trials(doc, "artifacts/partial-cpu", step0.needed(raw)) == []
    study = results.load_results(REPO / "artifacts" / "study-partial-cpu")
    bf16 = json.loads(json.dumps(study["trials"][0]))
    bf16["train"]["precision_used"] = "bf16"
    assert step0.from_trials({"trials": [bf16]}, "x", step0.needed(raw)) == []


def _reference_copy(tmp_path: Path, with_store: bool) -> Path:
    out = tmp_path / "reference"
    out.mkdir()
    names = (command.RAW, step0.FILE) if with_store else (command.RAW,)
    for name in names:
        (out / name).write_bytes((REFERENCE / name).read_bytes())
    return out


def test_step0_with_trials_stores_and_computes_nothing(tmp_path, capsys):
    from reproduce.cli import main

    out = _reference_copy(tmp_path, with_store=False)
    given = str(REPO / "artifacts" / "study-partial-cpu") + "/"  # absolute, trailing slash
    args = ["reference", "step0", "--out", str(out), "--trials", given]
    assert main([*args, "--dry-run"]) == 0
    assert not (out / step0.FILE).exists()
    said = " ".join(capsys.readouterr().out.split())
    assert said.count("would store Config ") == 15
    assert "(15 to be stored by this command), 27 to compute" in said
    assert main(args) == 0
    said = " ".join(capsys.readouterr().out.split())
    assert said.count("stored Config ") == 15 and "(15 just stored by this command)" in said
    assert (
        "artifacts/study-partial-cpu's trials: 15 trials, 15 of them the study's step-0 "
        "computation (study protocol, fp32, CPU); 15 new, 0 already stored and agreeing"
    ) in said
    assert "with --trials nothing is computed" in said
    stored = json.loads((out / step0.FILE).read_text(encoding="utf-8"))["evaluations"]
    assert {e["source"].split(" (trial")[0] for e in stored} == {
        "python -m reproduce reference step0 --trials artifacts/study-partial-cpu"
    }
    nanogpt = str(REPO / "artifacts" / "partial-cpu")
    assert main(["reference", "step0", "--out", str(out), "--trials", nanogpt]) == 0
    said = " ".join(capsys.readouterr().out.split())
    assert "15 trials, 0 of them the study's step-0 computation" in said and "0 new" in said


@pytest.mark.parametrize(
    ("given", "says"),
    [
        ("missing", "no results.json there; give a run or published directory"),
        ("results.json", "a file; give the directory that holds results.json"),
    ],
)
def test_step0_trials_names_a_wrong_path_and_the_fix(tmp_path, capsys, given, says):
    from reproduce.cli import main

    out = _reference_copy(tmp_path, with_store=True)
    before = (out / step0.FILE).read_bytes()
    path = (
        REPO / "artifacts" / "study-partial-cpu" / "results.json"
        if given != "missing"
        else (tmp_path / "missing")
    )
    assert main(["reference", "step0", "--out", str(out), "--trials", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--trials" in err and says in err
    assert (out / step0.FILE).read_bytes() == before


def test_step0_refuses_a_trial_that_disagrees_with_the_store(tmp_path, capsys):
    """A trial whose step 0 is not the stored evaluation (here: GELU seed 42's train loss moved
    by 0.5 nats) stops the command before anything is stored."""
    from reproduce.cli import main

    out = _reference_copy(tmp_path, with_store=True)
    store_before = (out / step0.FILE).read_bytes()
    doc = json.loads((REPO / "artifacts" / "study-partial-cpu" / "results.json").read_bytes())
    trial = next(t for t in doc["trials"] if t["id"] == "gelu-s42")
    trial["curves"][0]["train_loss"] += 0.5
    moved = tmp_path / "moved"
    moved.mkdir()
    (moved / "results.json").write_text(json.dumps(doc), encoding="utf-8")
    assert main(["reference", "step0", "--out", str(out), "--trials", str(moved)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "Config gelu seed 42: losses differ by 5.0e-01 nats (more than 0.0001)" in err
    assert "(python -m reproduce reference step0); nothing stored" in err
    assert (out / step0.FILE).read_bytes() == store_before


def test_provenance_without_the_store_says_why():
    raw = importer.load(REFERENCE / command.RAW)
    doc = provenance.build(raw, "study-raw.json", "0" * 64)
    reasons = {r["evidence"]["step0_recomputed_reason"] for f in doc["files"] for r in f["runs"]}
    assert reasons == {
        "not recomputed: 3 of 3 step-0 evaluations are not in the store "
        "(python -m reproduce reference step0)",
        "not recomputed: 6 of 6 step-0 evaluations are not in the store "
        "(python -m reproduce reference step0)",
        "no candidate left to recompute",
    }
    assert doc["summary"]["step0_recomputed"] == "for 0 of 14 runs with candidates"


# --- the study's PD against itself ---------------------------------------------------------


@pytest.fixture(scope="module")
def self_pd() -> dict:
    doc = json.loads((REFERENCE / selfpd.FILE).read_text(encoding="utf-8"))
    results.validate(doc, selfpd.SCHEMA)
    return doc


def test_self_pd_is_as_large_as_two_seeds(self_pd):
    s = self_pd["summary"]
    assert len(self_pd["trials"]) == 15 and len(self_pd["pairs"]) == 15
    # one model against itself scores within 0.1 of two different seeds on their own
    # windows, and several times what the seed pairs give on identical windows
    assert abs(s["self_pd_mean"] - s["pair_own_windows_mean"]) < 0.1
    assert s["self_pd_min"] > 3 * s["pair_same_windows_mean"]


def test_a_stored_self_pd_is_recomputed(self_pd, corpus):
    trial = self_pd["trials"][0]
    model, _ = checkpoint.load_weights(
        REPO / "artifacts" / "cpu" / "trials" / trial["trial"] / "weights.safetensors"
    )
    model.eval()
    torch.set_num_threads(2)
    got = selfpd.self_pd(model, corpus, seed=0)
    assert got["top1_differences"] == trial["self_pd"][0]["top1_differences"]
    assert abs(got["relative_pd"] - trial["self_pd"][0]["relative_pd"]) <= 1e-6


def test_identical_windows_give_a_model_zero_against_itself(corpus):
    model, _ = checkpoint.load_weights(
        REPO / "artifacts" / "cpu" / "trials" / "relu-s42" / "weights.safetensors"
    )
    model.eval()
    got = selfpd.pair_pd(model, model, corpus, n=50)
    assert got["same_windows"] == 0.0 and got["same_windows_top1_differences"] == 0
    assert got["own_windows"] > 0.5


def test_the_audit_reads_it_as_a_verdict():
    found, _ = command.load_findings(REFERENCE / command.RAW)
    (verdict,) = [v for v in found["verdicts"] if v["claim"] == "swish-best-pd"]
    assert verdict["verdict"] == "cannot decide"
    assert "not between models" in verdict["evidence"]
