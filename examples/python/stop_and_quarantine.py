"""Stop and quarantine a file on one Defender for Endpoint device through the component.

    python stop_and_quarantine.py --component defender.wasm --machine-id ID --sha1 SHA1 \\
        --comment TEXT [--api-url URL] [--token-env VAR]

Prints the MachineAction as JSON on stdout and exits 0; on failure prints the component's error
as JSON on stderr and exits 1 (2 for bad input, which never reaches the API).
"""

import argparse
import json
import sys

from defender_host import ActionFailed, DefenderHost, Tenant


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--component", required=True, help="the defender component (.wasm)")
    parser.add_argument("--machine-id", required=True, help="the device's ID (40 hex characters)")
    parser.add_argument("--sha1", required=True, help="the file's SHA-1 (40 hex characters)")
    parser.add_argument("--comment", required=True, help="why; attached to the action")
    parser.add_argument("--api-url", default="https://api.security.microsoft.com",
                        help="the tenant's API base URL")
    parser.add_argument("--token-env", default="MDE_TOKEN",
                        help="the environment variable holding the bearer token")
    args = parser.parse_args()

    host = DefenderHost(args.component)
    tenant = Tenant(api_base_url=args.api_url, token_env=args.token_env)
    try:
        action = host.stop_and_quarantine(tenant, args.machine_id, args.sha1, args.comment)
    except ActionFailed as failure:
        json.dump({"error": failure.kind, **failure.details}, sys.stderr)
        sys.stderr.write("\n")
        return 2 if failure.kind == "invalid-input" else 1
    json.dump(action, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
