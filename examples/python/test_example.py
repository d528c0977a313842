"""Runs the Python host against `host-harness simulate`, started as a separate process.

Needs HOST_HARNESS (the host-harness binary) and COMPONENT (the release component) in the
environment; `test.sh` provides both.
"""

import json
import os
import queue
import secrets
import subprocess
import sys
import threading
import unittest
import urllib.error
import urllib.request
from pathlib import Path

from defender_host import ActionFailed, Budgets, DefenderHost, Tenant

HERE = Path(__file__).resolve().parent
HOST_HARNESS = os.environ["HOST_HARNESS"]
COMPONENT = os.environ["COMPONENT"]
TOKEN = "python-example-" + secrets.token_hex(8)
SHA1 = "87662bc3d60e4200ceaf7aae249d1c343f4b83c9"
COMMENT = "Quarantine per alert 441688558380765161_2136280442"


def new_machine_id() -> str:
    return secrets.token_hex(20)


class Simulator:
    """`host-harness simulate` in its own process: its base URL, and the requests it answered
    (one JSON line each on its stdout)."""

    def __init__(self) -> None:
        env = dict(os.environ, MDE_TOKEN=TOKEN)
        self.process = subprocess.Popen(
            [HOST_HARNESS, "simulate", "--port", "0"], env=env,
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        assert self.process.stdout is not None
        self.base_url = self.process.stdout.readline().strip()
        if not self.base_url.startswith("http://127.0.0.1:"):
            raise RuntimeError(f"the simulator did not start: {self.base_url!r}")
        self._lines: "queue.Queue[str]" = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._lines.put(line)

    def exchanges(self) -> list:
        """The requests answered since the last call: sends a marker request of its own and
        returns every exchange logged before the marker's, so none can be missed."""
        marker = "/api/machineactions/marker-" + secrets.token_hex(8)
        try:
            urllib.request.urlopen(self.base_url + marker, timeout=10)
        except urllib.error.HTTPError:
            pass  # the marker is answered 401: it carries no token
        seen = []
        while True:
            exchange = json.loads(self._lines.get(timeout=10))
            if exchange["path"] == marker:
                return seen
            seen.append(exchange)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


class ExampleTest(unittest.TestCase):
    simulator: Simulator

    @classmethod
    def setUpClass(cls) -> None:
        cls.simulator = Simulator()

    @classmethod
    def tearDownClass(cls) -> None:
        cls.simulator.stop()

    def setUp(self) -> None:
        self.simulator.exchanges()  # start each test with an empty log

    def run_example(self, machine_id: str, token: str = TOKEN) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, str(HERE / "stop_and_quarantine.py"),
             "--component", COMPONENT, "--machine-id", machine_id, "--sha1", SHA1,
             "--comment", COMMENT, "--api-url", self.simulator.base_url],
            env=dict(os.environ, MDE_TOKEN=token), capture_output=True, text=True, timeout=120)

    def test_the_example_sends_the_exact_request_and_prints_the_action(self) -> None:
        machine_id = new_machine_id()
        run = self.run_example(machine_id)
        self.assertEqual(run.returncode, 0, run.stderr)
        action = json.loads(run.stdout)
        self.assertEqual(action["type"], "StopAndQuarantineFile")
        self.assertEqual(action["status"], "Pending")
        self.assertEqual(action["machineId"], machine_id)
        self.assertEqual(action["requestorComment"], COMMENT)
        self.assertEqual(action["relatedFileInfo"],
                         {"fileIdentifier": SHA1, "fileIdentifierType": "Sha1"})
        self.assertRegex(action["id"], r"^[0-9a-f-]{36}$")
        # Members the component's record does not model come through, as the API sent them.
        self.assertEqual((action["commands"], action["externalId"]), ([], None))
        exchanges = self.simulator.exchanges()
        authority = self.simulator.base_url.removeprefix("http://")
        for exchange in exchanges:
            hosts = [value for name, value in exchange.pop("headers") if name == "host"]
            self.assertEqual(hosts, [authority], "one Host header, naming the API (RFC 9112)")
        self.assertEqual(exchanges, [{
            "method": "POST",
            "path": f"/api/machines/{machine_id}/StopAndQuarantineFile",
            "version": "HTTP/1.1",
            "host": authority,
            "contentType": "application/json",
            "authorized": True,
            "body": json.dumps({"Comment": COMMENT, "Sha1": SHA1}, separators=(",", ":")),
            "status": 201,
        }])
        self.assertNotIn(TOKEN, run.stdout + run.stderr)

    def test_bad_input_names_the_field_and_sends_nothing(self) -> None:
        run = self.run_example("not-a-device")
        self.assertEqual(run.returncode, 2)
        self.assertEqual(run.stdout, "")
        error = json.loads(run.stderr)
        self.assertEqual(error["error"], "invalid-input")
        self.assertEqual(error["field"], "machine-id")
        self.assertEqual(self.simulator.exchanges(), [])

    def test_a_refused_token_reports_the_api_error_with_its_correlation_id(self) -> None:
        run = self.run_example(new_machine_id(), token="not-the-tenant-token")
        self.assertEqual(run.returncode, 1)
        error = json.loads(run.stderr)
        self.assertEqual(error["error"], "unauthorized")
        self.assertEqual((error["status"], error["code"]), (401, "Unauthorized"))
        self.assertRegex(error["target"], r"^[0-9a-f-]{36}$")
        self.assertNotIn("not-the-tenant-token", run.stderr)
        # The component asks once more with a fresh credential, then reports.
        self.assertEqual([e["status"] for e in self.simulator.exchanges()], [401, 401])

    def test_the_tenant_rate_limiter_stops_calls_before_they_are_sent(self) -> None:
        os.environ["EXAMPLE_TEST_TOKEN"] = TOKEN
        host = DefenderHost(COMPONENT)
        tenant = Tenant(api_base_url=self.simulator.base_url, token_env="EXAMPLE_TEST_TOKEN",
                        budgets=Budgets(per_minute=100, per_hour=1))
        first = host.stop_and_quarantine(tenant, new_machine_id(), SHA1, COMMENT)
        self.assertEqual(first["status"], "Pending")
        with self.assertRaises(ActionFailed) as refused:
            host.stop_and_quarantine(tenant, new_machine_id(), SHA1, COMMENT)
        self.assertEqual(refused.exception.kind, "rate-limited")
        self.assertGreater(refused.exception.details["retry-after-ms"], 3_500_000)
        self.assertEqual([e["status"] for e in self.simulator.exchanges()], [201])


if __name__ == "__main__":
    unittest.main()
