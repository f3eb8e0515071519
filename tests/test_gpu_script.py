"""scripts/gpu-sweep.sh and its preflight on the CPU, at a tiny size.

The script runs end to end three times in one directory (``--tiny``: configs/full.toml's nine
trials at 1 layer x 32, 2 ranks): stopped at once by its time limit (exit 75), resumed to the
end (exit 0), and run again with nothing left to do. The first and third run with gawk as
``awk``, the second with mawk. Each runs with jsonschema and its three dependencies hidden
from Python, so they come from the wheels the script installs, as on the GPU machine.
Every preflight failure (no torch, no CUDA, a missing package, Python 3.10) exits 2 with one
line, within seconds: a few seconds of CPU time (wall time depends on the machine's load).
"""

from __future__ import annotations

import ast
import importlib.metadata as metadata
import io
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest
from conftest import REPO, run_group

from charlm.io import sha256_file
from reproduce import preflight

SCRIPT = REPO / "scripts" / "gpu-sweep.sh"
WHEEL_DISTS = ("jsonschema", "referencing", "rpds-py", "jsonschema-specifications")
HIDDEN = "jsonschema referencing rpds jsonschema_specifications"
TRIALS = [f"{a}-s{s}" for a in ("gelu", "relu", "swish") for s in (42, 43, 44)]
# "within seconds": CPU seconds the command and its children may use (importing torch takes
# a few); wall time is bounded by each subprocess's timeout only, since a loaded machine can
# stretch it many times
PREFLIGHT_CPU_SECONDS = 20


def children_cpu_seconds() -> float:
    """User + system CPU seconds of this process's finished children so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


# Put first on PYTHONPATH, this sitecustomize hides the top-level modules named in
# $HIDE_PACKAGES unless another PYTHONPATH entry holds them (the wheels the script installs),
# and with $FAKE_PYTHON_VERSION=X.Y.Z makes sys.version_info say so.
SITECUSTOMIZE = """
import importlib.abc
import importlib.machinery
import os
import sys

_here = os.path.dirname(os.path.abspath(__file__))
_hidden = set(os.environ.get("HIDE_PACKAGES", "").split())
_allowed = [
    p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep)
    if p and os.path.abspath(p) != _here
]


class _Hide(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if "." in name or name not in _hidden:
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, _allowed)
        if spec is None:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return spec


sys.meta_path.insert(0, _Hide())
if os.environ.get("FAKE_PYTHON_VERSION"):
    sys.version_info = tuple(int(p) for p in os.environ["FAKE_PYTHON_VERSION"].split(".")) + (
        "final", 0)
"""


def hiding_dir(root: Path) -> Path:
    """A directory holding the hiding sitecustomize.py."""
    directory = root / "hide"
    directory.mkdir(exist_ok=True)
    (directory / "sitecustomize.py").write_text(SITECUSTOMIZE, encoding="utf-8")
    return directory


def wheel_of_installed(name: str, dest: Path) -> Path:
    """A wheel rebuilt from the installed distribution ``name`` (its files and dist-info)."""
    dist = metadata.distribution(name)
    wheel_text = dist.read_text("WHEEL") or ""
    tag = next(
        line.split(":", 1)[1].strip() for line in wheel_text.splitlines() if line.startswith("Tag:")
    )
    stem = f"{dist.metadata['Name'].replace('-', '_')}-{dist.version}"
    path = dest / f"{stem}-{tag}.whl"
    skip = {"INSTALLER", "REQUESTED", "direct_url.json"}
    with zipfile.ZipFile(path, "w") as archive:
        for file in dist.files:
            rel = file.as_posix()
            if rel.startswith("..") or "__pycache__" in rel or Path(rel).name in skip:
                continue
            archive.write(dist.locate_file(file), rel)
    return path


@pytest.fixture(scope="module")
def wheels(tmp_path_factory) -> Path:
    """jsonschema and its three dependencies as wheels for this interpreter."""
    dest = tmp_path_factory.mktemp("wheels")
    for name in WHEEL_DISTS:
        wheel_of_installed(name, dest)
    return dest


def awk_dir(root: Path, name: str) -> Path | None:
    """A directory whose ``awk`` is ``name`` (gawk or mawk), or None if not installed."""
    found = shutil.which(name)
    if found is None:
        return None
    directory = root / f"awk-{name}"
    directory.mkdir(exist_ok=True)
    link = directory / "awk"
    if not link.exists():
        link.symlink_to(found)
    return directory


def script_env(root: Path, *, awk: str | None = None, **extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK")}
    env.update(
        PYTHON=sys.executable,
        PYTHONPATH=str(hiding_dir(root)),
        HIDE_PACKAGES=HIDDEN,
        WORK=str(root / "work"),
    )
    if awk is not None:
        directory = awk_dir(root, awk)
        if directory is not None:
            env["PATH"] = f"{directory}{os.pathsep}{env['PATH']}"
    env.update(extra)
    return env


def run_script(args: list[str], env: dict, timeout: float = 1200) -> subprocess.CompletedProcess:
    return run_group(["bash", str(SCRIPT), *args], timeout, env=env)


def members_of(payload: bytes) -> dict[str, bytes]:
    """Name -> bytes of each file in a .tar.gz given as bytes."""
    with tarfile.open(fileobj=io.BytesIO(payload)) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}


# --- the script's text ------------------------------------------------------------------------


def test_no_pipe_feeds_a_reader_that_stops_early():
    # under pipefail, a reader that exits at its first match (awk '{...; exit}', head, grep -q
    # or -m, sed q) kills a writer still writing with SIGPIPE: the race of issue 17
    text = SCRIPT.read_text(encoding="utf-8")
    early = re.compile(r"\|\s*(head|awk|sed|grep\s+-[a-zA-Z]*[qm])\b")
    assert not early.findall(text)
    pipes = [line.strip() for line in text.splitlines() if re.search(r"[^|]\|[^|]", line)]
    # the one pipeline left: the whole run into tee, which reads to the end
    assert [line for line in pipes if not line.startswith(("#", "-h |"))] == [
        'main 2>&1 | tee -a "$LOG"'
    ]


def test_help_shows_every_step_and_its_budget():
    proc = run_script(["--help"], {**os.environ, "TIME_BUDGET_S": "300", "FINISH_S": "60"})
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert max(map(len, lines)) <= 80
    text = proc.stdout
    for step in ("(a) preflight", "(b) sweep", "(c) rank 0", "(d) publication"):
        assert step in text
    assert "TIME_BUDGET_S (now 300 s)" in text
    # preflight 45 s + training 195 s + finish 60 s = the budget
    assert "45 s (exit 2" in text and "195 s" in text and "FINISH_S, 60 s" in text


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "gpu-sweep: usage: scripts/gpu-sweep.sh [--tiny] [--wheels DIR] DATA OUT"),
        (["--fast", "a", "b"], "gpu-sweep: unknown option --fast (see --help)"),
        (["/no/such/input.txt", "out"], "gpu-sweep: data file /no/such/input.txt not found"),
        (["--wheels", "/no/such/dir", "DATA", "out"], None),
    ],
)
def test_bad_arguments_exit_2_with_one_line(args, message, data_path, tmp_path):
    args = [str(data_path) if a == "DATA" else a for a in args]
    proc = run_script(args, {**os.environ, "WORK": str(tmp_path / "work")}, timeout=60)
    assert proc.returncode == 2 and proc.stdout == ""
    assert len(proc.stderr.splitlines()) == 1
    assert proc.stderr.startswith(message or "gpu-sweep: --wheels /no/such/dir: no such directory")
    assert not (tmp_path / "work").exists()


def test_fetch_wheels_asks_pip_for_the_hash_pinned_wheels(tmp_path):
    # a stand-in python that records what `-m pip download` was asked for (no network in tests)
    fake = tmp_path / "python"
    fake.write_text(
        "#!/usr/bin/env bash\n"
        'if [[ "$1 $2 $3" == "-m pip download" ]]; then\n'
        '    printf "%s\\n" "$@" >"$RECORD/args"\n'
        '    while (($#)); do [[ "$1" == -r ]] && cp "$2" "$RECORD/req"; shift; done\n'
        "    exit 0\n"
        "fi\n"
        f'exec {sys.executable} "$@"\n'
    )
    fake.chmod(0o755)
    env = {**os.environ, "PYTHON": str(fake), "RECORD": str(tmp_path)}
    proc = run_script(["--fetch-wheels", str(tmp_path / "wheels")], env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    args = (tmp_path / "args").read_text().split()
    for flag in ("--require-hashes", "--no-deps", "--only-binary=:all:"):
        assert flag in args
    assert args[args.index("--python-version") + 1] == "3.12"
    assert args[args.index("--abi") + 1] == "cp312"
    assert "manylinux2014_x86_64" in args
    lines = (tmp_path / "req").read_text().splitlines()
    runtime = (REPO / "requirements" / "runtime.txt").read_text()
    pinned = [line.split()[0] for line in lines]
    versions = {
        name: re.search(rf"^{name}==(\S+) ", runtime, re.M).group(1) for name in WHEEL_DISTS
    }
    expected = [f"{name}=={versions[name]}" for name in sorted(WHEEL_DISTS)]
    assert pinned == expected and len(pinned) == 4
    for line in lines:  # every hash of the lock file travels with its pin
        name = line.split("==")[0]
        block = runtime.split(f"\n{name}==", 1)[1].split("\n    # via", 1)[0]
        assert line.count("--hash=sha256:") == block.count("--hash=sha256:") > 0


# --- the preflight ----------------------------------------------------------------------------


def test_preflight_parses_as_old_python():
    # it must get as far as its version check on any Python 3 a machine may have
    for path in (REPO / "reproduce" / "preflight.py", REPO / "reproduce" / "__init__.py"):
        ast.parse(path.read_text(encoding="utf-8"), feature_version=(3, 8))


def test_preflight_packages_cover_the_projects_dependencies():
    text = (REPO / "pyproject.toml").read_text(encoding="utf-8")
    block = text.split("dependencies = [", 1)[1].split("]", 1)[0]
    needed = {
        re.split(r"[<>=!~ ]", d.strip().strip('",'))[0] for d in block.split(",") if d.strip()
    }
    assert needed <= {dist for _, dist in preflight.PACKAGES}


def run_preflight(root: Path, *args: str, **env: str) -> tuple[subprocess.CompletedProcess, float]:
    environ = script_env(root, **{"HIDE_PACKAGES": "", **env})
    start = children_cpu_seconds()
    proc = run_group(
        [sys.executable, "-m", "reproduce.preflight", *args], 900, cwd=REPO, env=environ
    )
    return proc, children_cpu_seconds() - start


@pytest.mark.parametrize(
    ("case", "args", "env", "expected"),
    [
        (
            "no torch",
            [],
            {"HIDE_PACKAGES": "torch"},
            r"^preflight: missing Python package\(s\): torch \(for .*\); install them or carry",
        ),
        (
            "missing package",
            [],
            {"HIDE_PACKAGES": "scipy jsonschema"},
            r"^preflight: missing Python package\(s\): scipy, jsonschema \(for ",
        ),
        (
            "no CUDA",
            ["--device", "cuda"],
            {"CUDA_VISIBLE_DEVICES": ""},
            r"^preflight: CUDA is required, but torch \S+ "
            r"(is a CPU-only build|\(CUDA .*\) sees no GPU)",
        ),
        (
            "Python 3.10",
            [],
            {"FAKE_PYTHON_VERSION": "3.10.14"},
            r"^preflight: Python 3\.11 or newer is needed, \S+ is 3\.10\.14$",
        ),
    ],
)
def test_preflight_failure_exits_2_with_one_line(case, args, env, expected, tmp_path):
    proc, seconds = run_preflight(tmp_path, *args, **env)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert proc.stdout == ""
    assert len(proc.stderr.splitlines()) == 1, proc.stderr
    assert re.match(expected, proc.stderr.strip()), proc.stderr
    assert seconds < PREFLIGHT_CPU_SECONDS


def real_python_3_10() -> str | None:
    """A Python 3.10 interpreter on this machine (PATH, then pyenv's versions), or None."""
    candidates = [shutil.which("python3.10")]
    pyenv = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    candidates += sorted(str(p) for p in pyenv.glob("versions/3.10*/bin/python3.10"))
    for candidate in filter(None, candidates):
        probe = subprocess.run(
            [candidate, "-c", "import sys; print(sys.version_info[:2] == (3, 10))"],
            capture_output=True,
            text=True,
        )
        if probe.returncode == 0 and probe.stdout.strip() == "True":
            return candidate
    return None


def test_preflight_on_a_real_python_3_10_exits_2_with_one_line():
    python = real_python_3_10()
    if python is None:
        pytest.skip("no Python 3.10 interpreter here (the simulated one is tested above)")
    proc = subprocess.run(
        [python, "-m", "reproduce.preflight", "--device", "cuda"],
        cwd=REPO,
        env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 2 and proc.stdout == ""
    assert re.fullmatch(
        r"preflight: Python 3\.11 or newer is needed, \S+ is 3\.10\.\d+\n", proc.stderr
    )


def test_preflight_names_a_bad_data_file(tmp_path):
    bad = tmp_path / "input.txt"
    bad.write_text("not Shakespeare\n")
    proc, _ = run_preflight(tmp_path, "--data", str(bad))
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.startswith(f"preflight: {bad} is not tiny Shakespeare (SHA-256 ")


def test_preflight_reports_versions_device_and_wheels(tmp_path, wheels, data_path):
    site = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-index",
            "--no-deps",
            "--target",
            str(site),
            *map(str, sorted(wheels.glob("*.whl"))),
        ],
        check=True,
    )
    out = tmp_path / "found.json"
    proc, _ = run_preflight(
        tmp_path,
        "--data",
        str(data_path),
        "--json",
        str(out),
        HIDE_PACKAGES=HIDDEN,
        PYTHONPATH=f"{site}{os.pathsep}{hiding_dir(tmp_path)}",
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert max(map(len, lines)) <= 80
    found = json.loads(out.read_text())
    assert sorted(found["from_pythonpath"]) == sorted(WHEEL_DISTS)
    assert found["packages"]["jsonschema"] == metadata.version("jsonschema")
    assert found["data_sha256"] == sha256_file(data_path)
    assert "from PYTHONPATH (wheels): jsonschema, referencing, rpds-py," in proc.stdout
    import torch

    assert found["packages"]["torch"] == torch.__version__
    if not torch.cuda.is_available():
        assert found["cuda"]["cuda_available"] is False and found["cuda"]["devices"] == []


@pytest.mark.parametrize(
    ("args", "env", "expected"),
    [
        ([], {"HIDE_PACKAGES": "", "CUDA_VISIBLE_DEVICES": ""}, "CUDA is required, but torch "),
        (
            ["--tiny"],
            {"HIDE_PACKAGES": HIDDEN},
            "missing Python package(s): jsonschema, referencing, rpds-py, "
            "jsonschema-specifications (for ",
        ),
    ],
)
def test_script_refuses_an_unready_machine_within_seconds(args, env, expected, data_path, tmp_path):
    start = children_cpu_seconds()
    proc = run_script(
        [*args, str(data_path), str(tmp_path / "out")], script_env(tmp_path, **env), timeout=900
    )
    assert proc.returncode == 2
    assert proc.stderr == "" and len(proc.stdout.splitlines()) == 1, proc.stdout
    assert proc.stdout.startswith(f"preflight: {expected}")
    assert children_cpu_seconds() - start < PREFLIGHT_CPU_SECONDS
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["gpu-sweep.log"]
    assert (tmp_path / "out" / "gpu-sweep.log").read_text().endswith(proc.stdout)


# --- end to end, three launches ---------------------------------------------------------------


@pytest.fixture(scope="module")
def launches(tmp_path_factory, data_path, wheels):
    """The three launches of one tiny sweep: (root, [(proc, awk, files after it)...])."""
    root = tmp_path_factory.mktemp("gpu-script")
    out = root / "out"
    args = ["--tiny", "--wheels", str(wheels), str(data_path), str(out)]
    done = []
    for awk, extra in (
        ("gawk", {"SWEEP_TIME_LIMIT_S": "0.001"}),  # stops at once at its time limit
        ("mawk", {}),
        ("gawk", {}),
    ):
        proc = run_script(args, script_env(root, awk=awk, **extra))
        snapshot = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
        done.append((proc, awk, snapshot))
    return root, done


def test_first_launch_stops_at_its_time_limit_with_exit_75(launches):
    root, done = launches
    proc, _, files = done[0]
    assert proc.returncode == 75, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "stopped at the time budget, state saved: run the same command again" in proc.stdout
    assert sorted(files) == ["gpu-sweep.log", "records.tar.gz", "summary.json"]
    records = members_of(files["records.tar.gz"])
    # each rank stopped in its first trial after evaluating step 0: no finished record
    assert sorted(records) == ["trials/gelu-s42/log.jsonl", "trials/gelu-s43/log.jsonl"]
    for log in records.values():
        assert [json.loads(line)["step"] for line in log.decode().splitlines()] == [0]
    summary = json.loads(files["summary.json"])
    assert [(s["step"], s["status"], s["budget_s"]) for s in summary["steps"]] == [
        ("preflight", 0, 45),
        ("sweep", 75, 75.001),  # the training limit and FINISH_S, summed by awk
        ("publish", 0, 75),
    ]
    assert summary["trials"] == {} and summary["determinism"] is None
    assert summary["preflight"]["packages"]["jsonschema"] == metadata.version("jsonschema")
    assert "jsonschema" in summary["preflight"]["from_pythonpath"]


def test_second_launch_resumes_and_publishes_at_most_8_files(launches, data_path):
    root, done = launches
    proc, _, files = done[1]
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert re.search(r"^rank 0: +\[1/5\] gelu-s42 \(resuming\)", proc.stdout, re.M)
    assert re.search(r"^rank 1: +\[1/4\] gelu-s43 \(resuming\)", proc.stdout, re.M)
    # jsonschema and its dependencies came from the wheels (the environment hides them)
    site = root / "work" / "site"
    assert "from PYTHONPATH (wheels): jsonschema, referencing, rpds-py," in proc.stdout
    installed = sorted(p.name.split("-")[0] for p in site.glob("*.dist-info"))
    assert installed == ["jsonschema", "jsonschema_specifications", "referencing", "rpds_py"]
    assert sorted(files) == [
        "determinism.json",
        "gpu-sweep.log",
        "published.tar.gz",
        "records.tar.gz",
        "summary.json",
    ]
    assert len(files) <= 8 and all(len(b) < 16 * 2**20 for b in files.values())
    run_dir = root / "work" / "tiny"
    results = json.loads((run_dir / "results.json").read_text())
    digests = {t["id"]: t["weights_sha256"] for t in results["trials"]}
    assert sorted(digests) == TRIALS

    verdict = json.loads(files["determinism.json"])
    assert verdict["trial"] == "gelu-s42" and verdict["identical"] is True
    assert verdict["copies"]["weights_sha256"] == [digests["gelu-s42"]] * 2
    assert verdict["copies"]["resumed_at_steps"] == [[0], []]  # the sweep's copy resumed
    resume = verdict["resume"]
    assert (resume["steps"], resume["stopped_at"], resume["resumed_at_steps"]) == (10, 5, [5])
    assert resume["uninterrupted_sha256"] == resume["resumed_sha256"]
    assert re.fullmatch(r"[0-9a-f]{64}", resume["resumed_sha256"])

    records = members_of(files["records.tar.gz"])
    for trial in TRIALS:
        record = json.loads(records[f"trials/{trial}/trial.json"])
        assert record["weights_sha256"] == digests[trial]
        assert f"trials/{trial}/log.jsonl" in records
    assert "checks/replica/gelu-s42/trial.json" in records
    assert json.loads(records["checks/determinism.json"]) == verdict

    published = members_of(files["published.tar.gz"])
    assert not any(name.endswith(".safetensors") for name in published)
    shipped = json.loads(published["published/results.json"])
    assert {t["id"]: t["weights_sha256"] for t in shipped["trials"]} == digests
    assert "published/SHA256SUMS" in published and "published/report.md" in published

    summary = json.loads(files["summary.json"])
    launch2 = [s for s in summary["steps"] if s["launch"] == 2]
    assert [(s["step"], s["status"]) for s in launch2] == [
        ("preflight", 0),
        ("sweep", 0),
        ("publish", 0),
    ]
    # the sweep may take what the preflight left of TIME_BUDGET_S (its limit + FINISH_S)
    preflight_s, sweep_budget = launch2[0]["seconds"], launch2[1]["budget_s"]
    assert abs(sweep_budget - (540 - preflight_s)) <= 1
    assert launch2[2]["budget_s"] == 75
    assert len(summary["trials"]) == 10  # the nine and the check's copy
    together = summary["together"]
    assert together["tokens"] == 10 * 20 * 8 * 32 and together["tokens_per_s"] > 0
    log = files["gpu-sweep.log"].decode()
    assert log.count("=== gpu-sweep.sh, launch") == 2
    assert (
        "determinism check of gelu-s42: copy identical, stopped at 5 and resumed identical" in log
    )


def test_third_launch_redoes_neither_trials_nor_checks(launches):
    root, done = launches
    proc, _, files = done[2]
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "9 trial(s), 0 to train" in proc.stdout
    assert "determinism check (done earlier)" in proc.stdout
    assert not re.search(r"rank \d: +\[\d+/\d+\]", proc.stdout)
    assert "10-step run, stopped at 5, resumed" not in proc.stdout
    before, after = members_of(done[1][2]["records.tar.gz"]), members_of(files["records.tar.gz"])
    assert before == after
    first = members_of(done[1][2]["published.tar.gz"])["published/results.json"]
    assert members_of(files["published.tar.gz"])["published/results.json"] == first


def test_launches_ran_with_gawk_and_with_mawk(launches):
    # the script's one awk (a sum of budgets, no pipe) ran as gawk and as mawk
    root, done = launches
    for awk in ("gawk", "mawk"):
        if awk_dir(root, awk) is None:
            pytest.skip(f"{awk} is not installed (Debian: apt-get install {awk})")
    assert [(awk, proc.returncode) for proc, awk, _ in done] == [
        ("gawk", 75),
        ("mawk", 0),
        ("gawk", 0),
    ]
