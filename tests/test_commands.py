"""The smaller commands: the benchmark (run at a small size, figures printed, nothing timed
asserted) and sampling from a trained trial."""

import json
import os
import subprocess
import sys

import pytest
from conftest import REPO, tiny_spec

from charlm.train import train_trial
from reproduce.cli import main


def test_bench_prints_and_writes_figures(tmp_path, capsys):
    out = tmp_path / "bench.json"
    code = main(
        [
            "bench",
            "--config",
            str(REPO / "configs/bench-small.toml"),
            "--iters",
            "3",
            "--warmup",
            "1",
            "--baseline",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    print(printed)  # the figures, in CI's log
    assert "ms/iter" in printed and "plain fp32 PyTorch step:" in printed
    data = json.loads(out.read_text())
    figures = data["figures"]
    assert figures["iters"] == 3 and figures["ms_per_iter_median"] > 0
    assert figures["tokens_per_s"] == pytest.approx(32 * 64 / (figures["ms_per_iter_median"] / 1e3))
    assert figures["mfu"] is None  # no CUDA peak on a CPU
    assert data["plain_baseline"]["speedup"] > 0
    assert data["environment"]["threads"] == 2 and data["settings"]["optimizer_impl"] == "fused"


@pytest.fixture(scope="module")
def weights(tmp_path_factory, corpus):
    out = tmp_path_factory.mktemp("sample") / "gelu-s0"
    train_trial(tiny_spec(0), corpus, out, progress=False)
    return out / "weights.safetensors"


def sample(weights, *args):
    return subprocess.run(
        [sys.executable, "-m", "charlm", "sample", "--checkpoint", str(weights), *args],
        capture_output=True,
        text=True,
        cwd=REPO,
    )


def test_sample_is_fixed_by_its_seed(weights):
    first = sample(weights, "--prompt", "ROMEO:", "--tokens", "40", "--seed", "3")
    again = sample(weights, "--prompt", "ROMEO:", "--tokens", "40", "--seed", "3")
    other = sample(weights, "--prompt", "ROMEO:", "--tokens", "40", "--seed", "4")
    assert first.returncode == 0, first.stderr
    text = first.stdout.rstrip("\n")
    assert text.startswith("ROMEO:") and len(text) == len("ROMEO:") + 40
    assert first.stdout == again.stdout != other.stdout


def test_sample_refuses_a_character_outside_the_vocabulary(weights):
    proc = sample(weights, "--prompt", "café", "--tokens", "5")
    assert proc.returncode == 2
    assert "'é'" in proc.stderr and proc.stderr.count("\n") == 1


def test_sample_refuses_a_file_that_is_not_weights(tmp_path):
    bogus = tmp_path / "w.safetensors"
    bogus.write_bytes(b"not a safetensors file")
    proc = sample(bogus, "--prompt", "A")
    assert proc.returncode == 2 and "not a readable safetensors file" in proc.stderr


def test_every_command_has_a_description_and_every_option_help():
    import argparse

    from reproduce.cli import build_parser

    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert {"run", "render", "publish", "verify", "audit", "compare", "bench"} <= set(
        commands.choices
    )
    for name, command in commands.choices.items():
        assert command.description and len(command.description) > 40, name
        for action in command._actions:
            assert action.help, f"{name} {action.option_strings or action.dest}"


def test_sample_help_shows_defaults_only_where_there_are_some():
    proc = subprocess.run(
        [sys.executable, "-m", "charlm", "sample", "--help"],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "COLUMNS": "100"},
    )
    assert proc.returncode == 0, proc.stderr
    help_text = " ".join(proc.stdout.split())
    assert "(default: None)" not in help_text
    assert "--checkpoint CHECKPOINT a trial's weights.safetensors --prompt" in help_text
    assert "characters to generate (default: 300)" in help_text
    assert "keep the k most likely (default: all)" in help_text


def test_bench_explains_a_fraction_of_the_matmul_rate_above_100_percent():
    from reproduce.bench import _fraction_lines

    assert _fraction_lines(0.42) == ["  the step runs at 42% of it"]
    lines = _fraction_lines(1.09)
    assert lines[0].startswith("  the step runs at 109% of it: above the rate")
    assert lines[-1].endswith("read it as 'at the matmul rate'")
    assert all(len(line) <= 80 for line in lines)


def test_every_data_option_is_the_shared_one():
    """Each command that reads the corpus offers ``--data FILE`` with one help text
    (reproduce.options), sub-commands of ``reference`` included."""
    import argparse

    from reproduce.cli import build_parser
    from reproduce.options import DATA_HELP

    def parsers(parser, name=""):
        yield name, parser
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub, child in action.choices.items():
                    yield from parsers(child, f"{name} {sub}".strip())

    found = {}
    for name, parser in parsers(build_parser()):
        for action in parser._actions:
            if "--data" in action.option_strings:
                found[name] = (action.metavar, action.help, action.default)
    assert {"run", "merge", "verify", "bench", "parity", "positions"} <= set(found)
    assert set(found.values()) == {("FILE", DATA_HELP, None)}, found
