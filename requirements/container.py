"""Install-time helper for the Docker image (runs inside nvcr.io/nvidia/pytorch:24.11-py3).

The image must keep the container's own builds (torch, and numpy/scipy that torch was built
against) and add, hash-pinned, only what the container lacks. Commands:

``snapshot``
    Print the installed distributions as JSON ``{normalized name: version}``.
``select LOCK``
    Print the entries of the hash-locked file LOCK (pip-compile --generate-hashes output) whose
    distribution is NOT installed, one per line with its hashes, ready for
    ``pip install --no-deps --require-hashes -r``. Installed distributions are skipped whatever
    their version, so nothing the container ships is ever replaced.
``check --torch-version V [--before SNAPSHOT] [--project NAME]``
    Fail (exit 1, one line per problem) unless ``torch.__version__ == V``; no distribution in
    SNAPSHOT was removed or changed version; every requirement of NAME (default charlm-repro, if
    installed) and of every distribution added since SNAPSHOT is satisfied. Pre-releases count
    (the container's torch is 2.6.0a0+...).

Standard library only, plus ``packaging`` (pip's vendored copy if the module is absent).
"""

from __future__ import annotations

import argparse
import importlib.metadata as metadata
import json
import re
import sys
from pathlib import Path

try:
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name
    from packaging.version import Version
except ImportError:  # pragma: no cover - pip always vendors packaging
    from pip._vendor.packaging.requirements import Requirement
    from pip._vendor.packaging.utils import canonicalize_name
    from pip._vendor.packaging.version import Version

PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)")


def installed() -> dict[str, str]:
    """Normalized name -> version of every distribution on sys.path (first one wins)."""
    found: dict[str, str] = {}
    for dist in metadata.distributions():
        name = dist.metadata["Name"]
        if name:
            found.setdefault(canonicalize_name(name), dist.version)
    return found


def lock_entries(path: Path) -> list[tuple[str, str]]:
    """(normalized name, one-line entry with hashes) for each pinned requirement in ``path``.

    Raises ValueError for a requirement line that is not ``name==version`` with hashes.
    """
    text = path.read_text(encoding="utf-8")
    logical: list[str] = []
    current = ""
    for raw in text.splitlines():
        line = raw.split(" #", 1)[0].strip() if not raw.lstrip().startswith("#") else ""
        if not line:
            continue
        if line.endswith("\\"):
            current += line[:-1].strip() + " "
            continue
        logical.append((current + line).strip())
        current = ""
    if current.strip():
        logical.append(current.strip())
    entries = []
    for line in logical:
        match = PIN.match(line)
        if not match or "--hash=" not in line:
            raise ValueError(f"{path}: not a hash-pinned requirement: {line!r}")
        entries.append((canonicalize_name(match.group(1)), line))
    return entries


def unmet(requirement: str, have: dict[str, str]) -> str | None:
    """Why ``requirement`` is not satisfied by ``have`` (None if it is, or if its marker is off)."""
    req = Requirement(requirement)
    if req.marker is not None and not req.marker.evaluate({"extra": ""}):
        return None
    version = have.get(canonicalize_name(req.name))
    if version is None:
        return f"{req.name} is not installed"
    if req.specifier and not req.specifier.contains(Version(version), prereleases=True):
        return f"{req.name} {version} does not satisfy {req}"
    return None


def check(torch_version: str, before: dict[str, str] | None, project: str) -> list[str]:
    """The list of problems found (empty when the environment is as it must be)."""
    problems = []
    import torch  # imported here: the other commands must not need it

    if torch.__version__ != torch_version:
        problems.append(f"torch.__version__ is {torch.__version__}, expected {torch_version}")
    have = installed()
    added = set(have)
    if before is not None:
        for name, version in sorted(before.items()):
            if have.get(name) != version:
                problems.append(f"container package {name} {version} became {have.get(name)}")
        added -= set(before)
    owners = sorted(added | ({canonicalize_name(project)} & set(have)))
    for owner in owners:
        for requirement in metadata.requires(owner) or []:
            reason = unmet(requirement, have)
            if reason:
                problems.append(f"{owner} needs {requirement}: {reason}")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("snapshot")
    select = sub.add_parser("select")
    select.add_argument("lock", type=Path)
    checker = sub.add_parser("check")
    checker.add_argument("--torch-version", required=True)
    checker.add_argument("--before", type=Path)
    checker.add_argument("--project", default="charlm-repro")
    args = parser.parse_args(argv)

    if args.command == "snapshot":
        print(json.dumps(installed(), indent=1, sort_keys=True))
        return 0
    if args.command == "select":
        have = installed()
        for name, entry in lock_entries(args.lock):
            if name not in have:
                print(entry)
        return 0
    before = json.loads(args.before.read_text()) if args.before else None
    problems = check(args.torch_version, before, args.project)
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    if not problems:
        print(f"ok: torch {args.torch_version}; container packages unchanged; requirements met")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
