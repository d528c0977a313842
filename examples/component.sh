#!/usr/bin/env bash
# Builds host-harness, which embeds the release component, writes the component to
# examples/build/defender.wasm, and prints the host-harness binary's path.
set -euo pipefail
examples="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
harness="$(cargo build --quiet --manifest-path "$examples/../Cargo.toml" --bin host-harness \
    --message-format=json-render-diagnostics |
    sed -n 's/.*"executable":"\([^"]*\)".*/\1/p' | tail -n 1)"
mkdir -p "$examples/build"
"$harness" component --out "$examples/build/defender.wasm"
echo "$harness"
