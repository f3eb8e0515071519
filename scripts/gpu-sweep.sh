#!/usr/bin/env bash
# The full study (configs/full.toml: 3 activations x 3 seeds, the study protocol; CONFIG=
# configs/full-nanogpt.toml for the nanoGPT recipe) on one GPU in one command, for a GPU
# machine lent for minutes with no network: see usage() below, or run with --help.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
PYTHON="${PYTHON:-python3}"
TIME_BUDGET_S="${TIME_BUDGET_S:-540}"
PREFLIGHT_S="${PREFLIGHT_S:-45}"
FINISH_S="${FINISH_S:-75}"
WORK="${WORK:-$REPO/runs/gpu-sweep}"
# the packages a bare GPU machine may lack: their wheels travel beside the repository
WHEEL_PACKAGES="jsonschema referencing rpds-py jsonschema-specifications"
WHEEL_PYTHON="${WHEEL_PYTHON:-3.12}"
# --tiny: configs/full.toml's nine trials at a size two CPU cores train in seconds
TINY_SETS=(
    model.n_layer=1 model.n_head=2 model.n_embd=32 model.block_size=32
    train.max_iters=20 train.eval_interval=20 train.batch_size=8 train.eval_iters=2
    train.eval_batch_size=1024 'train.precision="fp32"' 'train.device="cpu"' train.threads=1
    report.sample_tokens=40 report.pd_batch_size=1024
)

usage() {
    local gpu_limit=$((TIME_BUDGET_S - PREFLIGHT_S - FINISH_S))
    cat <<EOF
usage: scripts/gpu-sweep.sh [--tiny] [--wheels DIR] DATA OUT
       scripts/gpu-sweep.sh --fetch-wheels DIR
       scripts/gpu-sweep.sh --help

Trains configs/full.toml's 9 trials on one GPU as ranks that share it, checks
determinism inside the sweep, computes prediction differences and samples on
the GPU, renders the report and publishes it (no weights; their digests are
in results.json), all within TIME_BUDGET_S (now ${TIME_BUDGET_S} s):

  step                                              budget
  (a) preflight: wheels, versions, imports, CUDA    ${PREFLIGHT_S} s (exit 2 at once
      and the data file's SHA-256                     naming what is missing)
  (b) sweep: NPROC ranks (9 trials + the check),    what is left, about
      stopped cleanly (state saved) at its limit      ${gpu_limit} s
  (c) rank 0: determinism verdict, prediction       } FINISH_S, ${FINISH_S} s
      differences, samples, report, SHA256SUMS      }
  (d) publication: published.tar.gz, summary.json   }

The determinism check is one more share of the sweep: a second copy of its
first trial (its weights digest must equal the trial's) and a CHECK_STEPS-step
run stopped halfway, reloaded and continued (must equal the run straight
through). Run the same command again on the same machine to resume: finished
trials and checks are kept in WORK.

  DATA  tiny Shakespeare's input.txt (checked against its SHA-256)
  OUT   what comes back, at most 5 files: gpu-sweep.log (all output),
        records.tar.gz (every trial's trial.json and log.jsonl, rewritten as
        each trial finishes), summary.json (steps, times, throughput),
        determinism.json and published.tar.gz (when the sweep finished)

Options:
  --wheels DIR        install DIR/*.whl into WORK/site first (default
                      ../wheels beside the repository, when it exists)
  --fetch-wheels DIR  download into DIR (needs PyPI), hash-checked against
                      requirements/runtime.txt, the wheels for Python $WHEEL_PYTHON
                      on x86_64 manylinux of jsonschema, referencing, rpds-py
                      and jsonschema-specifications (WHEEL_PYTHON to change)
  --tiny              a rehearsal on the CPU: full.toml at 1 layer x 32, 20
                      steps, 2 ranks; every step runs as on the GPU
Environment: TIME_BUDGET_S (540), PREFLIGHT_S (45), FINISH_S (75), NPROC (10;
--tiny 2), CHECK_STEPS (40; --tiny 10), WORK (runs/gpu-sweep), PYTHON
(python3), CONFIG (configs/full.toml), SWEEP_TIME_LIMIT_S (the sweep's
--time-limit; default what is left of the budget less FINISH_S).
Exit status: 0 published; 75 stopped at the time budget (run it again);
1 a trial or the determinism check failed; 2 bad input or not ready.
EOF
}

fail() {
    echo "gpu-sweep: $*" >&2
    exit 2
}

fetch_wheels() {
    local dest="$1" req
    mkdir -p "$dest"
    req="$(mktemp)"
    # the hash-pinned entries of requirements/runtime.txt for WHEEL_PACKAGES
    "$PYTHON" - "$REPO/requirements" $WHEEL_PACKAGES >"$req" <<'EOF'
import importlib.util
import sys
from pathlib import Path

folder, wanted = Path(sys.argv[1]), set(sys.argv[2:])
spec = importlib.util.spec_from_file_location("container", folder / "container.py")
container = importlib.util.module_from_spec(spec)
spec.loader.exec_module(container)
entries = dict(container.lock_entries(folder / "runtime.txt"))
missing = sorted(wanted - set(entries))
if missing:
    sys.exit(f"gpu-sweep: {', '.join(missing)} not pinned in requirements/runtime.txt")
print("\n".join(entries[name] for name in sorted(wanted)))
EOF
    "$PYTHON" -m pip download --quiet --disable-pip-version-check --no-deps \
        --only-binary=:all: --require-hashes -r "$req" -d "$dest" \
        --python-version "$WHEEL_PYTHON" --implementation cp \
        --abi "cp${WHEEL_PYTHON/./}" --platform manylinux_2_28_x86_64 \
        --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
        || { rm -f "$req"; fail "downloading the wheels failed (see pip's message above)"; }
    rm -f "$req"
    echo "wheels for Python $WHEEL_PYTHON in $dest:"
    ls -1 "$dest"
}

TINY=0
WHEELS="${WHEELS:-}"
ARGS=()
while (($#)); do
    case "$1" in
        -h | --help) usage; exit 0 ;;
        --tiny) TINY=1; shift ;;
        --wheels) [[ $# -ge 2 ]] || fail "--wheels needs a directory"; WHEELS="$2"; shift 2 ;;
        --fetch-wheels)
            [[ $# -eq 2 ]] || fail "usage: scripts/gpu-sweep.sh --fetch-wheels DIR"
            fetch_wheels "$2"
            exit 0
            ;;
        --) shift; ARGS+=("$@"); break ;;
        -*) fail "unknown option $1 (see --help)" ;;
        *) ARGS+=("$1"); shift ;;
    esac
done
[[ ${#ARGS[@]} -eq 2 ]] || fail "usage: scripts/gpu-sweep.sh [--tiny] [--wheels DIR] DATA OUT"
[[ -f "${ARGS[0]}" ]] || fail "data file ${ARGS[0]} not found (tiny Shakespeare's input.txt)"
DATA="$(cd "$(dirname "${ARGS[0]}")" && pwd -P)/$(basename "${ARGS[0]}")"
if [[ -z "$WHEELS" && -d "$REPO/../wheels" ]]; then
    WHEELS="$REPO/../wheels"
fi
if [[ -n "$WHEELS" ]]; then
    [[ -d "$WHEELS" ]] || fail "--wheels $WHEELS: no such directory"
    WHEELS="$(cd "$WHEELS" && pwd -P)"
fi
mkdir -p "${ARGS[1]}" "$WORK"
OUT="$(cd "${ARGS[1]}" && pwd -P)"
WORK="$(cd "$WORK" && pwd -P)"
CONFIG="${CONFIG:-configs/full.toml}"
(cd "$REPO" && [[ -f "$CONFIG" ]]) || fail "config $CONFIG not found (relative to $REPO)"
SETS=()
if ((TINY)); then
    NPROC="${NPROC:-2}" CHECK_STEPS="${CHECK_STEPS:-10}" DEVICE=cpu
    RUN="$WORK/tiny"
    for s in "${TINY_SETS[@]}"; do SETS+=(--set "$s"); done
else
    NPROC="${NPROC:-10}" CHECK_STEPS="${CHECK_STEPS:-40}" DEVICE=cuda
    RUN="$WORK/sweep"
fi
LOG="$OUT/gpu-sweep.log"
STEPS="$WORK/steps.jsonl"
cd "$REPO"
export CHARLM_DATA="$DATA" PYTHONHASHSEED=0 CUBLAS_WORKSPACE_CONFIG=:4096:8 PYTHONUNBUFFERED=1

# step NAME BUDGET SECONDS STATUS TEXT: a line of WORK/steps.jsonl (for the summary) and one
# of the log; a step's budget is the time it may take: the sweep's is its training limit plus
# FINISH_S, which also covers the publication
step() {
    printf '{"launch": %d, "step": "%s", "budget_s": %s, "seconds": %d, "status": %d}\n' \
        "$LAUNCH" "$1" "$2" "$3" "$4" >>"$STEPS"
    printf '== %s: %d s (budget %s s)\n' "$5" "$3" "$2"
}

install_wheels() {
    local site="$WORK/site" stamp wheels=()
    [[ -n "$WHEELS" ]] || return 0
    shopt -s nullglob
    wheels=("$WHEELS"/*.whl)
    shopt -u nullglob
    ((${#wheels[@]})) || fail "--wheels $WHEELS holds no .whl file"
    stamp="$(cd "$WHEELS" && ls -l -- *.whl)"
    if [[ ! -f "$site/.wheels" || "$(<"$site/.wheels")" != "$stamp" ]]; then
        rm -rf "$site.tmp"
        if ! "$PYTHON" -m pip install --quiet --disable-pip-version-check --no-index --no-deps \
            --no-compile --no-cache-dir --target "$site.tmp" "${wheels[@]}" \
            >"$WORK/pip.log" 2>&1; then
            fail "installing the wheels of $WHEELS failed: $(tail -n 1 "$WORK/pip.log")"
        fi
        printf '%s\n' "$stamp" >"$site.tmp/.wheels"
        rm -rf "$site"
        mv "$site.tmp" "$site"
    fi
    export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
}

main() {
    local started=$SECONDS t0 limit budget rc status=0 file names=()
    # (a) preflight: prints nothing but its one line when something is missing
    install_wheels
    "$PYTHON" -m reproduce.preflight --device "$DEVICE" --data "$DATA" \
        --json "$WORK/preflight.json" || exit 2
    step preflight "$PREFLIGHT_S" $((SECONDS - started)) 0 "(a) preflight"

    # (b) the sweep, with (c) rank 0's finish inside it
    if [[ -n "${SWEEP_TIME_LIMIT_S:-}" ]]; then
        limit="$SWEEP_TIME_LIMIT_S"
    else
        limit=$((TIME_BUDGET_S - (SECONDS - started) - FINISH_S))
        if ((limit < 10)); then
            echo "gpu-sweep: only ${limit} s of TIME_BUDGET_S left for training: not started"
            return 75
        fi
    fi
    echo "== (b) sweep: $NPROC ranks, $CONFIG${SETS[*]:+ (tiny)}, training stops by ${limit} s;"
    echo "   (c) then the check's verdict, PD, samples, report: FINISH_S ${FINISH_S} s"
    rm -f "$WORK/status"
    t0=$SECONDS
    set +e
    "$PYTHON" -m torch.distributed.run --standalone --nproc_per_node="$NPROC" \
        -m reproduce run --config "$CONFIG" ${SETS[@]+"${SETS[@]}"} --out "$RUN" \
        --time-limit "$limit" --determinism-check "$CHECK_STEPS" \
        --snapshot "$OUT/records.tar.gz" --status-file "$WORK/status"
    rc=$?
    set -e
    if [[ -f "$WORK/status" ]]; then
        status="$(<"$WORK/status")"
    else
        status=$rc
    fi
    if [[ -d "$RUN" ]]; then  # the records as they are now, whatever happened to the ranks
        "$PYTHON" -m reproduce.checks snapshot "$RUN" "$OUT/records.tar.gz" || true
    fi
    budget="$(awk -v limit="$limit" -v finish="$FINISH_S" 'BEGIN { print limit + finish }')"
    step sweep "$budget" $((SECONDS - t0)) "$status" "(b, c) sweep and rank 0's finish"
    case "$status" in
        0) ;;
        75) echo "stopped at the time budget, state saved: run the same command again" ;;
        *) echo "the sweep exited with status $status (torchrun: $rc)" ;;
    esac

    # (d) the publication, when the sweep finished (also when the check found a difference)
    t0=$SECONDS
    if [[ -f "$RUN/checks/determinism.json" ]]; then
        cp "$RUN/checks/determinism.json" "$OUT/determinism.json"
    fi
    if [[ ("$status" == 0 || "$status" == 1) && -f "$RUN/results.json" ]]; then
        rm -rf "$WORK/published"
        "$PYTHON" -m reproduce publish "$RUN" "$WORK/published"
        (cd "$WORK/published" && sha256sum --quiet -c SHA256SUMS)
        tar -czf "$OUT/.published.tar.gz.tmp" -C "$WORK" published
        mv "$OUT/.published.tar.gz.tmp" "$OUT/published.tar.gz"
    fi
    step publish "$FINISH_S" $((SECONDS - t0)) 0 "(d) publication"
    "$PYTHON" -m reproduce.checks summary "$RUN" "$STEPS" "$OUT/summary.json" \
        --preflight "$WORK/preflight.json"
    for file in "$OUT"/*; do names+=("$(basename "$file")"); done
    echo "gpu-sweep: status $status after $((SECONDS - started)) s (TIME_BUDGET_S $TIME_BUDGET_S s)"
    echo "  in $OUT: ${names[*]}"
    return "$status"
}

LAUNCH=1
if [[ -f "$WORK/launches" ]]; then LAUNCH=$(($(<"$WORK/launches") + 1)); fi
echo "$LAUNCH" >"$WORK/launches"
printf '\n=== gpu-sweep.sh, launch %d, %s\n' "$LAUNCH" "$(date -u +%FT%TZ)" >>"$LOG"
set +e
main 2>&1 | tee -a "$LOG"
status=${PIPESTATUS[0]}
exit "$status"
