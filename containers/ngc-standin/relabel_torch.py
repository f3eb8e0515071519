"""Give the installed torch NVIDIA's version label, as the stand-in for NVIDIA's image needs.

``python relabel_torch.py VERSION`` rewrites ``torch.__version__`` (torch/version.py) and the
installed distribution (its dist-info directory name, METADATA's Version and RECORD, with the
new files' digests) so that both ``torch.__version__`` and ``importlib.metadata.version("torch")``
read VERSION, as they do in nvcr.io/nvidia/pytorch:24.11-py3. The code itself is unchanged.
Standard library only; exits 1 with one line if torch or its files are not where expected.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.metadata as metadata
import re
import sys
from pathlib import Path


def _record_digest(path: Path) -> str:
    """RECORD's form of a file digest: sha256=<urlsafe base64, no padding>."""
    raw = hashlib.sha256(path.read_bytes()).digest()
    return "sha256=" + base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def relabel(version: str, path: list[str] | None = None) -> str:
    """Rewrite torch's version label in place (see the module docstring); returns the old one.

    ``path``: where to look for the installed torch (default: sys.path). Raises
    PackageNotFoundError (no torch there), RuntimeError (torch/version.py has no __version__).
    """
    found = list(metadata.distributions(name="torch", path=path or sys.path))
    if not found:
        raise metadata.PackageNotFoundError("torch")
    dist = found[0]
    old = dist.version
    info = Path(dist._path)  # the dist-info directory
    site = info.parent
    version_py = site / "torch" / "version.py"
    text = version_py.read_text()
    text, count = re.subn(r"^__version__ = .*$", f"__version__ = {version!r}", text, flags=re.M)
    if count != 1:
        raise RuntimeError(f"{version_py} has no __version__ line")
    version_py.write_text(text)
    meta = info / "METADATA"
    text = re.sub(r"^Version: .*$", f"Version: {version}", meta.read_text(), count=1, flags=re.M)
    meta.write_text(text)
    new_info = site / f"torch-{version}.dist-info"
    info.rename(new_info)
    changed = {"torch/version.py": version_py, f"{new_info.name}/METADATA": new_info / "METADATA"}
    lines = []
    for line in (new_info / "RECORD").read_text().splitlines():
        entry, _, rest = line.partition(",")
        entry = entry.replace(f"{info.name}/", f"{new_info.name}/", 1)
        if entry in changed:
            file = changed[entry]
            rest = f"{_record_digest(file)},{file.stat().st_size}"
        lines.append(f"{entry},{rest}")
    (new_info / "RECORD").write_text("\n".join(lines) + "\n")
    return old


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: relabel_torch.py VERSION")
    try:
        print(f"torch {relabel(sys.argv[1])} relabelled {sys.argv[1]}")
    except (metadata.PackageNotFoundError, OSError, RuntimeError) as exc:
        sys.exit(f"relabel_torch: {exc}")
