"""The container route, built and run for real (``nox -s container``; standard library only).

Steps, each timed:

1. the OS image: Ubuntu 24.04, NVIDIA's image's OS. Docker pulls ``ubuntu:24.04``; podman
   builds it with ``containers/ubuntu-rootfs.sh`` (debootstrap, root) unless it exists.
   ``CHARLM_OS_IMAGE`` names another.
2. the wheels of ``containers/ngc-standin/requirements.txt`` (NVIDIA's versions; about 2.7 GB)
   into the cache (``CHARLM_CONTAINER_CACHE``, default ``~/.cache/charlm-container``): each
   file is fetched once and checked against its pinned SHA-256 whenever the stand-in is built.
3. the stand-in for ``nvcr.io/nvidia/pytorch:24.11-py3`` (``containers/ngc-standin``), rebuilt
   only when its inputs change (a digest of them is its label).
4. the project's image from the Dockerfile, as its header says users build it, on the stand-in.
5. ``docker compose run --rm smoke``, then ``verify`` of its output, as uid:gid CHARLM_UID:
   CHARLM_GID: the caller's ids, or 4242:4242 when the caller is root (root can write anywhere,
   which would prove nothing), with results in ``runs/container-check/artifacts``; with no
   network when CHARLM_DATA names the data on the host (it is mounted into the containers).
6. checks: every result file is owned by that uid:gid; the image's torch is the stand-in's
   (same version label and same installed files' RECORD); the image's HOME and caches are
   writable by an arbitrary uid and hold no root-owned files; the stand-in's versions equal the
   capture of NVIDIA's image for every package both have.

``--offline-build`` instead builds the project's image with ``--network none`` and reports how
it ended and how long it took (it must succeed or fail within a minute, naming what it could not
fetch), into ``runs/container-check/offline-build.json``. A summary of the full check goes to
``runs/container-check/summary.json``. Exit 0 only if all passed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STANDIN = ROOT / "containers" / "ngc-standin"
STANDIN_TAG = "localhost/charlm-ngc-standin:24.11"
IMAGE = "charlm-repro:latest"
NGC_TORCH = "2.6.0a0+df5bbc09d1.nv24.11"
NGC_CAPTURE = ROOT.parent / "shared" / "ngc-24.11" / "packages.json"
SCRATCH = ROOT / "runs" / "container-check"
ROOT_STAND_IN_IDS = (4242, 4242)
WHEEL_PLATFORMS = (
    "manylinux1_x86_64",
    "manylinux2014_x86_64",
    "manylinux_2_17_x86_64",
    "manylinux_2_28_x86_64",
)
ENTRY = re.compile(r"^(\S+)==(\S+) \\\n\s+--hash=sha256:([0-9a-f]{64})\s+# (\S+\.whl)$", re.M)


class CheckFailed(Exception):
    """A step or check failed; the message says which and why."""


def log(message: str) -> None:
    print(f"[container] {message}", flush=True)


def run(
    argv: list[str], *, env: dict[str, str] | None = None, capture: bool = False, cwd: Path = ROOT
) -> str:
    """Run ``argv`` (printed first); raise CheckFailed on a non-zero exit."""
    log("$ " + " ".join(argv))
    done = subprocess.run(
        argv, cwd=cwd, env=env, text=True, stdout=subprocess.PIPE if capture else None
    )
    if done.returncode != 0:
        raise CheckFailed(f"{argv[0]} {argv[1]} exited {done.returncode}")
    return done.stdout if capture else ""


class Engine:
    """The container engine (podman or docker) and its compose command."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.env = dict(os.environ)
        if name == "docker":
            self.compose = ["docker", "compose"]
        else:
            if not shutil.which("podman-compose"):
                raise CheckFailed("podman-compose is missing: pip install podman-compose")
            self.compose = ["podman-compose"]
            hard_nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
            if "CONTAINERS_CONF" not in self.env and 0 <= hard_nofile < 1048576:
                # podman's default ulimits exceed this host's hard limits (see the README)
                self.env["CONTAINERS_CONF"] = str(ROOT / "containers" / "podman.conf")
                log(f"CONTAINERS_CONF={self.env['CONTAINERS_CONF']} (hard nofile {hard_nofile})")

    def __call__(self, *args: str, capture: bool = False, env: dict | None = None) -> str:
        return run([self.name, *args], env={**self.env, **(env or {})}, capture=capture)

    def exists(self, image: str) -> bool:
        argv = [self.name, "image", "inspect", image]
        return subprocess.run(argv, env=self.env, capture_output=True).returncode == 0

    def label(self, image: str, key: str) -> str:
        fmt = '{{ index .Config.Labels "' + key + '" }}'
        argv = [self.name, "image", "inspect", "--format", fmt, image]
        done = subprocess.run(argv, env=self.env, capture_output=True, text=True)
        return done.stdout.strip() if done.returncode == 0 else ""

    def build_args(self) -> list[str]:
        """Engine-specific ``build`` options: docker format for podman (it keeps SHELL)."""
        return ["--format", "docker"] if self.name == "podman" else []


def find_engine(requested: str | None) -> Engine:
    """The requested engine, else the first of docker, podman that answers ``info``."""
    for name in [requested] if requested else ["docker", "podman"]:
        if not shutil.which(name):
            continue
        try:
            answered = subprocess.run([name, "info"], capture_output=True, timeout=60)
        except subprocess.TimeoutExpired:
            continue
        if answered.returncode == 0:
            return Engine(name)
    raise CheckFailed(
        "no working container engine (docker info and podman info failed): "
        "install Docker, or podman (see the README)"
    )


def os_image(engine: Engine) -> str:
    """Step 1: the Ubuntu 24.04 image the stand-in starts from."""
    image = os.environ.get("CHARLM_OS_IMAGE")
    if image:
        return image
    if engine.name == "docker":
        image = "docker.io/library/ubuntu:24.04"
        if not engine.exists(image):
            engine("pull", image)
        return image
    image = "localhost/charlm-ubuntu:24.04"
    run(
        ["bash", str(ROOT / "containers" / "ubuntu-rootfs.sh"), image],
        env={**engine.env, "ENGINE": engine.name},
    )
    return image


def standin_wheels(cache: Path) -> list[tuple[str, str, str]]:
    """Step 2: (pin, sha256, file name) of every stand-in wheel, each present in the cache."""
    entries = ENTRY.findall((STANDIN / "requirements.txt").read_text())
    wheels = cache / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    missing = []
    for name, version, digest, filename in entries:
        path = wheels / filename
        if not path.is_file() or sha256_file(path) != digest:
            missing.append(f"{name}=={version} --hash=sha256:{digest}")
    if missing:
        log(f"fetching {len(missing)} of {len(entries)} wheels into {wheels}")
        with tempfile.NamedTemporaryFile("w", suffix=".txt") as req:
            req.write("\n".join(missing) + "\n")
            req.flush()
            platforms = [arg for p in WHEEL_PLATFORMS for arg in ("--platform", p)]
            run(
                [
                    sys.executable,
                    "-m",
                    "pip",
                    "download",
                    "--no-deps",
                    "--only-binary=:all:",
                    "--python-version",
                    "3.12",
                    "--implementation",
                    "cp",
                    "--abi",
                    "cp312",
                    "--abi",
                    "abi3",
                    "--abi",
                    "none",
                    *platforms,
                    "--require-hashes",
                    "-r",
                    req.name,
                    "-d",
                    str(wheels),
                ]
            )
    for *_, filename in entries:
        if not (wheels / filename).is_file():
            raise CheckFailed(f"{filename} is not in {wheels} after the download")
    return [(f"{n}=={v}", d, f) for n, v, d, f in entries]


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def standin(engine: Engine, base_os: str, cache: Path) -> None:
    """Steps 2-3: unless a stand-in built from the same inputs exists, fetch its wheels and
    build it."""
    inputs = hashlib.sha256()
    for name in ("Containerfile", "requirements.txt", "relabel_torch.py"):
        inputs.update((STANDIN / name).read_bytes())
    base_id = engine("image", "inspect", "--format", "{{.Id}}", base_os, capture=True)
    inputs.update(base_id.encode())
    key = inputs.hexdigest()
    if engine.label(STANDIN_TAG, "charlm.standin.inputs") == key:
        log(f"{STANDIN_TAG} is up to date (inputs {key[:12]})")
        return
    wheels = standin_wheels(cache)
    context = cache / "standin-context"
    shutil.rmtree(context, ignore_errors=True)
    (context / "wheels").mkdir(parents=True)
    for name in ("Containerfile", "requirements.txt", "relabel_torch.py"):
        shutil.copy2(STANDIN / name, context / name)
    for _, _, filename in wheels:
        source, target = cache / "wheels" / filename, context / "wheels" / filename
        try:
            os.link(source, target)
        except OSError:
            shutil.copy2(source, target)
    # the stand-in needs no network when the OS image already has Python (ubuntu-rootfs.sh's)
    offline = ["--network", "none"] if base_os.startswith("localhost/") else []
    # --no-cache: the inputs changed, and a cached RUN step need not see the new wheels
    engine(
        "build",
        *engine.build_args(),
        *offline,
        "--no-cache",
        "--build-arg",
        f"OS_IMAGE={base_os}",
        "--label",
        f"charlm.standin.inputs={key}",
        "-t",
        STANDIN_TAG,
        "-f",
        str(context / "Containerfile"),
        str(context),
    )


def build_project(engine: Engine, tag: str = IMAGE, offline: bool = False) -> None:
    """Step 4: the Dockerfile's documented build, with the stand-in as BASE_IMAGE."""
    commit = (
        subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
        or "unknown"
    )
    extra = engine.build_args()
    ca = os.environ.get("CHARLM_BUILD_CA") or os.environ.get("PIP_CERT")
    if ca and Path(ca).is_file() and engine.name == "podman":
        # a host whose HTTPS goes through its own certificate authority: pip in the build trusts
        # the system store, so the host's bundle replaces the image's for the build only
        extra += ["-v", f"{ca}:/etc/ssl/certs/ca-certificates.crt:ro"]
    if offline:
        extra += ["--network", "none"]
    engine(
        "build",
        *extra,
        "--build-arg",
        f"BASE_IMAGE={STANDIN_TAG}",
        "--build-arg",
        f"SOURCE_COMMIT={commit}",
        "-t",
        tag,
        ".",
    )


def run_ids() -> tuple[int, int]:
    """The uid:gid the services run as: the caller's, or a stand-in when the caller is root."""
    uid, gid = os.getuid(), os.getgid()
    return ROOT_STAND_IN_IDS if uid == 0 else (uid, gid)


def configured_ulimits(env: dict[str, str]) -> list[tuple[str, int, int]]:
    """(name, soft, hard) of each ``default_ulimits`` entry of the CONTAINERS_CONF in ``env``."""
    conf = env.get("CONTAINERS_CONF")
    if not conf or not Path(conf).is_file():
        return []
    found = re.findall(r'"(\w+)=(\d+):(\d+)"', Path(conf).read_text())
    return [(name, int(soft), int(hard)) for name, soft, hard in found]


def compose_override(scratch: Path, offline: bool, engine_env: dict[str, str]) -> list[str]:
    """``-f FILE`` for this host: the compose file's ulimits lowered to the host's hard limits
    where those are lower (a container cannot raise a limit), and no network for the services
    when ``offline`` (the data then comes from CHARLM_DATA). Empty when neither applies."""
    memlock = resource.getrlimit(resource.RLIMIT_MEMLOCK)[1]
    stack = resource.getrlimit(resource.RLIMIT_STACK)[1]
    settings = []
    low_stack = stack != resource.RLIM_INFINITY and stack < 67108864
    if memlock != resource.RLIM_INFINITY or low_stack:
        memlock_value = -1 if memlock == resource.RLIM_INFINITY else memlock
        stack_value = 67108864 if stack == resource.RLIM_INFINITY else min(stack, 67108864)
        settings += [
            "    ulimits:",
            f"      memlock: {memlock_value}",
            f"      stack: {stack_value}",
        ]
        # explicit ulimits replace all of podman's defaults, containers.conf's included: repeat
        # the ones CONTAINERS_CONF sets (podman.conf: nofile, nproc)
        for name, soft, hard in configured_ulimits(engine_env):
            settings += [f"      {name}: {{soft: {soft}, hard: {hard}}}"]
        log(f"host hard limits below the compose file's: memlock {memlock_value} in an override")
    if offline:
        settings += ["    network_mode: none"]
    if not settings:
        return []
    lines = ["services:"]
    for service in ("reproduce", "smoke", "verify"):
        lines += [f"  {service}:", *settings]
    path = scratch / "compose.host.yml"
    path.write_text("\n".join(lines) + "\n")
    return ["-f", str(path)]


def compose_run(engine: Engine, files: list[str], service: str, env: dict[str, str]) -> None:
    """``<compose> -f docker-compose.yml [...] run --rm SERVICE`` with ``env`` added."""
    argv = [*engine.compose, "-f", str(ROOT / "docker-compose.yml"), *files, "run", "--rm", service]
    run(argv, env={**engine.env, **env})


def check_owner(artifacts: Path, uid: int, gid: int) -> int:
    """Every path under ``artifacts`` is owned by uid:gid; returns how many were checked."""
    paths = [artifacts, *artifacts.rglob("*")]
    wrong = [p for p in paths if (p.stat().st_uid, p.stat().st_gid) != (uid, gid)]
    if wrong:
        first = wrong[0].stat()
        raise CheckFailed(
            f"{len(wrong)} result paths not owned by {uid}:{gid}, e.g. "
            f"{wrong[0]} ({first.st_uid}:{first.st_gid})"
        )
    if len(paths) < 5:
        raise CheckFailed(f"only {len(paths)} paths under {artifacts}: the smoke run wrote little")
    return len(paths)


TORCH_PROBE = (
    "import hashlib, importlib.metadata as m, torch; d = m.distribution('torch'); "
    "print(torch.__version__, d.version, hashlib.sha256(d.read_text('RECORD').encode())"
    ".hexdigest(), torch.__file__)"
)


def check_torch(engine: Engine) -> str:
    """The image's torch is the stand-in's: same label, same RECORD, same place."""
    probe = ["run", "--rm", "--entrypoint", "python"]
    base = engine(*probe, STANDIN_TAG, "-c", TORCH_PROBE, capture=True).split()
    image = engine(*probe, IMAGE, "-c", TORCH_PROBE, capture=True).split()
    if base != image:
        raise CheckFailed(f"the image's torch {image} is not the base image's {base}")
    if base[:2] != [NGC_TORCH, NGC_TORCH]:
        raise CheckFailed(f"the stand-in's torch is {base[:2]}, not labelled {NGC_TORCH}")
    return f"{image[0]} (RECORD sha256 {image[2][:12]}, {image[3]})"


HOME_PROBE = (
    'set -e; for d in "$HOME" "$XDG_CACHE_HOME" "$MPLCONFIGDIR" "$CHARLM_CACHE_DIR" '
    '/artifacts; do touch "$d/.probe" && rm "$d/.probe"; done; '
    'find "$HOME" /cache /artifacts -user 0 ! \\( -type d -perm -1777 \\) | head -n 5'
)


def check_home(engine: Engine, uid: int) -> str:
    """As an arbitrary uid, HOME and the caches are writable and hold nothing root-owned."""
    stranger = f"{uid + 1}:{uid + 1}"
    out = engine(
        "run",
        "--rm",
        "--user",
        stranger,
        "--entrypoint",
        "bash",
        IMAGE,
        "-c",
        HOME_PROBE,
        capture=True,
    ).strip()
    if out:
        raise CheckFailed(f"root-owned files in the image's HOME or caches: {out}")
    return f"writable as {stranger}, nothing root-owned"


VERSIONS_PROBE = (
    "import importlib.metadata as m, json, re; "
    "print(json.dumps({re.sub(r'[-_.]+', '-', d.metadata['Name']).lower(): d.version "
    "for d in m.distributions()}))"
)


def check_standin_versions(engine: Engine) -> str:
    """Every package in both the stand-in and NVIDIA's capture has the capture's version."""
    if not NGC_CAPTURE.is_file():
        return f"skipped: {NGC_CAPTURE} is not beside the repository"
    capture = json.loads(NGC_CAPTURE.read_text())["packages"]
    capture = {re.sub(r"[-_.]+", "-", k).lower(): v for k, v in capture.items()}
    have = json.loads(
        engine(
            "run", "--rm", "--entrypoint", "python", STANDIN_TAG, "-c", VERSIONS_PROBE, capture=True
        )
    )
    both = sorted(set(capture) & set(have))
    wrong = [f"{n} {have[n]} (NVIDIA: {capture[n]})" for n in both if have[n] != capture[n]]
    if wrong:
        raise CheckFailed("stand-in versions differ from NVIDIA's: " + ", ".join(wrong))
    return f"{len(both)} packages as in NVIDIA's image; {len(set(have) - set(capture))} not in it"


class Timer:
    """Named wall-clock steps, printed as they end."""

    def __init__(self) -> None:
        self.steps: dict[str, float] = {}
        self.start = time.monotonic()

    def __call__(self, name: str, func, *args):
        began = time.monotonic()
        log(f"--- {name}")
        result = func(*args)
        self.steps[name] = round(time.monotonic() - began, 1)
        log(f"--- {name}: {self.steps[name]:.1f} s")
        return result


def offline_build(engine: Engine) -> dict:
    """Build the project's image with no network; report the outcome and its time."""
    began = time.monotonic()
    try:
        build_project(engine, tag="charlm-repro:offline-check", offline=True)
        outcome = "built"
    except CheckFailed as exc:
        outcome = f"failed ({exc})"
    seconds = round(time.monotonic() - began, 1)
    log(f"offline build: {outcome} after {seconds} s")
    return {"offline_build": outcome, "seconds": seconds, "within_a_minute": seconds <= 60}


def full_check(engine: Engine, cache: Path, timer: Timer) -> dict:
    """Steps 1-6 (see the module docstring); returns what was checked."""
    base_os = timer("OS image", os_image, engine)
    timer("stand-in", standin, engine, base_os, cache)
    results = {"stand-in versions": timer("stand-in versions", check_standin_versions, engine)}
    timer("project image", build_project, engine)
    uid, gid = run_ids()
    artifacts = SCRATCH / "artifacts"
    artifacts.mkdir(parents=True)
    if os.getuid() == 0:
        os.chown(artifacts, uid, gid)
    env = {"CHARLM_UID": str(uid), "CHARLM_GID": str(gid), "CHARLM_ARTIFACTS": str(artifacts)}
    offline = bool(os.environ.get("CHARLM_DATA"))
    if offline:
        env["CHARLM_DATA"] = str(Path(os.environ["CHARLM_DATA"]).resolve())
    files = compose_override(SCRATCH, offline, engine.env)
    timer("compose smoke", compose_run, engine, files, "smoke", env)
    timer(
        "compose verify",
        compose_run,
        engine,
        files,
        "verify",
        {**env, "VERIFY_DIR": "/artifacts/smoke"},
    )
    results["owner"] = f"{check_owner(artifacts, uid, gid)} paths owned by {uid}:{gid}"
    results["torch"] = check_torch(engine)
    results["home"] = check_home(engine, uid)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--engine", choices=["docker", "podman"], help="default: docker if on PATH, else podman"
    )
    parser.add_argument(
        "--offline-build",
        action="store_true",
        help="only build the project's image with --network none and time it",
    )
    args = parser.parse_args(argv)
    cache = Path(
        os.environ.get("CHARLM_CONTAINER_CACHE")
        or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "charlm-container"
    )
    timer = Timer()
    summary: dict = {"engine": None, "cache": str(cache), "data": os.environ.get("CHARLM_DATA")}
    report = SCRATCH / ("offline-build.json" if args.offline_build else "summary.json")
    try:
        if not args.offline_build and SCRATCH.exists():
            shutil.rmtree(SCRATCH)
        SCRATCH.mkdir(parents=True, exist_ok=True)
        engine = find_engine(args.engine)
        summary["engine"] = engine.name
        if args.offline_build:
            summary.update(offline_build(engine))
            ok = summary["within_a_minute"]
        else:
            summary["checks"] = full_check(engine, cache, timer)
            ok = True
    except CheckFailed as exc:
        log(f"FAILED: {exc}")
        summary["failed"] = str(exc)
        ok = False
    summary["seconds"] = timer.steps | {"total": round(time.monotonic() - timer.start, 1)}
    summary["ok"] = ok
    report.write_text(json.dumps(summary, indent=1) + "\n")
    for name, value in summary.get("checks", {}).items():
        log(f"ok: {name}: {value}")
    log(f"times (s): {summary['seconds']}")
    log(("PASSED" if ok else "FAILED") + f"; summary in {report}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
