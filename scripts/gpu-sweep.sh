#!/usr/bin/env bash
# The full study sweep on one GPU inside one short command, for a lent GPU machine with no
# internet and no copy of ../shared (hence the data path argument).
#
#   scripts/gpu-sweep.sh DATA OUT
#
#   DATA  tiny Shakespeare's input.txt (checked against its SHA-256)
#   OUT   directory for what comes back; at most 4 files:
#         gpu-sweep.log     everything printed
#         bench.json        (b) the benchmark of the config's settings
#         determinism.json  (c) two short runs of one trial: weights digests and whether equal
#         published.tar.gz  (e) `publish` of the sweep (results.json, SHA256SUMS, report,
#                           figures, logs; no weights, their digests are in results.json):
#                           unpack with `tar -xzf published.tar.gz -C artifacts/` and rename
#                           the folder to full-<gpu>
#
# Settings (environment): CONFIG (configs/full.toml), NPROC (ranks sharing the GPU, default 9:
# one trial each), TIME_BUDGET_S (whole script, default 510 s: the sweep stops cleanly before
# it, state saved; run the script again at once to resume), WORK (run directories, default
# /tmp/charlm-gpu; kept between commands so a second command resumes), BENCH_ITERS (30),
# CHECK_ITERS (30). Exit status: 0 when the sweep finished and published, 75 when it stopped at
# the time budget (rerun), 1 on a failure (the determinism check failing included).
set -euo pipefail

if [[ $# -ne 2 ]]; then
    echo "usage: scripts/gpu-sweep.sh DATA OUT (see the comments at the top)" >&2
    exit 2
fi
DATA="$(cd "$(dirname "$1")" && pwd -P)/$(basename "$1")"
OUT="$2"
CONFIG="${CONFIG:-configs/full.toml}"
NPROC="${NPROC:-9}"
TIME_BUDGET_S="${TIME_BUDGET_S:-510}"
WORK="${WORK:-/tmp/charlm-gpu}"
BENCH_ITERS="${BENCH_ITERS:-30}"
CHECK_ITERS="${CHECK_ITERS:-30}"
PYTHON="${PYTHON:-python3}"

cd "$(dirname "${BASH_SOURCE[0]}")/.."
mkdir -p "$OUT" "$WORK"
OUT="$(cd "$OUT" && pwd -P)"
exec > >(tee "$OUT/gpu-sweep.log") 2>&1
export CHARLM_DATA="$DATA" PYTHONHASHSEED=0 CUBLAS_WORKSPACE_CONFIG=:4096:8 PYTHONUNBUFFERED=1
status=0

echo "== (a) device and library versions"
"$PYTHON" - <<'EOF'
import platform, torch, numpy, scipy, matplotlib, jinja2, safetensors
print("python", platform.python_version(), "| torch", torch.__version__, "| cuda", torch.version.cuda,
      "| cudnn", torch.backends.cudnn.version() if torch.cuda.is_available() else None)
print("numpy", numpy.__version__, "| scipy", scipy.__version__, "| matplotlib", matplotlib.__version__,
      "| jinja2", jinja2.__version__, "| safetensors", safetensors.__version__)
for i in range(torch.cuda.device_count()):
    p = torch.cuda.get_device_properties(i)
    print(f"cuda:{i}", p.name, f"{p.total_memory / 2**30:.0f} GiB", f"sm_{p.major}{p.minor}")
if not torch.cuda.is_available():
    print("no CUDA device: running on the CPU")
EOF

echo "== (b) benchmark of $CONFIG's settings ($BENCH_ITERS iterations)"
"$PYTHON" -m reproduce bench --config "$CONFIG" --iters "$BENCH_ITERS" --out "$OUT/bench.json"

echo "== (c) determinism: two short runs of one trial ($CHECK_ITERS iterations)"
first="$("$PYTHON" -m reproduce run --config "$CONFIG" --out "$WORK/check-a" --dry-run \
    | awk '/^  [a-z]/ && $2 ~ /^(new|resume|done)$/ {print $1; exit}')"
for run in a b; do
    rm -rf "$WORK/check-$run"
    "$PYTHON" -m reproduce run --config "$CONFIG" --out "$WORK/check-$run" --trials "$first" \
        --set train.max_iters="$CHECK_ITERS" --set train.eval_interval="$CHECK_ITERS"
done
if ! "$PYTHON" - "$WORK" "$first" "$OUT/determinism.json" <<'EOF'
import hashlib, json, sys
from pathlib import Path
work, trial, out = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
digests = [hashlib.sha256((work / f"check-{r}/trials/{trial}/weights.safetensors").read_bytes())
           .hexdigest() for r in "ab"]
record = json.loads((work / f"check-a/trials/{trial}/trial.json").read_text())
result = {"trial": trial, "max_iters": record["train"]["max_iters"], "digests": digests,
          "identical": digests[0] == digests[1], "environment": record["environment"]}
out.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
print(f"{trial}: {'identical' if result['identical'] else 'DIFFERENT'} weights digests {digests}")
sys.exit(0 if result["identical"] else 1)
EOF
then
    status=1
fi

echo "== (d) the sweep, $NPROC ranks sharing the device"
remaining=$(( TIME_BUDGET_S - SECONDS ))
if (( remaining < 30 )); then remaining=30; fi
set +e
"$PYTHON" -m torch.distributed.run --standalone --nproc_per_node="$NPROC" \
    -m reproduce run --config "$CONFIG" --out "$WORK/sweep" --time-limit "$remaining"
sweep_status=$?
set -e
if [[ $sweep_status -ne 0 ]]; then
    echo "sweep exited with $sweep_status (75: stopped at the time budget; run this script again)"
    exit "$sweep_status"
fi

echo "== (e) published copy"
rm -rf "$WORK/published"
"$PYTHON" -m reproduce publish "$WORK/sweep" "$WORK/published"
(cd "$WORK/published" && sha256sum --quiet -c SHA256SUMS)
tar -czf "$OUT/published.tar.gz" -C "$WORK" published
echo "done in ${SECONDS}s: $(ls "$OUT" | tr '\n' ' ')"
exit "$status"
