"""Every command in README.md's bash blocks is exercised, so none can rot.

Commands that run here run for real, long ones in a shortened form that still goes through
the documented command line: ``run`` as ``--dry-run`` whose timing steps are taken on a tiny
model (the estimate's rule and its measurement are tested at full strength in
tests/test_runner.py), ``bench`` for 2 steps of a tiny model set with ``--set``, a tiny run
in place of artifacts/smoke, ``verify DIR`` as the run of its ``--retrain`` form where the
README shows one (the same checks, then the retrain). Docker, multi-host and GPU commands are
checked statically (the compose service, the script, the arguments they pass to ``python -m
reproduce``), beside CI's hadolint and compose-schema checks. A README command that matches
no rule fails the test.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import yaml
from conftest import REPO, nox_session_commands
from torch.distributed.run import get_args_parser

from reproduce import estimate
from reproduce.cli import build_parser, main

README = (REPO / "README.md").read_text(encoding="utf-8")
CPU = REPO / "artifacts" / "cpu"


def readme_commands() -> list[str]:
    """Each command line of the README's ```bash blocks (comments and blank lines dropped)."""
    blocks = re.findall(r"```bash\n(.*?)```", README, flags=re.S)
    return [
        line.strip()
        for block in blocks
        for line in block.splitlines()
        if line.strip() and not line.strip().startswith("#")
    ]


def reproduce_args(command: str) -> list[str]:
    """The arguments after ``-m reproduce`` in a command line."""
    words = shlex.split(command)
    return words[words.index("reproduce", words.index("-m")) + 1 :]


@pytest.fixture(scope="module")
def tiny_run(tiny_sweep):
    """The session's finished tiny sweep standing in for artifacts/smoke (commands that write
    into a run directory get a copy: see :func:`run_reproduce`)."""
    return tiny_sweep[1]


# The model a shortened command times its steps on: conftest's tiny trial's shape.
TINY_MODEL = {"n_layer": 1, "n_head": 2, "n_embd": 32, "block_size": 32}
TINY_SETS = [f"model.{k}={v}" for k, v in TINY_MODEL.items()] + ["train.batch_size=8"]


@pytest.fixture(autouse=True)
def tiny_timing(monkeypatch):
    """``run --dry-run`` times its steps on :data:`TINY_MODEL` instead of the config's model
    (a full-scale step takes 10-120 s on two cores); everything else is the real command."""
    real = estimate.measure

    def measure(spec, corpus, activations=(), **kwargs):
        small = replace(spec.model, **TINY_MODEL)
        spec = replace(spec, model=small, train=replace(spec.train, batch_size=8))
        return real(spec, corpus, activations, **kwargs)

    monkeypatch.setattr(estimate, "measure", measure)


def run_reproduce(args: list[str], tiny_run: Path, tmp_path: Path) -> int:
    """Run ``python -m reproduce ARGS`` at a reduced size where needed."""
    args = [str(tiny_run) if a == "artifacts/smoke" else a for a in args]
    if args[0] == "run":
        out = args.index("--out") + 1
        args[out] = str(tmp_path / "run-out")
        if "--dry-run" not in args:
            args.append("--dry-run")
    if args[0] == "bench":
        args = [
            *args[: args.index("--iters")],
            "--iters",
            "2",
            "--warmup",
            "1",
            "--out",
            str(tmp_path / "bench.json"),
            *args[args.index("--iters") + 2 :],
            *(part for setting in TINY_SETS for part in ("--set", setting)),
        ]
    if args[0] == "parity":  # minutes per trial: tests/test_parity.py runs it for real
        from reproduce.config import load_config
        from reproduce.parity import scale_of

        parsed = build_parser().parse_args(args)
        return 0 if scale_of(load_config(REPO / parsed.config)) else 1
    if args[0] == "merge":  # its inputs are other machines' runs: tests/test_merge.py merges
        parsed = build_parser().parse_args(args)
        return 0 if (REPO / parsed.config).is_file() and len(parsed.inputs) > 1 else 1
    if args[0] == "publish":
        args[2] = str(tmp_path / "published")
    if args[0] == "render":  # never re-render a committed result in place
        copy = tmp_path / "render-copy"
        shutil.copytree(args[1], copy)
        args[1] = str(copy)
    return main(args)


# `verify DIR --retrain ID` runs every check of `verify DIR`, then retrains: where the README
# shows both, one run of the retrain form exercises the two (minutes less of CI; test_verify.py
# runs verify without --retrain on many directories). Each verify command line runs once.
VERIFY_RUNS: dict[tuple[str, ...], tuple[int, str]] = {}


def retrain_form(args: list[str]) -> list[str] | None:
    """The README's ``verify DIR --retrain ID`` for ``verify DIR``, if the README shows one."""
    if args[0] != "verify" or "--retrain" in args:
        return None
    for command in readme_commands():
        words = shlex.split(command)
        if words[:4] == ["python", "-m", "reproduce", "verify"]:
            other = reproduce_args(command)
            if "--retrain" in other and other[:2] == args[:2] and len(other) == len(args) + 2:
                return other
    return None


def run_verify(args: list[str], tiny_run: Path, tmp_path: Path, capsys) -> tuple[int, str]:
    """(exit status, standard output) of ``python -m reproduce verify ARGS``, run once."""
    key = tuple(args)
    if key not in VERIFY_RUNS:
        capsys.readouterr()
        status = run_reproduce(args, tiny_run, tmp_path)
        VERIFY_RUNS[key] = (status, capsys.readouterr().out)
    return VERIFY_RUNS[key]


def test_the_plain_verify_runs_as_the_retrain_form_of_its_directory():
    assert retrain_form(["verify", "artifacts/cpu"]) == [
        "verify",
        "artifacts/cpu",
        "--retrain",
        "relu-s42",
    ]
    assert retrain_form(["verify", "artifacts/cpu", "--retrain", "relu-s42"]) is None
    assert retrain_form(["verify", "artifacts/elsewhere"]) is None


def exercise(command: str, tiny_run: Path, tmp_path: Path, capsys) -> None:
    words = shlex.split(command)
    if command == "pip install nox && nox -s smoke":
        assert nox_session_commands("smoke") == [
            ["python", "-m", "reproduce", "run", "--config", "configs/smoke.toml"]
            + ["--out", "artifacts/smoke"]
        ]
        assert (
            main(
                [
                    "run",
                    "--config",
                    "configs/smoke.toml",
                    "--out",
                    str(tmp_path / "smoke"),
                    "--dry-run",
                ]
            )
            == 0
        )
    elif command == "nox -s container":  # minutes of image builds: run by hand (README)
        assert nox_session_commands("container") == [
            ["python", str(REPO / "containers" / "check.py")]
        ]
    elif command == "nox -s tests":
        assert "\nnox -s tests\n" in (REPO / ".ci/run").read_text()  # CI runs exactly this
    elif "docker compose" in command:
        services = yaml.safe_load((REPO / "docker-compose.yml").read_text())["services"]
        if words[-1] == "build":
            assert "BASE_IMAGE" in (REPO / "docker-compose.yml").read_text()
            assert "ARG BASE_IMAGE" in (REPO / "Dockerfile").read_text()
        else:
            service = services[words[-1]]
            if words[-1] == "reproduce":
                assert "configs/full.toml" in " ".join(service["command"])
                assert (
                    main(
                        [
                            "run",
                            "--config",
                            "configs/full.toml",
                            "--out",
                            str(tmp_path / "full"),
                            "--dry-run",
                        ]
                    )
                    == 0
                )
    elif words[0] == "docker":
        assert words[1] in ("pull", "inspect") and "nvcr.io/nvidia/pytorch:24.11-py3" in words
        assert "nvcr.io/nvidia/pytorch:24.11-py3" in (REPO / "Dockerfile").read_text()
    elif words[0] == "scripts/gpu-sweep.sh":  # run at a tiny size by tests/test_gpu_script.py
        script = REPO / words[0]
        assert script.is_file() and script.stat().st_mode & 0o111
    elif words[0] == "torchrun":
        launcher = get_args_parser().parse_args(words[1 : words.index("-m")] + ["x"])
        assert launcher.nproc_per_node
        build_parser().parse_args(reproduce_args(command))
    elif words[0] == "sbatch":
        script = REPO / words[1]
        assert subprocess.run(["bash", "-n", str(script)]).returncode == 0
        line = " ".join(script.read_text().replace("\\\n", " ").split("srun ", 1)[1].split())
        build_parser().parse_args(
            reproduce_args(line.split(" || ")[0].replace("$((12 * 3600 - 20 * 60))", "42000"))
        )
    elif words[0] == "cd":  # cd artifacts/cpu && sha256sum -c SHA256SUMS && cd ../..
        proc = subprocess.run(command, shell=True, cwd=REPO, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stdout + proc.stderr
    elif words[:3] == ["python", "-m", "reproduce"] and words[3] == "verify":
        args = reproduce_args(command)
        build_parser().parse_args(args)
        status, out = run_verify(retrain_form(args) or args, tiny_run, tmp_path, capsys)
        assert status == 0, out
        if "--retrain" in words:
            said = " ".join(out.split())  # rows wrap at 80 columns
            trial = words[words.index("--retrain") + 1]
            # bit for bit where the CPU is the publishing kind, else the honest verdict, with
            # the metric differences either way
            assert f"pass retrain {trial}: bit-identical weights and final metrics" in said or (
                f"platform differs retrain {trial}: platform " in said
                and "within tolerance; retrained - recorded: val_loss " in said
            )
    elif words[:3] == ["python", "-m", "reproduce"]:
        assert run_reproduce(reproduce_args(command), tiny_run, tmp_path) == 0
    elif words[:3] == ["python", "-m", "charlm"]:
        proc = subprocess.run(
            [sys.executable, *words[1:]], cwd=REPO, capture_output=True, text=True
        )
        assert proc.returncode == 0, proc.stderr
        weights = Path(words[words.index("--checkpoint") + 1])  # DIR/trials/<id>/weights...
        run = json.loads((REPO / weights.parents[2] / "results.json").read_text())
        trial = next(t for t in run["trials"] if t["id"] == weights.parent.name)
        shown = run["samples"][trial["group"]]  # the report's sample, from the lowest seed
        assert shown["seed"] == trial["seed"] and shown["prompt"] in command
        assert proc.stdout == shown["text"] + "\n"
    else:
        pytest.fail(f"README command with no exercise in tests/test_readme.py: {command}")


@pytest.mark.parametrize("command", readme_commands())
def test_readme_command(command, tiny_run, tmp_path, capsys):
    exercise(command, tiny_run, tmp_path, capsys)


def test_readme_names_the_tests_command_ci_runs():
    assert readme_commands()[:2] == ["pip install nox && nox -s smoke", "nox -s tests"]
