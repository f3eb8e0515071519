"""Static and fast checks of the container route: the defects the real container run found
(issue 23) and the stand-in for NVIDIA's image. The run itself (``nox -s container``, minutes of
image builds and a smoke sweep in a container) is not part of this suite; see the README."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
STANDIN = ROOT / "containers" / "ngc-standin"
NGC_CAPTURE = ROOT.parent / "shared" / "ngc-24.11" / "packages.json"
README = (ROOT / "README.md").read_text(encoding="utf-8")


def load(path: Path, name: str):
    """Import a script of containers/ as a module."""
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


check = load(ROOT / "containers" / "check.py", "container_check")
relabel_torch = load(STANDIN / "relabel_torch.py", "relabel_torch")


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pins(path: Path) -> dict[str, str]:
    """canonical name -> version of every ``name==version`` line of a requirements file."""
    found = re.findall(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)", path.read_text(), flags=re.M)
    return {canonical(name): version for name, version in found}


def dockerfile_runs() -> list[str]:
    """The Dockerfile's RUN instructions, continuations joined."""
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())
    return [line[4:] for line in text.splitlines() if line.startswith("RUN ")]


@pytest.fixture(scope="module")
def compose():
    yaml = pytest.importorskip("yaml", reason="PyYAML is in requirements/test.txt")
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


# ------------------------------------------------------------------ defect 1: packaging 23.2


def test_build_lock_brings_the_packaging_that_setuptools_needs():
    """setuptools >= 77 imports packaging.licenses (packaging >= 24.2); NVIDIA's image has 23.2,
    so the build lock that goes on PYTHONPATH for the editable install must carry its own."""
    build = pins(ROOT / "requirements" / "build.txt")
    assert int(build["setuptools"].split(".")[0]) >= 77
    assert tuple(int(x) for x in build["packaging"].split(".")[:2]) >= (24, 2)
    standin = pins(STANDIN / "requirements.txt")
    assert standin["packaging"] == "23.2"  # the base image's, which triggered the defect
    install = next(r for r in dockerfile_runs() if "-r requirements/build.txt" in r)
    assert "--target /tmp/pep517" in install and "PYTHONPATH=/tmp/pep517" in install


# --------------------------------------------------------------- defect 2: the caller's uid


def test_compose_requires_the_callers_ids_under_names_bash_lets_us_set(compose):
    for name, service in compose["services"].items():
        user = service["user"]
        assert re.fullmatch(r"\$\{CHARLM_UID:\?[^}]+\}:\$\{CHARLM_GID:\?[^}]+\}", user), name


def readme_compose_lines() -> list[str]:
    blocks = re.findall(r"```bash\n(.*?)```", README, flags=re.S)
    return [
        line.strip()
        for block in blocks
        for line in block.splitlines()
        if "docker compose run" in line and not line.strip().startswith("#")
    ]


def test_readme_compose_commands_pass_the_callers_ids(tmp_path):
    """Each README ``docker compose run`` line, run by bash as written (docker replaced by a
    stub that prints what compose would see), hands compose the caller's uid and gid."""
    lines = readme_compose_lines()
    assert {line.split()[-1] for line in lines} >= {"reproduce", "smoke", "verify"}
    stub = tmp_path / "docker"
    stub.write_text('#!/bin/sh\necho "ids=${CHARLM_UID}:${CHARLM_GID}"\n')
    stub.chmod(0o755)
    env = {**os.environ, "PATH": f"{tmp_path}{os.pathsep}{os.environ['PATH']}"}
    env.pop("CHARLM_UID", None)
    env.pop("CHARLM_GID", None)
    for line in lines:
        done = subprocess.run(["bash", "-c", line], env=env, capture_output=True, text=True)
        assert done.returncode == 0 and done.stderr == "", (line, done.stderr)
        assert done.stdout == f"ids={os.getuid()}:{os.getgid()}\n", line


# ------------------------------------------------------------ defect 3: verify offline


def test_compose_hands_the_hosts_data_file_to_every_service(compose):
    for name, service in compose["services"].items():
        assert service["environment"]["CHARLM_DATA"] == "${CHARLM_DATA:+/data/input.txt}", name
        mounts = [v for v in service["volumes"] if isinstance(v, dict)]
        assert {
            "type": "bind",
            "source": "${CHARLM_DATA:-/dev/null}",
            "target": "/data/input.txt",
            "read_only": True,
        } in mounts, name
        assert "${CHARLM_ARTIFACTS:-./artifacts}:/artifacts" in service["volumes"], name


def test_an_empty_charlm_data_means_unset(tmp_path, monkeypatch):
    """Without CHARLM_DATA on the host the containers see CHARLM_DATA='' (and /dev/null at
    /data/input.txt): the data then comes from the cache, as if the variable were unset."""
    data = pytest.importorskip("charlm.data")
    cached = Path(os.environ.get("CHARLM_DATA", ""))
    if not cached.is_file():
        pytest.skip("CHARLM_DATA names no tiny Shakespeare file")
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / data.TINY_SHAKESPEARE_FILE).write_bytes(cached.read_bytes())
    monkeypatch.setenv("CHARLM_CACHE_DIR", str(cache))
    monkeypatch.setenv("CHARLM_DATA", "")
    assert data.resolve_data_path() == cache / data.TINY_SHAKESPEARE_FILE


# ------------------------------------------------------- defect 4: root's files in the home


def test_the_user_exists_before_python_runs_and_home_stays_clean():
    runs = dockerfile_runs()
    useradd = next(i for i, r in enumerate(runs) if "useradd" in r)
    first_python = next(i for i, r in enumerate(runs) if re.search(r"\bpython\b", r))
    assert useradd < first_python
    help_check = next(r for r in runs if "reproduce --help" in r)
    words = shlex.split(help_check.split("python -m reproduce --help")[0].split("&&")[-1])
    settings = dict(w.split("=", 1) for w in words if "=" in w)
    for name in ("HOME", "XDG_CACHE_HOME", "MPLCONFIGDIR"):
        assert settings[name].startswith("/tmp/"), name
    assert "find /home/charlm /cache /artifacts -user 0" in help_check


# -------------------------------------------------------------- the stand-in and the check


def test_standin_requirements_are_hash_pinned_wheels():
    text = (STANDIN / "requirements.txt").read_text()
    entries = check.ENTRY.findall(text)
    assert len(entries) == len(pins(STANDIN / "requirements.txt")) > 40
    assert all(filename.endswith(".whl") for *_, filename in entries)
    assert "torch==2.6.0" in {f"{name}=={version}" for name, version, *_ in entries}


def test_standin_mirrors_nvidias_versions_of_what_the_project_touches():
    if not NGC_CAPTURE.is_file():
        pytest.skip(f"{NGC_CAPTURE} is not beside the repository")
    capture = {canonical(k): v for k, v in json.loads(NGC_CAPTURE.read_text())["packages"].items()}
    standin = pins(STANDIN / "requirements.txt")
    touched = set(pins(ROOT / "requirements" / "docker.txt")) | {
        "pip",
        "setuptools",
        "packaging",
        "numpy",
        "scipy",
        "torch",
    }
    assert touched <= set(standin)
    for name, version in standin.items():
        if name in ("torch", "triton") or name.startswith("nvidia-"):
            continue  # PyPI's torch and what it needs: not NVIDIA's (see the Containerfile)
        assert capture.get(name) == version, name


def test_one_torch_label_everywhere():
    expected = re.search(r"EXPECTED_TORCH_VERSION=(\S+)", (ROOT / "Dockerfile").read_text())[1]
    assert check.NGC_TORCH == expected
    assert f"relabel_torch.py {expected}" in (STANDIN / "Containerfile").read_text()


def test_relabel_torch_rewrites_version_metadata_and_record(tmp_path):
    site = tmp_path / "site"
    (site / "torch").mkdir(parents=True)
    (site / "torch" / "version.py").write_text("__version__ = '2.6.0+cu124'\ndebug = False\n")
    info = site / "torch-2.6.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: torch\nVersion: 2.6.0\n")
    (info / "RECORD").write_text(
        "torch/version.py,sha256=old,40\ntorch-2.6.0.dist-info/METADATA,sha256=old,50\n"
        "torch-2.6.0.dist-info/RECORD,,\n"
    )
    label = "2.6.0a0+df5bbc09d1.nv24.11"
    assert relabel_torch.relabel(label, [str(site)]) == "2.6.0"
    new = site / f"torch-{label}.dist-info"
    assert not info.exists() and new.is_dir()
    assert f"__version__ = '{label}'" in (site / "torch" / "version.py").read_text()
    assert f"Version: {label}\n" in (new / "METADATA").read_text()
    record = (new / "RECORD").read_text().splitlines()
    digest = relabel_torch._record_digest(site / "torch" / "version.py")
    size = (site / "torch" / "version.py").stat().st_size
    assert record[0] == f"torch/version.py,{digest},{size}"
    assert record[1].startswith(f"torch-{label}.dist-info/METADATA,sha256=")
    assert record[2] == f"torch-{label}.dist-info/RECORD,,"


def test_relabel_torch_without_torch_says_so(tmp_path):
    done = subprocess.run(
        [sys.executable, "-S", str(STANDIN / "relabel_torch.py"), "1.0"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert done.returncode == 1
    assert done.stderr.startswith("relabel_torch: ")


def test_container_session_runs_the_check():
    from conftest import nox_session_commands

    commands = nox_session_commands("container")
    assert commands == [["python", str(ROOT / "containers" / "check.py")]]


def test_check_uses_a_stranger_uid_for_root(monkeypatch):
    monkeypatch.setattr(os, "getuid", lambda: 0)
    assert check.run_ids() == (4242, 4242)
    assert 1000 not in check.run_ids()


def test_scripts_parse():
    for script in ("ubuntu-rootfs.sh",):
        assert subprocess.run(["bash", "-n", str(ROOT / "containers" / script)]).returncode == 0
    assert os.access(ROOT / "containers" / "ubuntu-rootfs.sh", os.X_OK)
