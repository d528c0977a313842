"""A Python host for the Defender for Endpoint component (PyPI `wasmtime`).

Lift `DefenderHost` into a SOAR action handler: make one per worker thread (compiling the
component takes a moment; each call then gets a fresh store and instance), describe each tenant
with a `Tenant`, and call `stop_and_quarantine`. It returns the MachineAction as the API's own
JSON, or raises `ActionFailed` with the component's error (the field at fault for bad
input; the HTTP status, the API's code, message and correlation ID for a refusal).

The host implements the component's imports in Python:
- `defender:endpoint/credentials`: the tenant's API base URL and `Bearer <token>`, the token read
  from an environment variable at each call (so a rotated token is picked up);
- `defender:endpoint/rate-limit`: a sliding-window limiter per tenant and API (each API allows
  100 calls a minute and 1500 an hour, counted per application and tenant), the API's paused
  when it answers 429;
- `defender:endpoint/progress`: ignored here (only `quarantine` with a wait reports progress).
HTTP goes out through wasmtime's own wasi-http. See README.md for what this host cannot enforce.
"""

import json
import os
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable, Deque, Dict, Optional

from wasmtime import Config, Engine, Store, WasiConfig
from wasmtime.component import Component, Linker, Record, Variant

PACKAGE = "defender:endpoint"
VERSION = "0.1.0"

# The API's MachineAction status texts, by the component's `action-status` case.
STATUS_TEXT = {
    "pending": "Pending",
    "in-progress": "InProgress",
    "succeeded": "Succeeded",
    "failed": "Failed",
    "time-out": "TimeOut",
    "cancelled": "Cancelled",
}


class RateLimiter:
    """Sliding windows over one tenant's calls: at most `per_minute` in any 60 s and
    `per_hour` in any hour; a 429's Retry-After pauses the tenant. Thread-safe."""

    def __init__(self, per_minute: int = 100, per_hour: int = 1500,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._windows = ((60.0, per_minute), (3600.0, per_hour))
        self._calls: Deque[float] = deque()
        self._paused_until = 0.0
        self._clock = clock
        self._lock = threading.Lock()

    def acquire(self) -> Optional[int]:
        """None when a call may go now; otherwise how many milliseconds to wait."""
        with self._lock:
            now = self._clock()
            while self._calls and self._calls[0] <= now - 3600.0:
                self._calls.popleft()
            wait = max(0.0, self._paused_until - now)
            for span, limit in self._windows:
                recent = [t for t in self._calls if t > now - span]
                if len(recent) >= limit:
                    wait = max(wait, recent[-limit] + span - now)
            if wait > 0:
                return max(1, int(wait * 1000))
            self._calls.append(now)
            return None

    def throttled(self, retry_after_ms: int) -> None:
        """The API said 429: no call for this tenant until `retry_after_ms` from now."""
        with self._lock:
            until = self._clock() + retry_after_ms / 1000.0
            self._paused_until = max(self._paused_until, until)


# The APIs a permit is for, as the component's `rate-limit.api` enum names them.
APIS = ("create-action", "get-action", "list-actions", "cancel-action", "file-machines")


class Budgets:
    """One RateLimiter per API: each API page gives its own limit, counted per application and
    tenant, so polling never spends what creating actions needs. Share one `Budgets` between
    the tenants that sign in as the same application."""

    def __init__(self, per_minute: int = 100, per_hour: int = 1500,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._limiters = {api: RateLimiter(per_minute, per_hour, clock) for api in APIS}

    def acquire(self, api: str) -> Optional[int]:
        """None when a call to `api` may go now; otherwise how many milliseconds to wait."""
        return self._limiters[api].acquire()

    def throttled(self, api: str, retry_after_ms: int) -> None:
        """`api` said 429: pause that API's budget (only that one)."""
        self._limiters[api].throttled(retry_after_ms)


@dataclass
class Tenant:
    """One Defender for Endpoint tenant: where its API is, which environment variable holds its
    bearer token, and its own budgets, one per API (share the `Tenant` across calls)."""

    api_base_url: str = "https://api.security.microsoft.com"
    token_env: str = "MDE_TOKEN"
    budgets: Budgets = field(default_factory=Budgets)


class ActionFailed(Exception):
    """The component's `action-error`: `kind` (e.g. `invalid-input`, `forbidden`), and
    `details`, the error's members (`field` for bad input; `status`, `code`, `message`,
    `target` for the API's refusals)."""

    def __init__(self, kind: str, details: Dict[str, Any]) -> None:
        self.kind = kind
        self.details = details
        super().__init__(f"{kind}: {details}")


class DefenderHost:
    """The compiled component and its linked imports. One per thread: calls are synchronous
    and the tenant of the call in progress is kept per thread."""

    def __init__(self, component_path: str, memory_bytes: int = 64 * 1024 * 1024,
                 time_limit_seconds: float = 120.0) -> None:
        config = Config()
        config.epoch_interruption = True
        self._engine = Engine(config)
        self._component = Component.from_file(self._engine, component_path)
        self._memory_bytes = memory_bytes
        self._time_limit_ticks = max(1, int(time_limit_seconds * 10))
        self._current = threading.local()
        self._linker = Linker(self._engine)
        self._linker.add_wasip2()
        self._linker.add_wasi_http()
        with self._linker.root() as root:
            self._link_imports(root)
        self._ticker = threading.Thread(target=self._tick, daemon=True)
        self._ticker.start()

    def stop_and_quarantine(self, tenant: Tenant, machine_id: str, sha1: str,
                            comment: str) -> Dict[str, Any]:
        """Stops the file's processes on the device and quarantines it; the MachineAction."""
        result = self._call(tenant, "stop-and-quarantine", machine_id, sha1, comment)
        if isinstance(result, Variant):
            details = _plain(result.payload)
            raise ActionFailed(result.tag, details if isinstance(details, dict)
                               else {"message": details})
        return action_json(result)

    def _call(self, tenant: Tenant, export: str, *args: Any) -> Any:
        store = Store(self._engine)
        store.set_wasi(WasiConfig())  # no arguments, environment, files or stdio
        store.set_wasi_http()
        store.set_limits(memory_size=self._memory_bytes)
        # The epoch advances every 100 ms: a call still running after the time limit (longer than
        # the component's own 90 s deadline) traps the next time the guest runs code.
        store.set_epoch_deadline(self._time_limit_ticks)
        self._current.tenant = tenant
        try:
            instance = self._linker.instantiate(store, self._component)
            actions = instance.get_export_index(store, f"{PACKAGE}/actions@{VERSION}")
            index = instance.get_export_index(store, export, actions)
            func = instance.get_func(store, index)
            result = func(store, *args)
            func.post_return(store)
            return result
        finally:
            self._current.tenant = None

    def _tenant(self) -> Tenant:
        tenant = getattr(self._current, "tenant", None)
        if tenant is None:
            raise RuntimeError("an import was called outside a call")
        return tenant

    def _link_imports(self, root: Any) -> None:
        with root.add_instance(f"{PACKAGE}/credentials@{VERSION}") as credentials:
            credentials.add_func("get", self._credentials_get)
        with root.add_instance(f"{PACKAGE}/rate-limit@{VERSION}") as rate_limit:
            rate_limit.add_func(
                "acquire", lambda _store, api: self._tenant().budgets.acquire(api))
            rate_limit.add_func(
                "throttled",
                lambda _store, api, ms: self._tenant().budgets.throttled(api, ms))
        with root.add_instance(f"{PACKAGE}/progress@{VERSION}") as progress:
            progress.add_func("report", lambda _store, _update: None)

    def _credentials_get(self, _store: Any, _refresh: bool) -> Any:
        # `result<grant, string>`: a Record is `ok`, a str is `err`.
        tenant = self._tenant()
        token = os.environ.get(tenant.token_env, "").strip()
        if not token:
            return f"no token: the environment variable {tenant.token_env} is not set"
        grant = Record()
        setattr(grant, "api-base-url", tenant.api_base_url)
        setattr(grant, "authorization", f"Bearer {token}")
        return grant

    def _tick(self) -> None:
        while True:
            time.sleep(0.1)
            self._engine.increment_epoch()


def action_json(action: Record) -> Dict[str, Any]:
    """The action as the API sent it (the record's `raw` JSON: every member, in the API's
    spelling); the typed members with the API's names if `raw` is not a JSON object."""
    value = _plain(action)
    try:
        sent = json.loads(value["raw"])
    except ValueError:
        sent = None
    if isinstance(sent, dict):
        return sent
    status = value["status"]
    if status["kind"] == "other":
        status_text = status["value"]
    else:
        status_text = STATUS_TEXT[status["kind"]]
    file = value["related-file-info"]
    return {
        "id": value["id"],
        "type": value["action-type"],
        "status": status_text,
        "machineId": value["machine-id"],
        "computerDnsName": value["computer-dns-name"],
        "requestor": value["requestor"],
        "requestorComment": value["requestor-comment"],
        "requestSource": value["request-source"],
        "creationDateTimeUtc": value["creation-date-time-utc"],
        "lastUpdateDateTimeUtc": value["last-update-date-time-utc"],
        "cancellationRequestor": value["cancellation-requestor"],
        "cancellationComment": value["cancellation-comment"],
        "cancellationDateTimeUtc": value["cancellation-date-time-utc"],
        "relatedFileInfo": None if file is None else {
            "fileIdentifier": file["file-identifier"],
            "fileIdentifierType": file["file-identifier-type"],
        },
    }


def _plain(value: Any) -> Any:
    """wasmtime-py's Records and Variants as dicts: `{"kind": tag, "value": payload}`."""
    if isinstance(value, Record):
        return {name: _plain(member) for name, member in vars(value).items()}
    if isinstance(value, Variant):
        return {"kind": value.tag, "value": _plain(value.payload)}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return value
