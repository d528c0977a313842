#!/usr/bin/env bash
# Runs the Python example's tests against `host-harness simulate` (a separate process).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
harness="$("$here/setup.sh")"
cd "$here"
HOST_HARNESS="$harness" COMPONENT="$here/../build/defender.wasm" \
    .venv/bin/python -m unittest -v test_example
