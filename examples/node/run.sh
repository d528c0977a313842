#!/usr/bin/env bash
# Stops and quarantines a file on one device through the component, from Node.js:
#   ./run.sh --machine-id ID --sha1 SHA1 --comment TEXT [--api-url URL] [--token-env VAR]
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
"$here/setup.sh" >/dev/null
exec node "$here/stop-and-quarantine.js" "$@"
