#!/usr/bin/env bash
# Regenerate every lock file in requirements/ from its .in file (hashes for all platforms
# that the index offers). Run from anywhere, with pip-tools installed (the project's .venv has it):
#     requirements/compile.sh            # keep current pins where still allowed
#     requirements/compile.sh --upgrade  # move every pin to the newest allowed release
# Runs on Python 3.11 (the oldest supported); then check the locks still install on 3.12:
#     see requirements/README.md ("Checking a lock").
set -euo pipefail
cd "$(dirname "$0")"
PIP_COMPILE=${PIP_COMPILE:-../.venv/bin/pip-compile}
export CUSTOM_COMPILE_COMMAND="requirements/compile.sh"
common=(--quiet --generate-hashes --strip-extras --resolver=backtracking
        --no-emit-index-url --no-emit-find-links --no-emit-trusted-host "$@")
# order matters: test.in is constrained by runtime.txt, lint.in by test.txt
"$PIP_COMPILE" "${common[@]}" --allow-unsafe -o build.txt build.in
"$PIP_COMPILE" "${common[@]}" --allow-unsafe -o runtime.txt runtime.in
"$PIP_COMPILE" "${common[@]}" --allow-unsafe -o test.txt test.in
"$PIP_COMPILE" "${common[@]}" -o lint.txt lint.in
"$PIP_COMPILE" "${common[@]}" -o ci.txt ci.in
# numpy is left out of docker.txt (the container's own build stays); see docker.in
"$PIP_COMPILE" "${common[@]}" --unsafe-package numpy -o docker.txt docker.in
