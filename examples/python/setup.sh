#!/usr/bin/env bash
# Writes the component to ../build/defender.wasm and installs the pinned wasmtime into .venv;
# prints the host-harness binary's path.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
"$here/../component.sh"
[ -x "$here/.venv/bin/python" ] || python3 -m venv "$here/.venv"
"$here/.venv/bin/pip" install --quiet --disable-pip-version-check --require-hashes \
    -r "$here/requirements.txt" >&2
