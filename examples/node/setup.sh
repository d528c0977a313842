#!/usr/bin/env bash
# Writes the component to ../build/defender.wasm, installs the pinned packages (npm ci) and
# transpiles the component into build/defender; prints the host-harness binary's path.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
"$here/../component.sh"
cd "$here"
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
    npm ci --no-audit --no-fund --loglevel=error >&2
fi
rm -rf build/defender
npx --no-install jco transpile ../build/defender.wasm --name defender --instantiation sync \
    --out-dir build/defender --quiet >&2
