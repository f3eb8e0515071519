"""scripts/gpu-sweep.sh end to end on the CPU at a tiny size: versions, benchmark, the
determinism check, a 2-rank sweep and the published copy, in at most 8 returned files."""

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

from conftest import REPO, write_sweep


def test_gpu_script_runs_end_to_end_on_cpu(tmp_path, data_path):
    config = write_sweep(tmp_path / "tiny.toml")
    out = tmp_path / "out"
    env = {
        **os.environ,
        "CONFIG": str(config),
        "NPROC": "2",
        "WORK": str(tmp_path / "work"),
        "PYTHON": sys.executable,
        "BENCH_ITERS": "3",
        "CHECK_ITERS": "4",
    }
    proc = subprocess.run(
        ["bash", str(REPO / "scripts/gpu-sweep.sh"), str(data_path), str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    files = sorted(p.name for p in out.iterdir())
    assert files == ["bench.json", "determinism.json", "gpu-sweep.log", "published.tar.gz"]
    assert len(files) <= 8
    check = json.loads((out / "determinism.json").read_text())
    assert check["identical"] and check["digests"][0] == check["digests"][1]
    assert check["trial"] == "gelu-s0" and check["max_iters"] == 4
    bench = json.loads((out / "bench.json").read_text())
    assert bench["figures"]["iters"] == 3 and bench["figures"]["tokens_per_s"] > 0
    with tarfile.open(out / "published.tar.gz") as tar:
        names = tar.getnames()
        tar.extractall(tmp_path / "unpacked", filter="data")
    assert "published/results.json" in names and "published/SHA256SUMS" in names
    assert not any(n.endswith("weights.safetensors") for n in names)
    published = tmp_path / "unpacked" / "published"
    results = json.loads((published / "results.json").read_text())
    assert len(results["trials"]) == 4
    check = subprocess.run(["sha256sum", "--quiet", "-c", "SHA256SUMS"], cwd=published)
    assert check.returncode == 0
    log = (out / "gpu-sweep.log").read_text()
    assert "== (a) device and library versions" in log and "torch" in log
    assert Path(str(out)).is_dir()
