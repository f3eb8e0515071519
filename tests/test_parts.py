"""The parts of sweeps in progress (artifacts/parts/): records kept between sessions until
``merge`` assembles them. Each part must stay mergeable into its config as it is today (a
change to the config or to the record format would otherwise strand hours of training), and
what a part's README states must be what its records hold.
"""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import pytest

from reproduce import likeforlike, results, studytrials
from reproduce.cli import main

REPO = Path(__file__).resolve().parents[1]
PARTS = REPO / "artifacts" / "parts"
ALL_PARTS = sorted(p for p in PARTS.glob("*/*") if (p / "sweep.json").is_file())


def config_of(part: Path) -> Path:
    """The shipped config a part was trained from: ``configs/<its sweep's name>.toml``."""
    name = json.loads((part / "sweep.json").read_text(encoding="utf-8"))["config"]["name"]
    return REPO / "configs" / f"{name}.toml"


def test_there_are_parts_and_each_has_a_readme():
    assert [p.relative_to(PARTS).as_posix() for p in ALL_PARTS] == [
        "study-partial-cpu/zen4-2026-12-07"
    ]
    for part in ALL_PARTS:
        assert (part / "README.md").is_file(), part
        assert not list(part.rglob("*.safetensors")), f"{part}: weights or state kept"


@pytest.fixture(scope="module")
def merged(tmp_path_factory, data_path) -> dict[Path, tuple[Path, str]]:
    """Each part merged alone into its config: {part: (merged directory, what merge said)}."""
    done = {}
    for part in ALL_PARTS:
        out = tmp_path_factory.mktemp("merged") / part.name
        argv = ["merge", str(part), "--config", str(config_of(part)), "--out", str(out)]
        with contextlib.redirect_stdout(io.StringIO()) as said:
            assert main([*argv, "--data", str(data_path)]) == 0
        done[part] = (out, " ".join(said.getvalue().split()))
    return done


@pytest.mark.parametrize("part", ALL_PARTS, ids=lambda p: p.relative_to(PARTS).as_posix())
def test_a_part_merges_into_its_config(part, merged):
    out, said = merged[part]
    trials = sorted(p.name for p in (part / "trials").iterdir())
    assert f"merged {len(trials)} of 15 trial(s)" in said
    for trial in trials:  # byte for byte as the trainer wrote them
        for name in ("trial.json", "log.jsonl"):
            kept = (part / "trials" / trial / name).read_bytes()
            assert (out / "trials" / trial / name).read_bytes() == kept


def test_relu_s42_under_the_study_protocol_is_the_readmes():
    """The numbers the part's README and the project README print, from the record."""
    part = PARTS / "study-partial-cpu" / "zen4-2026-12-07"
    record = json.loads((part / "trials" / "relu-s42" / "trial.json").read_text("utf-8"))
    assert record["train"]["protocol"] == "study" and record["train"]["precision"] == "fp32"
    final = record["final"]
    assert (round(final["val_loss"], 4), round(final["train_loss"], 4)) == (1.9949, 1.8755)
    assert final["val_accuracy"] == 32.5
    assert round(record["wall_time_s"]) == 2059
    curve = [json.loads(line) for line in (part / "trials/relu-s42/log.jsonl").open()]
    assert [round(p["val_loss"], 4) for p in curve] == [
        4.2854,
        2.498,
        2.447,
        2.3801,
        2.1562,
        2.0048,
    ]
    assert all(p["computed"] for p in curve)
    # step 0 equals the study's trial 1 of results-partial/charlm-relu-20251207_224444.json
    assert abs(curve[0]["train_loss"] - 4.288941860198975) < 1e-4
    assert abs(curve[0]["val_loss"] - 4.285428524017334) < 1e-4
    readme = (part / "README.md").read_text(encoding="utf-8")
    for text in ("| final val loss | 1.9949 | 1.9957 | −0.0009 |", "2,059 s of wall clock"):
        assert text in readme


PD_OF_GROUPS = {  # group: (the study's PD of ours, its pairs, identical inputs, top-1, README)
    "relu": (
        0.7095,
        {"s42-s43": 0.7081, "s42-s44": 0.7087, "s43-s44": 0.7116},
        0.4677,
        0.201,
        "| mean | 0.7095 | 0.7097 | 0.4677 |",
    ),
    "gelu": (
        0.7195,
        {"s42-s43": 0.7301, "s42-s44": 0.7257, "s43-s44": 0.7025},
        0.4553,
        0.184,
        "| mean | 0.7195 | 0.7067 | 0.4553 |",
    ),
    "smelu-0.5": (
        0.7052,
        {"s42-s43": 0.7042, "s42-s44": 0.7080, "s43-s44": 0.7035},
        0.4489,
        0.187,
        "| mean | 0.7052 | 0.7013 | 0.4489 |",
    ),
    "swish": (
        0.6928,
        {"s42-s43": 0.6933, "s42-s44": 0.6969, "s43-s44": 0.6882},
        0.4518,
        0.184,
        "| mean | 0.6928 | 0.6929 | 0.4518 |",
    ),
    "smelu-1.0": (
        0.6986,
        {"s42-s43": 0.6989, "s42-s44": 0.7028, "s43-s44": 0.6941},
        0.4365,
        0.176,
        "| mean | 0.6986 | 0.6959 | 0.4365 |",
    ),
}


@pytest.mark.parametrize("group", sorted(PD_OF_GROUPS))
def test_a_group_s_pd_travels_with_the_part_that_trained_its_three_seeds(group, merged):
    """A group's PD needs the three seeds' weights, which no part keeps: it was computed where
    they were, and merge carries it, tied to their digests, as the README states it."""
    mean, pairs, identical, top1, line = PD_OF_GROUPS[group]
    part = PARTS / "study-partial-cpu" / "zen4-2026-12-07"
    out, _ = merged[part]
    record = json.loads((out / "merged.json").read_text(encoding="utf-8"))
    carried = record["groups"][group][0]
    digests = {
        str(seed): json.loads(
            (part / "trials" / f"{group}-s{seed}" / "trial.json").read_text("utf-8")
        )["weights_sha256"]
        for seed in (42, 43, 44)
    }
    assert carried["weights_sha256"] == digests
    study = carried["prediction_difference_study"]
    assert round(study["mean_relative_pd"], 4) == mean
    assert {k: round(v["relative_pd"], 4) for k, v in study["pairs"].items()} == pairs
    got = carried["prediction_difference"]["mean"]
    assert (round(got["relative_pd"], 4), round(got["top1_disagreement"], 3)) == (identical, top1)
    assert line in (part / "README.md").read_text(encoding="utf-8")


@pytest.mark.parametrize("activation", ["smelu-1.0", "gelu", "smelu-0.5", "swish"])
@pytest.mark.parametrize("seed", [42, 43, 44])
def test_trials_are_the_readmes(activation, seed):
    part = PARTS / "study-partial-cpu" / "zen4-2026-12-07"
    trial = f"{activation}-s{seed}"
    record = json.loads((part / f"trials/{trial}/trial.json").read_text("utf-8"))
    assert record["activation"] == activation and record["train"]["protocol"] == "study"
    final, step0 = record["final"], record["curves"][0]
    readme = (part / "README.md").read_text(encoding="utf-8")
    start = readme.index(f"| | {trial} |")
    table = readme[start : readme.index("\n\n", start)]
    assert f"| final val loss | {final['val_loss']:.4f} |" in table
    assert f"| final train loss | {final['train_loss']:.4f} |" in table
    assert f"| final val accuracy | {final['val_accuracy']:.2f}% |" in table
    assert f"| {step0['train_loss']:.6f} / {step0['val_loss']:.6f} |" in table


def test_the_readme_s_three_columns_are_the_parts():
    """README.md's table of the three columns (the study's trials, ours under its procedure,
    ours under nanoGPT's recipe) is what `reference trials` computes from the part today."""
    raw, prov = likeforlike.load_study(REPO / "artifacts/reference/study-raw.json")
    ours = results.load_results(PARTS / "study-partial-cpu" / "zen4-2026-12-07")
    nanogpt = results.load_results(REPO / "artifacts/partial-cpu")
    config = studytrials.study_config(ours, prov)
    rows = studytrials.three_columns(raw, prov, config["name"], ours, nanogpt)
    text = studytrials.three_columns_markdown(rows, config)
    table = [line for line in text.splitlines() if line.startswith("| ")]
    assert len(table) == 6 and table[1].startswith("| gelu | 2.0637 ± 0.0081 | 2.0657")
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert "\n".join(table[1:]) in readme
