#!/usr/bin/env bash
# Runs the Node example's tests against `host-harness simulate` (a separate process).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
harness="$("$here/setup.sh")"
cd "$here"
HOST_HARNESS="$harness" node --test test/
