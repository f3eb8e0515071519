"""The replication verdict's rules on synthetic results with known outcomes."""

import json
from pathlib import Path

import pytest

from reproduce import stats
from reproduce.compare import CONTRADICTS, SUPPORTS, UNDECIDED, replication
from reproduce.pd import summarize_pairs

REFERENCE = json.loads(
    (
        Path(__file__).resolve().parents[1] / "artifacts/reference/charlm-full-20251208.json"
    ).read_text()
)


def fake_results(val_loss, gap, pd):
    """results.json-like data: per activation, per seed val loss and train-val gap; per
    activation the relative PD of its three seed pairs."""
    trials = []
    for act, losses in val_loss.items():
        for seed, (loss, g) in enumerate(zip(losses, gap[act], strict=True)):
            trials.append(
                {
                    "id": f"{act}-s{seed}",
                    "group": act,
                    "activation": act,
                    "seed": seed,
                    "grid": {},
                    "wall_time_s": 1.0,
                    "n_params": 1000,
                    "final": {
                        "step": 10,
                        "train_loss": 1.0,
                        "val_loss": loss,
                        "train_accuracy": 50.0 + g,
                        "val_accuracy": 50.0,
                    },
                }
            )
    pairs = {
        act: summarize_pairs(
            {
                f"s{i}-s{i + 1}": {
                    "absolute_pd": 0.1,
                    "relative_pd": v,
                    "top1_disagreement": 0.1,
                    "positions": 5,
                    "vocab_size": 3,
                }
                for i, v in enumerate(values)
            }
        )
        for act, values in pd.items()
    }
    return {
        "config": {
            "name": "fake",
            "model": {"n_layer": 1, "n_embd": 8},
            "train": {"max_iters": 10},
        },
        "trials": trials,
        "statistics": stats.analyze_sweep(trials),
        "prediction_difference": pairs,
    }


def verdicts(result):
    return {row["id"]: row["verdict"] for row in replication(result, REFERENCE)["claims"]}


def test_a_result_like_the_claims_supports_them():
    result = fake_results(
        val_loss={
            "swish": [1.497, 1.498, 1.496],
            "gelu": [1.554, 1.555, 1.553],
            "relu": [1.555, 1.556, 1.557],
        },
        gap={"swish": [8.9, 9.0, 8.8], "gelu": [12.7, 12.8, 12.6], "relu": [14.1, 14.2, 14.0]},
        pd={"swish": [0.80, 0.81, 0.82], "gelu": [0.90, 0.91, 0.92], "relu": [0.95, 0.96, 0.97]},
    )
    got = verdicts(result)
    assert got["swish-best-val-loss"] == SUPPORTS
    assert got["val-loss-anova-significant"] == SUPPORTS
    assert got["swish-least-overfitting"] == SUPPORTS and got["relu-most-overfitting"] == SUPPORTS
    assert got["swish-best-pd"] == SUPPORTS and got["relu-worst-pd"] == SUPPORTS
    # relu is (1.556 - 1.497) / 1.497 = 3.94% above swish: the claimed 3.9% is inside the CI
    assert got["relu-vs-swish-val-loss-pct"] == SUPPORTS


def test_an_opposite_result_contradicts():
    result = fake_results(
        val_loss={
            "swish": [1.60, 1.61, 1.59],
            "gelu": [1.50, 1.51, 1.49],
            "relu": [1.50, 1.49, 1.51],
        },
        gap={"swish": [15.0, 15.1, 14.9], "gelu": [9.0, 9.1, 8.9], "relu": [5.0, 5.1, 4.9]},
        pd={"swish": [0.95, 0.96, 0.97], "gelu": [0.90, 0.91, 0.92], "relu": [0.80, 0.81, 0.82]},
    )
    got = verdicts(result)
    assert got["swish-best-val-loss"] == CONTRADICTS
    assert got["relu-vs-swish-val-loss-pct"] == CONTRADICTS
    assert got["swish-least-overfitting"] == CONTRADICTS
    assert got["relu-most-overfitting"] == CONTRADICTS
    assert got["swish-best-pd"] == CONTRADICTS and got["relu-worst-pd"] == CONTRADICTS


def test_noise_cannot_decide():
    result = fake_results(
        val_loss={
            "swish": [1.50, 1.60, 1.55],
            "gelu": [1.52, 1.58, 1.56],
            "relu": [1.51, 1.59, 1.57],
        },
        gap={"swish": [9.0, 14.0, 11.0], "gelu": [10.0, 13.0, 12.0], "relu": [8.0, 15.0, 11.5]},
        pd={"swish": [0.80, 0.95, 0.90], "gelu": [0.85, 0.92, 0.88], "relu": [0.82, 0.97, 0.9]},
    )
    got = verdicts(result)
    # spread of 0.05 nats between seeds: 3 seeds cannot detect a 3.9% effect
    assert got["swish-best-val-loss"] == UNDECIDED
    assert got["val-loss-anova-significant"] == UNDECIDED
    assert got["swish-best-pd"] == UNDECIDED and got["relu-worst-pd"] == UNDECIDED
    assert got["swish-least-overfitting"] == UNDECIDED


def test_not_significant_with_enough_power_contradicts_significance():
    result = fake_results(
        val_loss={
            "swish": [1.5000, 1.5002, 1.4998],
            "gelu": [1.5001, 1.4999, 1.5000],
            "relu": [1.4999, 1.5001, 1.5002],
        },
        gap={a: [10.0, 10.1, 9.9] for a in ("swish", "gelu", "relu")},
        pd={a: [0.9, 0.91, 0.92] for a in ("swish", "gelu", "relu")},
    )
    rows = {r["id"]: r for r in replication(result, REFERENCE)["claims"]}
    assert rows["val-loss-anova-significant"]["verdict"] == CONTRADICTS
    assert "smaller than the claimed 3.9%" in rows["val-loss-anova-significant"]["detail"]


def test_missing_activation_cannot_decide():
    result = fake_results(
        val_loss={"gelu": [1.5, 1.51, 1.52], "relu": [1.6, 1.61, 1.62]},
        gap={"gelu": [1.0, 1.1, 1.2], "relu": [2.0, 2.1, 2.2]},
        pd={"gelu": [0.1, 0.2, 0.3], "relu": [0.4, 0.5, 0.6]},
    )
    got = verdicts(result)
    assert got["swish-best-val-loss"] == UNDECIDED
    assert got["swish-best-pd"] == UNDECIDED


@pytest.mark.parametrize("claim", ["swish-best-val-loss", "val-loss-anova-significant"])
def test_claims_carry_the_printed_text(claim):
    result = fake_results(
        val_loss={a: [1.5, 1.51, 1.52] for a in ("swish", "gelu", "relu")},
        gap={a: [1.0, 1.1, 1.2] for a in ("swish", "gelu", "relu")},
        pd={a: [0.1, 0.2, 0.3] for a in ("swish", "gelu", "relu")},
    )
    row = next(r for r in replication(result, REFERENCE)["claims"] if r["id"] == claim)
    assert row["claimed"] == next(c["printed"] for c in REFERENCE["claims"] if c["id"] == claim)


PARTIAL_CONFIG = {
    "name": "partial",
    "model": {"n_layer": 2, "n_embd": 256, "n_head": 4, "block_size": 256, "dropout": 0.2},
    "train": {"max_iters": 500, "batch_size": 64, "lr": 3e-4},
}


def partial_results(val_loss, val_acc, pd, n_params=1_678_848, protocol=None):
    """Partial-scale results; trials record ``protocol`` when given (none: a record from
    before the protocols, nanoGPT's recipe)."""
    result = fake_results(val_loss, {a: [1.0] * len(v) for a, v in val_loss.items()}, pd)
    for trial in result["trials"]:
        if protocol is not None:
            trial["protocol"] = protocol
        trial["final"]["val_accuracy"] = val_acc[trial["activation"]][trial["seed"]]
        trial["n_params"] = n_params
        trial["model"] = PARTIAL_CONFIG["model"]
    result["statistics"] = stats.analyze_sweep(result["trials"])
    result["config"] = PARTIAL_CONFIG
    return result


FIVE = ("relu", "gelu", "swish", "smelu-0.5", "smelu-1.0")


@pytest.mark.parametrize(
    ("path", "scale"),
    [
        ("configs/full.toml", "full"),
        ("configs/partial.toml", "partial"),
        ("configs/cpu.toml", None),
        ("configs/smoke.toml", None),
    ],
)
def test_each_shipped_config_is_at_the_scale_it_says(path, scale):
    from reproduce.compare import scale_of
    from reproduce.config import load_config

    config = load_config(Path(__file__).resolve().parents[1] / path).to_dict()
    assert scale_of(config, REFERENCE) == scale


def like_the_partial_claims(protocol=None) -> dict:
    base = {"relu": 2.20, "gelu": 2.25, "swish": 2.40, "smelu-0.5": 2.30, "smelu-1.0": 2.156}
    return partial_results(
        val_loss={a: [m - 0.001, m, m + 0.001] for a, m in base.items()},
        val_acc={a: ([28.1, 28.19, 28.28] if a == "relu" else [25.0, 25.1, 25.2]) for a in FIVE},
        pd={
            "relu": [0.640, 0.650, 0.655],
            "gelu": [0.66, 0.67, 0.68],
            "swish": [0.69, 0.70, 0.71],
            "smelu-0.5": [0.66, 0.67, 0.68],
            "smelu-1.0": [0.66, 0.67, 0.68],
        },
        protocol=protocol,
    )


def test_a_partial_sweep_like_the_claims_supports_the_partial_claims():
    verdict = replication(like_the_partial_claims("study"), REFERENCE)
    assert verdict["scale"]["name"] == "partial" and verdict["scale"]["like_for_like"]
    assert verdict["scale"]["procedure"] == "study"
    assert verdict["scale"]["note"].startswith(
        "Like for like: this sweep followed the study's own procedure (protocol study) at the "
        "report's partial scale"
    )
    assert "Its relative PD below is the package's, on identical inputs" in verdict["scale"]["note"]
    got = {row["id"]: row["verdict"] for row in verdict["claims"]}
    partial_ids = {c["id"] for c in REFERENCE["claims"] if c["id"].startswith("partial-")}
    assert partial_ids <= set(got)  # a verdict for every partial-* claim of the reference
    for claim_id in (
        "partial-best-activation",
        "partial-worst-activation",
        "partial-best-val-loss",
        "partial-best-val-acc",
        "partial-min-pd",
        "partial-max-pd",
        "partial-pd-spread-pct",
    ):
        assert got[claim_id] == SUPPORTS, claim_id
    # the report's own "3x shallower, 1.5x narrower" give 1,678,848 parameters, not 765K
    assert got["partial-n-params"] == CONTRADICTS and got["param-ratio"] == CONTRADICTS
    assert got["partial-trial-time"] == UNDECIDED
    for claim_id in ("sensitivity-reduction-pct", "pd-change-pct", "time-ratio-range"):
        assert got[claim_id] == UNDECIDED
        row = next(r for r in verdict["claims"] if r["id"] == claim_id)
        assert "needs our full-scale sweep (configs/full.toml)" in row["detail"]
    assert "swish-best-val-loss" not in got  # full-scale claims are not judged here


@pytest.mark.parametrize("protocol", [None, "nanogpt"])
def test_a_partial_sweep_under_nanogpts_recipe_is_not_like_for_like(protocol):
    verdict = replication(like_the_partial_claims(protocol), REFERENCE)
    study = replication(like_the_partial_claims("study"), REFERENCE)
    assert verdict["scale"]["name"] == "partial" and not verdict["scale"]["like_for_like"]
    assert verdict["scale"]["procedure"] == "nanogpt"  # a record without a protocol too
    note = verdict["scale"]["note"]
    assert note.startswith(
        "Not like for like: this sweep is at the report's partial scale but followed "
        "nanoGPT's recipe (protocol nanogpt:"
    )
    assert "not the study's own procedure (protocol study)" in note
    assert "its relative PD is Shamir et al.'s on identical inputs" in note
    assert verdict["claims"] == study["claims"]  # the same verdicts, judged at the scale


def test_a_partial_sweep_unlike_the_claims_contradicts_them():
    base = {"relu": 2.30, "gelu": 2.25, "swish": 2.10, "smelu-0.5": 2.35, "smelu-1.0": 2.50}
    result = partial_results(
        val_loss={a: [m - 0.001, m, m + 0.001] for a, m in base.items()},
        val_acc={a: ([20.0, 20.1, 20.2] if a == "relu" else [25.0, 25.1, 25.2]) for a in FIVE},
        pd={a: [0.80, 0.81, 0.82] for a in FIVE},
    )
    got = {row["id"]: row["verdict"] for row in replication(result, REFERENCE)["claims"]}
    assert got["partial-best-activation"] == CONTRADICTS  # swish is significantly lower
    assert got["partial-worst-activation"] == CONTRADICTS
    assert got["partial-best-val-loss"] == CONTRADICTS  # 2.1564 outside smelu-1.0's interval
    assert got["partial-best-val-acc"] == CONTRADICTS
    assert got["partial-min-pd"] == CONTRADICTS and got["partial-max-pd"] == CONTRADICTS


def test_a_sweep_at_neither_scale_says_its_verdicts_are_indicative():
    result = fake_results(
        val_loss={a: [1.5, 1.51, 1.52] for a in ("swish", "gelu", "relu")},
        gap={a: [1.0, 1.1, 1.2] for a in ("swish", "gelu", "relu")},
        pd={a: [0.1, 0.2, 0.3] for a in ("swish", "gelu", "relu")},
    )
    verdict = replication(result, REFERENCE)
    assert verdict["scale"] == {
        "name": None,
        "procedure": "nanogpt",
        "like_for_like": False,
        "note": verdict["scale"]["note"],
    }
    assert "No claim of the report is at this sweep's scale" in verdict["scale"]["note"]
    assert "indicative only" in verdict["scale"]["note"]
    assert not any(r["id"] in ("pd-change-pct", "partial-min-pd") for r in verdict["claims"])


def test_the_published_nanogpt_partial_sweep_says_its_verdicts_are_not_like_for_like():
    """artifacts/partial-cpu (nanoGPT's recipe, records without a protocol) as re-rendered:
    its report names the procedure and the other PD formula (verify re-renders it)."""
    root = Path(__file__).resolve().parents[1] / "artifacts" / "partial-cpu"
    report = " ".join((root / "report.md").read_text(encoding="utf-8").split())
    assert "Like for like" not in report
    assert (
        "Not like for like: this sweep is at the report's partial scale but followed "
        "nanoGPT's recipe (protocol nanogpt:" in report
    )
    assert "its relative PD is Shamir et al.'s on identical inputs" in report
