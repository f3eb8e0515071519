"""The study protocol (charlm.study): initialisation as the study's, its random stream, and
bit-exact reruns and resumes on a tiny config. Step-0 parity with the published runs is in
tests/test_parity.py."""

import importlib.util
import re
import sys
from pathlib import Path

import pytest
import torch

from charlm import checkpoint
from charlm.io import sha256_file
from charlm.model import ModelConfig
from charlm.study.model import StudyCharLM
from charlm.study.stream import StudyStream, seeded_build
from charlm.study.train import (
    computed_evals,
    eval_steps,
    initial_weights_sha256,
    replay_stream,
)
from charlm.train import TrainConfig, TrainingInterrupted, TrialSpec, train_trial

STUDY_CODE = Path(__file__).resolve().parents[1] / ".." / "shared" / "original-study" / "code"
LITE = dict(n_layer=2, n_head=4, n_embd=128, block_size=128, dropout=0.2)
SITES = ("attention", "residual")
# initial weights of the lite scale (config_gpu_lite.py), ReLU, seed 42, as built by
# StudyCharLM after torch.manual_seed(42) (initial_weights_sha256)
LITE_RELU_42_INIT = "9ff4ae56185748e6def47106e51ba2b93e2b87510fd7fdce2447686be68381f9"


def study_model_config(activation="relu", **sizes):
    return ModelConfig(
        **{**LITE, **sizes}, vocab_size=65, activation=activation, dropout_sites=SITES
    )


def tiny_study_spec(seed=42, max_iters=12, **train):
    model = study_model_config(n_layer=1, n_head=2, n_embd=16, block_size=16)
    settings = dict(
        protocol="study",
        max_iters=max_iters,
        batch_size=4,
        lr=3e-4,
        eval_interval=5,
        eval_iters=2,
        warmup_iters=0,
        grad_clip=0.0,
        beta2=0.999,
        weight_decay=0.01,
        threads=1,
        device="cpu",
        log_interval=1,
    )
    return TrialSpec(model, TrainConfig(**{**settings, **train}), seed)


def weights_digest(trial_dir):
    return sha256_file(Path(trial_dir) / "weights.safetensors")


def test_initial_weights_digest_is_pinned():
    model, _ = seeded_build(42, lambda: StudyCharLM(study_model_config()))
    assert model.num_parameters() == 429_824
    assert initial_weights_sha256(model) == LITE_RELU_42_INIT


def test_full_scale_parameter_count_is_the_study_log():
    config = study_model_config(n_layer=6, n_head=6, n_embd=384, block_size=256)
    with torch.device("meta"):
        model = StudyCharLM(config)
    assert model.num_parameters() == 10_795_776  # charlm_full_run.log: "10,795,776 parameters"


@pytest.mark.skipif(not STUDY_CODE.is_dir(), reason="../shared/original-study is not beside")
@pytest.mark.parametrize("activation", ["relu", "gelu", "swish", "smelu-0.5"])
def test_initial_weights_and_stream_equal_the_study_code(activation, monkeypatch):
    """Import the study's own model.py (read-only, from ../shared) and build both after the same
    seed: every tensor equal, same names in the same order, the generator left in the same
    state, the same logits and gradients."""
    monkeypatch.syspath_prepend(str(STUDY_CODE))
    for name in ("model", "activations"):
        sys.modules.pop(name, None)
    spec = importlib.util.find_spec("model")
    assert spec.origin.startswith(str(STUDY_CODE.resolve())) or "original-study" in spec.origin
    import activations as study_activations
    import model as study_model

    study_name = {"smelu-0.5": "smelu_05"}.get(activation, activation)
    torch.manual_seed(7)
    theirs = study_model.CharLM(65, 32, 2, 2, 24, study_activations.get_activation(study_name))
    after = torch.get_rng_state()
    config = study_model_config(activation, n_layer=2, n_head=2, n_embd=32, block_size=24)
    ours, stream = seeded_build(7, lambda: StudyCharLM(config))
    expected = {k: v for k, v in theirs.state_dict().items() if not k.endswith(".mask")}
    assert list(ours.state_dict()) == list(expected)
    for name, tensor in expected.items():
        assert torch.equal(ours.state_dict()[name], tensor), name
    assert torch.equal(stream.get_state(), after)
    x = torch.randint(65, (3, 24), generator=torch.Generator().manual_seed(0))
    theirs.eval(), ours.eval()
    assert torch.equal(ours(x), theirs(x)[0])
    # without dropout (eval mode on both) the gradients are the same bits too
    _, a = theirs(x, x)
    _, b = ours(x, x)
    a.backward(), b.backward()
    for (name, p), q in zip(ours.named_parameters(), theirs.parameters(), strict=True):
        assert torch.equal(p.grad, q.grad), name
    for name in ("model", "activations"):
        sys.modules.pop(name, None)


def test_batches_are_one_randint_per_batch_from_the_stream(corpus):
    generator = torch.Generator().manual_seed(3)
    stream = StudyStream(generator, corpus, 8, "cpu")
    x, y = stream.batch("val", 5)
    starts = torch.randint(len(corpus.val) - 8, (5,), generator=torch.Generator().manual_seed(3))
    assert torch.equal(x[2], corpus.val[starts[2] : starts[2] + 8])
    assert torch.equal(y[2], corpus.val[starts[2] + 1 : starts[2] + 9])
    # single windows one draw each: the same numbers as one draw of all of them
    a = StudyStream(torch.Generator().manual_seed(4), corpus, 8, "cpu").single_starts("val", 9)
    b = torch.randint(len(corpus.val) - 8, (9,), generator=torch.Generator().manual_seed(4))
    assert torch.equal(a, b)


def test_evaluation_schedule_is_the_studys():
    cfg = tiny_study_spec(max_iters=200, eval_interval=50).train
    assert eval_steps(cfg) == [0, 50, 100, 150, 199]
    assert computed_evals(cfg) == {0, 50, 100, 150, 199, 200}
    assert computed_evals(TrainConfig(**{**cfg.__dict__, "study_evals": "final"})) == {200}


def test_study_protocol_refuses_the_nanogpt_schedule():
    with pytest.raises(ValueError, match="warmup_iters = 100: the study protocol"):
        TrainConfig(protocol="study", grad_clip=0.0)
    with pytest.raises(ValueError, match="dropout_sites"):
        StudyCharLM(ModelConfig(n_layer=1, n_head=1, n_embd=8, block_size=8))


@pytest.fixture(scope="module")
def study_run(tmp_path_factory, corpus):
    out = tmp_path_factory.mktemp("study") / "relu-s42"
    lines = []
    record = train_trial(tiny_study_spec(), corpus, out, progress=False, log=lines.append)
    record_lines[out] = lines
    return out, record


record_lines: dict = {}  # trial directory -> the plain progress lines its training printed


def test_rerun_is_bit_identical_and_record_names_the_protocol(study_run, corpus, tmp_path):
    out, record = study_run
    again = train_trial(
        tiny_study_spec(), corpus, tmp_path / "again", progress=False, log=lambda _: None
    )
    assert weights_digest(tmp_path / "again") == weights_digest(out) == record["weights_sha256"]
    assert again["final"] == record["final"]
    assert record["protocol"] == "study" and record["train"]["protocol"] == "study"
    assert [p["step"] for p in record["curves"]] == [0, 5, 10, 11]
    assert record["study"]["evaluations_computed"] == [0, 5, 10, 11, 12]
    assert record["train"]["optimizer_impl_used"] == "for-loop"
    # plain progress: one line per evaluation, the time left once a step has been timed
    lines = record_lines[out]
    assert [line.split()[1] for line in lines] == ["0/12", "5/12", "10/12", "11/12"]
    assert "train " in lines[0] and "left" not in lines[0]
    assert all(re.search(r", ~\d+s left$", line) for line in lines[1:])
    model, chars = checkpoint.load_weights(out / "weights.safetensors")
    assert isinstance(model, StudyCharLM) and chars == corpus.chars


def test_resume_after_a_stop_is_bit_identical(study_run, corpus, tmp_path):
    out, record = study_run
    resumed = tmp_path / "resumed"
    for stop_at in (3, 7):  # one stop between evaluations, one after the step-5 evaluation
        with pytest.raises(TrainingInterrupted):
            train_trial(
                tiny_study_spec(),
                corpus,
                resumed,
                progress=False,
                log=lambda _: None,
                stop_check=lambda step, s=stop_at: step == s,
            )
    final = train_trial(tiny_study_spec(), corpus, resumed, progress=False, log=lambda _: None)
    assert weights_digest(resumed) == weights_digest(out)
    assert final["resumed_at_steps"] == [3, 7]
    assert final["final"] == record["final"] and final["curves"][1:] != []
    assert [p["val_loss"] for p in final["curves"]] == [p["val_loss"] for p in record["curves"]]


def test_skipped_evaluations_keep_the_stream(study_run, corpus, tmp_path):
    """study_evals = "final" draws every evaluation batch without its forward passes: the same
    training batches, so the same weights and final metrics."""
    out, record = study_run
    spec = tiny_study_spec(study_evals="final")
    lines = []
    lean = train_trial(spec, corpus, tmp_path / "lean", progress=False, log=lines.append)
    assert len(lines) == 4 and all("(evaluation not computed)" in line for line in lines)
    assert lines[1].endswith("s left")  # estimated before any evaluation was timed
    assert weights_digest(tmp_path / "lean") == weights_digest(out)
    assert lean["final"] == record["final"]
    assert [p["computed"] for p in lean["curves"]] == [False] * 4
    assert "val_loss" not in lean["curves"][0]
    assert lean["best"] == {"step": 12, "val_loss": record["final"]["val_loss"]}
    assert lean["study"]["evaluations_computed"] == [12]


def test_replay_reaches_the_trials_final_stream_state(study_run, corpus):
    import hashlib

    _, record = study_run
    state = replay_stream(tiny_study_spec(), corpus).get_state()
    assert (
        hashlib.sha256(state.numpy().tobytes()).hexdigest()
        == (record["study"]["stream_end_sha256"])
    )


def test_final_evaluation_is_reproduced_from_the_weights(study_run, corpus):
    from charlm.study.train import reevaluate_final

    out, record = study_run
    model, _ = checkpoint.load_weights(out / "weights.safetensors")
    again = reevaluate_final(tiny_study_spec(), corpus, model, n_batches=1)
    recorded = record["study"]["final_batch_losses"]
    assert again["batch_losses"]["train"] == recorded["train"][:1]
    assert again["batch_losses"]["val"] == recorded["val"][:1]
    assert again["val_accuracy"] == record["final"]["val_accuracy"]
    assert again["train_accuracy"] == record["final"]["train_accuracy"]


def test_dry_run_estimate_counts_the_study_evaluations(corpus):
    """run --dry-run's rule under the study protocol: the computed evaluations only (skipped
    ones cost nothing), each 2 x eval_iters batches, timed at the trial's size here."""
    from reproduce import estimate, protocols

    spec = tiny_study_spec(max_iters=200, eval_interval=50)
    assert protocols.evaluations_left(spec.train) == 6  # 0, 50, 100, 150, 199 and the final
    assert protocols.evaluations_left(spec.train, start=100) == 3  # 150, 199, final
    lean = tiny_study_spec(max_iters=200, eval_interval=50, study_evals="final").train
    assert protocols.evaluations_left(lean) == 1
    timings = estimate.measure(spec, corpus, max_steps=2, budget_s=0.1)["relu"]
    assert "per evaluation of 16 windows" in timings.basis  # 2 x 2 batches of 4
    expected = 200 * timings.step_s + 6 * timings.eval_s + timings.setup_s
    assert estimate.trial_seconds(spec.train, timings) == pytest.approx(expected)


TINY_STUDY_SWEEP = """
name = "tiny-study"
[model]
n_layer = 1
n_head = 2
n_embd = 16
block_size = 16
dropout = 0.2
dropout_sites = ["attention", "residual"]
[train]
protocol = "study"
max_iters = 8
batch_size = 4
eval_interval = 4
eval_iters = 2
warmup_iters = 0
beta2 = 0.999
weight_decay = 0.01
grad_clip = 0.0
precision = "fp32"
threads = 1
device = "cpu"
[sweep]
activations = ["relu"]
seeds = [42, 43, 44]
[report]
sample_tokens = 20
"""


def test_a_study_sweep_reports_both_pds_and_verifies(tmp_path, data_path):
    import json

    from reproduce.cli import main

    config = tmp_path / "tiny-study.toml"
    config.write_text(TINY_STUDY_SWEEP, encoding="utf-8")
    out = tmp_path / "run"
    assert main(["run", "--config", str(config), "--out", str(out), "--data", str(data_path)]) == 0
    data = json.loads((out / "results.json").read_text())
    study_pd = data["prediction_difference_study"]["relu"]
    assert sorted(study_pd["pairs"]) == ["s42-s43", "s42-s44", "s43-s44"]
    assert all(p["windows"] == 1000 for p in study_pd["pairs"].values())
    assert "relu" in data["prediction_difference"]  # PD on identical inputs, beside it
    report = (out / "report.md").read_text()
    assert "Protocol: **study**" in report and "The study's own PD" in report
    assert main(["verify", str(out), "--data", str(data_path)]) == 0
