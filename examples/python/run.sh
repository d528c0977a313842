#!/usr/bin/env bash
# Stops and quarantines a file on one device through the component, from Python:
#   ./run.sh --machine-id ID --sha1 SHA1 --comment TEXT [--api-url URL] [--token-env VAR]
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
"$here/setup.sh" >/dev/null
exec "$here/.venv/bin/python" "$here/stop_and_quarantine.py" \
    --component "$here/../build/defender.wasm" "$@"
