"""Static checks of the packaging files: Dockerfile, docker-compose.yml, lock files, noxfile,
CITATION.cff, LICENSE and .ci/run. No network; hadolint / check-jsonschema run only where they
are on PATH (.ci/run installs both), and skip with the reason otherwise."""

from __future__ import annotations

import ast
import importlib.util
import os
import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest
from conftest import nox_session_commands

ROOT = Path(__file__).resolve().parents[1]
REQ = ROOT / "requirements"
LOCKS = sorted(REQ.glob("*.txt"))
LOCKS = [p for p in LOCKS if p.name != "nvidia-pytorch-24.11.txt"]  # constraints, not a lock
BASE = "nvcr.io/nvidia/pytorch:24.11-py3"
FULL_RUN = ["python", "-m", "reproduce", "run", "--config", "configs/full.toml"]
SMOKE_RUN = ["python", "-m", "reproduce", "run", "--config", "configs/smoke.toml"]
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;]+)")
HASH = re.compile(r"--hash=sha256:([0-9a-f]+)")


def canonical(name: str) -> str:
    """PEP 503 normalized project name."""
    return re.sub(r"[-_.]+", "-", name).lower()


def logical_lines(text: str, comment: str = "#") -> list[str]:
    """Lines with backslash continuations joined and comments / blank lines dropped."""
    out, current = [], ""
    for raw in text.splitlines():
        stripped = raw.strip()
        if stripped.startswith(comment) or not stripped:
            continue
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        out.append((current + stripped).strip())
        current = ""
    if current:
        out.append(current.strip())
    return out


def lock_pins(path: Path) -> dict[str, tuple[str, list[str]]]:
    """canonical name -> (version, sha256 hashes) of a pip-compile --generate-hashes file."""
    pins = {}
    for line in logical_lines(path.read_text()):
        match = PIN.match(line)
        assert match, f"{path.name}: not pinned with ==: {line[:80]!r}"
        pins[canonical(match.group(1))] = (match.group(2), HASH.findall(line))
    return pins


def in_requirements(path: Path) -> dict[str, str]:
    """canonical name -> specifier of a requirements .in file, following -r includes."""
    reqs: dict[str, str] = {}
    for line in logical_lines(path.read_text()):
        line = line.split(" #")[0].strip()
        if line.startswith("-r "):
            reqs.update(in_requirements(path.parent / line[3:].strip()))
        elif line.startswith("-c "):
            continue
        else:
            match = re.match(r"^([A-Za-z0-9][A-Za-z0-9._-]*)\s*(.*)$", line)
            assert match, f"{path.name}: cannot read {line!r}"
            reqs[canonical(match.group(1))] = match.group(2).replace(" ", "")
    return reqs


def version_tuple(version: str) -> tuple[int, ...]:
    """Leading numeric release parts of a version: '2.6.0a0+x' -> (2, 6, 0)."""
    parts = []
    for piece in version.split("."):
        digits = re.match(r"\d+", piece)
        if not digits:
            break
        parts.append(int(digits.group()))
        if digits.group() != piece:
            break
    return tuple(parts)


def satisfies_lower_bound(version: str, specifier: str) -> bool:
    """True if ``version`` meets every ``>=X`` clause of ``specifier`` (the only kind used)."""
    for clause in filter(None, specifier.split(",")):
        assert clause.startswith(">="), f"unexpected specifier {clause!r}"
        want = version_tuple(clause[2:])
        have = version_tuple(version)
        width = max(len(want), len(have))
        if have + (0,) * (width - len(have)) < want + (0,) * (width - len(want)):
            return False
    return True


# ---------------------------------------------------------------------------------- lock files


def test_lock_files_exist_for_every_input():
    ins = {p.stem for p in REQ.glob("*.in")}
    assert {"runtime", "test", "lint", "docker", "build", "ci"} <= ins
    assert ins == {p.stem for p in LOCKS}


@pytest.mark.parametrize("lock", LOCKS, ids=lambda p: p.name)
def test_every_lock_line_is_hash_pinned_and_torch_free(lock):
    pins = lock_pins(lock)
    assert pins, f"{lock.name} pins nothing"
    for name, (version, hashes) in pins.items():
        assert hashes, f"{lock.name}: {name}=={version} has no --hash"
        assert all(len(h) == 64 for h in hashes), f"{lock.name}: {name}: malformed sha256"
        assert name != "torch", f"{lock.name} pins torch: torch is installed by version only"
        assert not name.startswith("nvidia-"), f"{lock.name} pins CUDA package {name}"
    # pip-compile's header says how to regenerate; no index or mirror address is recorded
    text = lock.read_text()
    assert "requirements/compile.sh" in "\n".join(text.splitlines()[:6])
    assert "--index-url" not in text and "--find-links" not in text


@pytest.mark.parametrize("stem", ["runtime", "test", "lint", "docker", "build", "ci"])
def test_lock_satisfies_its_input(stem):
    """Each .in requirement is pinned in its lock at a version that meets the .in bound."""
    pins = lock_pins(REQ / f"{stem}.txt")
    for name, spec in in_requirements(REQ / f"{stem}.in").items():
        assert name in pins, f"{stem}.txt lacks {name}: rerun requirements/compile.sh"
        assert satisfies_lower_bound(pins[name][0], spec), (stem, name, pins[name][0], spec)


def test_runtime_input_matches_pyproject_dependencies_without_torch():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = {}
    for dep in project["dependencies"]:
        match = re.match(r"^([A-Za-z0-9._-]+)(.*)$", dep.replace(" ", ""))
        declared[canonical(match.group(1))] = match.group(2)
    assert declared.pop("torch") == ">=2.6.0a0"  # accepts the NVIDIA container's pre-release
    runtime = in_requirements(REQ / "runtime.in")
    runtime.pop("setuptools")  # build backend for the editable install, from build.in
    runtime.pop("packaging")  # the release setuptools needs (NVIDIA's is older), from build.in
    assert runtime == declared


def test_test_and_runtime_locks_agree_on_shared_versions():
    runtime, test = lock_pins(REQ / "runtime.txt"), lock_pins(REQ / "test.txt")
    assert set(runtime) <= set(test)
    assert {n: runtime[n][0] for n in runtime} == {n: test[n][0] for n in runtime}
    assert lock_pins(REQ / "lint.txt")["ruff"][0] == test["ruff"][0]


def test_docker_lock_leaves_the_containers_torch_stack_alone():
    pins = lock_pins(REQ / "docker.txt")
    assert not {"torch", "numpy", "scipy"} & set(pins)
    assert "safetensors" in pins  # what the 24.11 container is known to lack


# ---------------------------------------------------------------------------------- Dockerfile


def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuations joined."""
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line else "")
        for line in logical_lines((ROOT / "Dockerfile").read_text())
    ]


def test_dockerfile_is_based_on_the_nvidia_24_11_image():
    instructions = dockerfile()
    args = dict(a.split("=", 1) for kind, a in instructions if kind == "ARG" and "=" in a)
    froms = [a for kind, a in instructions if kind == "FROM"]
    assert froms == ["${BASE_IMAGE}"]
    assert args["BASE_IMAGE"] == BASE
    # the first instruction before FROM is the ARG, so --build-arg can pin a digest
    assert instructions[0] == ("ARG", f"BASE_IMAGE={BASE}")
    assert args["EXPECTED_TORCH_VERSION"].startswith("2.6.0a0+")
    assert args["EXPECTED_TORCH_VERSION"].endswith("nv24.11")


def test_dockerfile_never_pip_installs_torch_and_asserts_its_version():
    runs = [a for kind, a in dockerfile() if kind == "RUN"]
    installs = []
    for command in runs:
        for part in re.split(r"&&|;|\|\|", command):
            words = part.split()
            if "pip" in words and "install" in words:
                installs.append(words[words.index("install") + 1 :])
    assert installs, "the Dockerfile installs nothing with pip"
    for words in installs:
        assert not any(re.match(r"^['\"]?torch(\b|[=<>~!\[])", w) for w in words), words
        assert "--require-hashes" in words or words[-2:] == ["-e", "."], words
        assert "--no-deps" in words, words
        if "--upgrade" in words or "-U" in words:
            pytest.fail(f"pip install --upgrade in the Dockerfile: {words}")
    # torch's version is checked after the last install
    last_install = max(i for i, c in enumerate(runs) if "pip install" in c)
    assert "--torch-version" in runs[last_install].split("pip install")[-1]
    assert all('"${EXPECTED_TORCH_VERSION}"' in c for c in runs if "--torch-version" in c)


def test_dockerfile_environment_user_and_default_command():
    instructions = dockerfile()
    env = " ".join(a for kind, a in instructions if kind == "ENV")
    for setting in (
        "CUBLAS_WORKSPACE_CONFIG=:4096:8",
        "PYTHONHASHSEED=0",
        "PYTHONDONTWRITEBYTECODE=1",
        "HOME=",
        "CHARLM_CACHE_DIR=",
        "MPLCONFIGDIR=",
        "XDG_CACHE_HOME=",
    ):
        assert setting in env, setting
    users = [a for kind, a in instructions if kind == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0")
    cmd = [a for kind, a in instructions if kind == "CMD"]
    assert cmd and ast.literal_eval(cmd[-1]) == FULL_RUN + ["--out", "/artifacts/full"]


# ------------------------------------------------------------------------------ docker-compose


@pytest.fixture(scope="module")
def yaml():
    return pytest.importorskip("yaml", reason="PyYAML is in requirements/test.txt (nox -s tests)")


@pytest.fixture(scope="module")
def compose(yaml):
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def gpu_devices(service: dict) -> list:
    return service.get("deploy", {}).get("resources", {}).get("reservations", {}).get("devices", [])


def test_compose_services_and_gpu_reservation(compose):
    services = compose["services"]
    assert {"reproduce", "smoke", "verify"} <= set(services)
    assert gpu_devices(services["reproduce"]) == [
        {"driver": "nvidia", "count": 1, "capabilities": ["gpu"]}
    ]
    for name, service in services.items():
        if name != "reproduce":
            assert not gpu_devices(service), f"{name} must start on a machine without a GPU"
            assert "runtime" not in service and "gpus" not in service


def test_compose_services_run_the_real_cli(compose):
    services = compose["services"]
    assert services["reproduce"]["command"] == FULL_RUN + ["--out", "/artifacts/full"]
    assert services["smoke"]["command"] == SMOKE_RUN + ["--out", "/artifacts/smoke"]
    verify = services["verify"]["command"]
    assert verify[:4] == ["python", "-m", "reproduce", "verify"] and len(verify) == 5
    for config in ("configs/full.toml", "configs/smoke.toml"):
        assert (ROOT / config).is_file(), f"{config} is missing"


def test_compose_commands_parse_with_the_cli():
    """The argv that compose, nox and the Dockerfile run is accepted by reproduce's parser."""
    cli = pytest.importorskip("reproduce.cli")
    if importlib.util.find_spec("reproduce.runner") is None:
        pytest.skip("reproduce.runner (the `run` command) is not written yet")
    parser = cli.build_parser()
    args = parser.parse_args(FULL_RUN[3:] + ["--out", "/artifacts/full"])
    assert args.command == "run" and callable(args.func)
    if importlib.util.find_spec("reproduce.verify") is not None:
        args = parser.parse_args(["verify", "/artifacts/full"])
        assert args.command == "verify"


def test_compose_runs_as_the_caller_and_keeps_results(compose):
    for name, service in compose["services"].items():
        assert service["user"].startswith("${CHARLM_UID:?"), name  # tests/test_container.py
        volumes = service["volumes"]
        assert "${CHARLM_ARTIFACTS:-./artifacts}:/artifacts" in volumes, name
        assert any(str(v).endswith(":/cache/charlm") for v in volumes), name
        assert service["build"]["context"] == "."
        assert service["ulimits"] == {"memlock": -1, "stack": 67108864}


# --------------------------------------------------------------------------------------- nox


def test_noxfile_defines_the_six_sessions_and_defaults_to_tests():
    tree = ast.parse((ROOT / "noxfile.py").read_text())
    sessions = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef):
            for deco in node.decorator_list:
                target = deco.func if isinstance(deco, ast.Call) else deco
                if ast.unparse(target) == "nox.session":
                    sessions.add(node.name)
    assert sessions == {"smoke", "tests", "lint", "full", "verify", "container"}
    assigned = {
        ast.unparse(node.targets[0]): ast.literal_eval(node.value)
        for node in tree.body
        if isinstance(node, ast.Assign) and ast.unparse(node.targets[0]).startswith("nox.options")
    }
    assert assigned["nox.options.sessions"] == ["tests"]
    assert assigned["nox.options.reuse_venv"] == "yes"
    source = (ROOT / "noxfile.py").read_text()
    assert "include_outer_env" not in source  # sessions see CHARLM_DATA etc.
    assert '"--require-hashes"' in source and "CHARLM_TORCH_SPEC" in source
    assert "download.pytorch.org/whl/cpu" in ast.get_docstring(tree)
    for lock in re.findall(r'_install\(session, "([a-z]+\.txt)"', source):
        assert (REQ / lock).is_file(), lock


def test_noxfile_runs_the_same_commands_as_compose():
    assert nox_session_commands("full") == [FULL_RUN + ["--out", "artifacts/full"]]
    assert nox_session_commands("smoke") == [SMOKE_RUN + ["--out", "artifacts/smoke"]]
    assert nox_session_commands("tests") == [["pytest"]]
    assert nox_session_commands("lint") == [["ruff", "check", "."]]  # unless paths are given


# ------------------------------------------------------------------ citation, licence, CI script


def test_citation_cites_the_study(yaml):
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    assert cff["cff-version"] == "1.2.0"
    assert cff["license"] == "MIT"
    study = [r for r in cff["references"] if r["title"] == "Full-Scale CharLM Analysis Report"]
    assert len(study) == 1
    assert str(study[0]["date-published"]) == "2025-12-08"
    assert {"type": "other", "value": "charlm-full-20251208"}.items() <= study[0]["identifiers"][
        0
    ].items()


def test_license_is_mit_for_the_authors():
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("MIT License")
    assert "Copyright (c) 2026 the charlm-repro authors" in text
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["license"] == "MIT"


def test_ci_script_is_strict_and_runs_the_readme_command():
    script = ROOT / ".ci" / "run"
    assert os.access(script, os.X_OK), ".ci/run must be executable"
    lines = [line.strip() for line in script.read_text().splitlines()]
    assert lines[0] == "#!/usr/bin/env bash"
    assert "set -euo pipefail" in lines
    for command in (
        "nox -s tests",
        "hadolint Dockerfile",
        "check-jsonschema --builtin-schema vendor.compose-spec docker-compose.yml",
        "check-jsonschema --builtin-schema vendor.citation-file-format CITATION.cff",
    ):
        assert command in lines, command


# ------------------------------------------------------- external checkers, where installed


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not on PATH (.ci/run installs it from requirements/ci.txt)")
    return path


def test_hadolint_finds_nothing():
    result = subprocess.run(
        [_tool("hadolint"), "Dockerfile"], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    "schema,path",
    [
        ("vendor.compose-spec", "docker-compose.yml"),
        ("vendor.citation-file-format", "CITATION.cff"),
    ],
)
def test_schema_validates(schema, path):
    result = subprocess.run(
        [_tool("check-jsonschema"), "--builtin-schema", schema, path],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
