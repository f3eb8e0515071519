"""What the report says beyond its numbers, on a tiny real sweep (config order relu, gelu):
one activation order in every section, Tukey pairs oriented in that order, the precision the
trials trained in, the settings as a table marking what the published study leaves unstated,
CUDA rows on a CPU, wall-clock times and the samples' shared seed."""

import copy
import re

import pytest

from reproduce import report, report_context, results


@pytest.fixture(scope="module")
def data(tiny_sweep):
    return results.load_results(tiny_sweep[1])


@pytest.fixture(scope="module")
def md(tiny_sweep):
    return (tiny_sweep[1] / "report.md").read_text(encoding="utf-8")


def table(text: str, header: str) -> list[list[str]]:
    """The rows (cells stripped) of the Markdown table whose header line starts with
    ``header``, separator row left out."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header))
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip().strip("|").split("|")])
    return rows


def section(text: str, title: str) -> str:
    """The text of the ``## title`` section, up to the next ``## `` heading."""
    start = text.index(f"\n## {title}")
    end = text.find("\n## ", start + 1)
    return text[start : end if end > 0 else len(text)]


def positions(text: str, needles: list[str]) -> list[int]:
    found = [text.index(n) for n in needles]
    assert all(i >= 0 for i in found)
    return found


def test_every_section_lists_activations_in_config_order(md, data):
    assert data["config"]["sweep"]["activations"] == ["relu", "gelu"]
    summary = table(md, "| Rank | Activation |")
    assert [row[1] for row in summary] == ["relu", "gelu"]
    ranking = data["statistics"]["cells"]["all"]["val_loss_comparison"]["ranking"]
    assert [int(row[0]) for row in summary] == [ranking.index(a) + 1 for a in ("relu", "gelu")]
    assert [row[0] for row in table(md, "| Activation | Train accuracy |")] == ["relu", "gelu"]
    assert [row[0] for row in table(md, "| Group | Pairs |")] == ["relu", "gelu"]
    per_activation = section(md, "Per-activation results")
    assert sorted(positions(per_activation, ["### relu", "### gelu"])) == positions(
        per_activation, ["### relu", "### gelu"]
    )
    for title, needles in (
        ("Training dynamics", ["**relu**", "**gelu**"]),
        ("Samples", ["**relu** (seed", "**gelu** (seed"]),
        ("Appendix: raw data", ["relu-s0:", "relu-s1:", "gelu-s0:", "gelu-s1:"]),
    ):
        found = positions(section(md, title), needles)
        assert found == sorted(found), title
    trials = table(md, "| Trial | Seed |")
    assert [row[0] for row in trials] == ["relu-s0", "relu-s1"]


def test_tukey_pairs_are_oriented_in_config_order(md, data):
    (stored,) = data["statistics"]["cells"]["all"]["val_loss_comparison"]["pairs"]
    assert (stored["a"], stored["b"]) == ("gelu", "relu")  # results.json: by name
    ((a, b, diff, ci, p, significant, d),) = table(md, "| a | b | Difference |")
    assert (a, b) == ("relu", "gelu")
    assert diff == f"{-stored['mean_diff']:.4f}"
    assert ci == f"[{-stored['tukey_ci_high']:.4f}, {-stored['tukey_ci_low']:.4f}]"
    assert d == f"{-stored['cohens_d']:.2f}"
    assert p == report_context.format_p(stored["tukey_p"])
    assert significant == ("yes" if stored["tukey_significant"] else "no")


def test_environment_says_not_used_for_cuda_on_a_cpu(md, data):
    assert all(t["environment"]["cuda"] is None for t in data["trials"])
    rows = dict((key, value) for key, value in table(md, "| Environment |"))
    assert rows["cuda"] == rows["cudnn"] == "not used"
    assert rows["precision"] == "fp32"
    assert "None" not in section(md, "Configuration and environment")


def test_settings_are_a_table_marking_what_the_study_leaves_unstated(md, data):
    config = section(md, "Configuration and environment")
    assert '{"' not in config  # no raw JSON
    rows = {row[0]: row[1:] for row in table(md, "| Setting | Value | Set by |")}
    trial = data["trials"][0]
    expected = {f"model.{k}" for k in trial["model"] if k != "activation"}
    expected |= {f"train.{k}" for k in trial["train"]}
    assert expected | {"sweep.activations", "sweep.seeds"} == set(rows)
    assert rows["model.n_layer"] == ["1", "config", "stated"]
    assert rows["model.vocab_size"] == ["65", "data", "—"]
    assert rows["model.dropout_sites"] == [
        "embedding, attention, residual",
        "default",
        "**not stated**",
    ]
    assert rows["train.lr"] == ["0.003", "config", "stated"]
    assert rows["train.warmup_iters"] == ["2", "config", "not stated"]
    assert rows["train.beta2"] == ["0.99", "default", "**not stated**"]
    assert rows["train.min_lr"] == [repr(trial["train"]["min_lr"]), "default", "**not stated**"]
    assert trial["train"]["min_lr"] == pytest.approx(0.0003)  # lr / 10, as recorded
    assert rows["train.precision"] == ["fp32", "config", "not stated"]
    assert rows["train.precision_used"] == ["fp32", "resolved", "—"]
    assert rows["train.eval_batch_size"] == ["1024", "config", "—"]
    assert rows["sweep.activations"] == ["relu, gelu", "config", "stated"]
    assert rows["sweep.seeds"] == ["0, 1", "config", "stated"]


def _precision_line(text: str) -> str:
    return next(line for line in text.splitlines() if line.startswith("Precision:"))


def test_the_report_names_the_precision_its_trials_used(md, data):
    assert _precision_line(md) == "Precision: **fp32** in all 4 trials (configured `fp32`)."
    assert "Setup: 4 trials of " in md
    auto = copy.deepcopy(data)
    for trial in auto["trials"]:
        trial["train"].update(precision="auto", precision_used="bf16")
        trial["environment"].update(precision="bf16", cpu_bf16="avx512_bf16")
    ctx = report.context(auto)
    assert _precision_line(report.render_markdown(ctx)) == (
        "Precision: **bf16 autocast** in all 4 trials (configured `auto`, resolved for a CPU "
        "with native bf16 (avx512_bf16))."
    )
    html = report.render_html(ctx)
    assert "<strong>bf16 autocast</strong> in all 4 trials (configured <code>auto</code>" in html
    mixed = copy.deepcopy(auto)
    for trial in mixed["trials"][:2]:
        trial["train"]["precision_used"] = "fp32"
        trial["environment"].update(precision="fp32", cpu_bf16="none")
    assert _precision_line(report.render_markdown(report.context(mixed))) == (
        "Precision: **bf16 autocast** in 2 of 4 trials (configured `auto`, resolved for a CPU "
        "with native bf16 (avx512_bf16)); **fp32** in 2 of 4 trials (configured `auto`, "
        "resolved for a CPU without native bf16)."
    )


def test_times_are_wall_clock_and_the_samples_shared_seed_is_explained(md, data):
    per_activation = section(md, "Per-activation results")
    assert "wall-clock" in per_activation and "otherwise idle machine" in per_activation
    seeds = {s["sample_seed"] for s in data["samples"].values()}
    assert len(seeds) == 1 and len(data["samples"]) == 2
    samples = " ".join(section(md, "Samples").split())
    assert f"the same prompt with the same sampling seed ({seeds.pop()})" in samples
    assert "it comes from the common seed" in samples
    apart = copy.deepcopy(data)
    apart["samples"]["relu"]["sample_seed"], apart["samples"]["gelu"]["sample_seed"] = 0, 1
    text = report.render_markdown(report.context(apart))
    assert "common seed" not in text
    assert re.search(r"\*\*gelu\*\* \(seed \d+, .* sampling seed 1\)", text)
