// A Node.js host for the Defender for Endpoint component, transpiled by jco
// (`jco transpile --instantiation sync`, see run.sh).
//
// Lift this into a workflow node: make one `DefenderHost` (it compiles the component once),
// describe each tenant with a `Tenant`, and call `host.stopAndQuarantine(tenant, machineId, sha1,
// comment)`. Every call gets a fresh instance, so nothing of one tenant's call stays in memory
// for the next. It returns the MachineAction as the API sent it, or throws
// `ActionFailed` with the component's error (the field at fault for bad input; the HTTP status,
// the API's code, message and correlation ID for a refusal).
//
// The host gives the component exactly these imports:
// - `defender:endpoint/credentials`: the tenant's API base URL and `Bearer <token>`, the token
//   read from an environment variable at each call (so a rotated token is picked up);
// - `defender:endpoint/rate-limit`: a sliding-window limiter per tenant and API (each API
//   allows 100 calls a minute and 1500 an hour, counted per application and tenant), the API's
//   paused when it answers 429;
// - `defender:endpoint/progress`: ignored here (only `quarantine` with a wait reports progress);
// - `wasi:http/outgoing-handler`: the shim's, behind a check that the request goes to the
//   tenant's API origin;
// - `wasi:cli/environment`: empty (the shim's would hand over this process's environment,
//   tokens included, and its arguments);
// - the rest of WASI from @bytecodealliance/preview2-shim (clocks, random, streams, stdio).
// Calls are synchronous: the shim's HTTP blocks on a worker thread. See README.md for what this
// host cannot enforce.

import { readFileSync } from 'node:fs';
import { cli, clocks, http, io, random } from '@bytecodealliance/preview2-shim';

const STATUS_TEXT = {
  pending: 'Pending',
  'in-progress': 'InProgress',
  succeeded: 'Succeeded',
  failed: 'Failed',
  'time-out': 'TimeOut',
  cancelled: 'Cancelled',
};

/** Sliding windows over one tenant's calls; a 429's Retry-After pauses the tenant. */
export class RateLimiter {
  constructor({ perMinute = 100, perHour = 1500, clock = () => performance.now() } = {}) {
    this.windows = [[60_000, perMinute], [3_600_000, perHour]];
    this.calls = [];
    this.pausedUntil = 0;
    this.clock = clock;
  }

  /** `null` when a call may go now; otherwise how many milliseconds to wait. */
  acquire() {
    const now = this.clock();
    this.calls = this.calls.filter((t) => t > now - 3_600_000);
    let wait = Math.max(0, this.pausedUntil - now);
    for (const [span, limit] of this.windows) {
      const recent = this.calls.filter((t) => t > now - span);
      if (recent.length >= limit) {
        wait = Math.max(wait, recent[recent.length - limit] + span - now);
      }
    }
    if (wait > 0) return Math.max(1, Math.ceil(wait));
    this.calls.push(now);
    return null;
  }

  /** The API said 429: no call for this tenant until `retryAfterMs` from now. */
  throttled(retryAfterMs) {
    this.pausedUntil = Math.max(this.pausedUntil, this.clock() + retryAfterMs);
  }
}

/** The APIs a permit is for, as the component's `rate-limit.api` enum names them. */
export const APIS = ['create-action', 'get-action', 'list-actions', 'cancel-action', 'file-machines'];

/**
 * One RateLimiter per API: each API page gives its own limit, counted per application and
 * tenant, so polling never spends what creating actions needs. Share one `Budgets` between the
 * tenants that sign in as the same application.
 */
export class Budgets {
  constructor(options = {}) {
    this.limiters = new Map(APIS.map((api) => [api, new RateLimiter(options)]));
  }

  /** `null` when a call to `api` may go now; otherwise how many milliseconds to wait. */
  acquire(api) {
    return this.of(api).acquire();
  }

  /** `api` said 429: pause that API's budget (only that one). */
  throttled(api, retryAfterMs) {
    this.of(api).throttled(retryAfterMs);
  }

  of(api) {
    const limiter = this.limiters.get(api);
    if (!limiter) throw new Error(`no budget for ${api}`);
    return limiter;
  }
}

/** One tenant: its API, the environment variable holding its token, its own budgets. */
export class Tenant {
  constructor({
    apiBaseUrl = 'https://api.security.microsoft.com',
    tokenEnv = 'MDE_TOKEN',
    budgets = new Budgets(),
  } = {}) {
    this.apiBaseUrl = apiBaseUrl;
    this.tokenEnv = tokenEnv;
    this.budgets = budgets;
    this.origin = new URL(apiBaseUrl);
  }
}

/** A JSON.stringify replacer for the component's u64 values, which jco gives as BigInt. */
export const bigintsAsNumbers = (_, v) => (typeof v === 'bigint' ? Number(v) : v);

/** The component's `action-error`: `kind` (e.g. `invalid-input`), and `details`, the error's
 *  members (`field` for bad input; `status`, `code`, `message`, `target` for the API's
 *  refusals; `{ message }` for the errors that are only text). */
export class ActionFailed extends Error {
  constructor(kind, payload) {
    const details = typeof payload === 'object' ? payload : { message: payload };
    super(`${kind}: ${JSON.stringify(details, bigintsAsNumbers)}`);
    this.kind = kind;
    this.details = details;
  }
}

/** The compiled component; `stopAndQuarantine` instantiates it afresh for each call. */
export class DefenderHost {
  /** `dir` holds the transpiled component (`defender.js` and its core modules). */
  static async load(dir) {
    const { instantiate } = await import(new URL('defender.js', dir));
    const modules = new Map();
    const getCoreModule = (name) => {
      if (!modules.has(name)) {
        modules.set(name, new WebAssembly.Module(readFileSync(new URL(name, dir))));
      }
      return modules.get(name);
    };
    return new DefenderHost(instantiate, getCoreModule);
  }

  constructor(instantiate, getCoreModule) {
    this.instantiate = instantiate;
    this.getCoreModule = getCoreModule;
  }

  /** Stops the file's processes on the device and quarantines it; the MachineAction. */
  stopAndQuarantine(tenant, machineId, sha1, comment) {
    const { actions } = this.instantiate(this.getCoreModule, importsFor(tenant));
    try {
      return actionJson(actions.stopAndQuarantine(machineId, sha1, comment));
    } catch (error) {
      // jco throws an export's `err` as a ComponentError carrying the action-error variant.
      if (error?.payload?.tag) throw new ActionFailed(error.payload.tag, error.payload.val);
      throw error;
    }
  }
}

/** The imports of one call, bound to its tenant. */
export function importsFor(tenant) {
  return {
    'defender:endpoint/credentials': {
      // `result<grant, string>`: returning is `ok`, throwing a string is `err`.
      get(_refresh) {
        const token = (process.env[tenant.tokenEnv] ?? '').trim();
        if (!token) throw `no token: the environment variable ${tenant.tokenEnv} is not set`;
        return { apiBaseUrl: tenant.apiBaseUrl, authorization: `Bearer ${token}` };
      },
    },
    'defender:endpoint/rate-limit': {
      acquire(api) {
        const wait = tenant.budgets.acquire(api);
        return wait === null ? { tag: 'granted' } : { tag: 'denied', val: BigInt(wait) };
      },
      throttled(api, retryAfterMs) {
        tenant.budgets.throttled(api, Number(retryAfterMs));
      },
    },
    'defender:endpoint/progress': { report(_update) {} },
    'wasi:http/outgoing-handler': allowOnly(tenant.origin),
    'wasi:http/types': http.types,
    'wasi:cli/environment': {
      getEnvironment: () => [],
      getArguments: () => [],
      initialCwd: () => undefined,
    },
    'wasi:cli/exit': cli.exit,
    'wasi:cli/stdin': cli.stdin,
    'wasi:cli/stdout': cli.stdout,
    'wasi:cli/stderr': cli.stderr,
    'wasi:cli/terminal-input': cli.terminalInput,
    'wasi:cli/terminal-output': cli.terminalOutput,
    'wasi:cli/terminal-stdin': cli.terminalStdin,
    'wasi:cli/terminal-stdout': cli.terminalStdout,
    'wasi:cli/terminal-stderr': cli.terminalStderr,
    'wasi:clocks/monotonic-clock': clocks.monotonicClock,
    'wasi:clocks/wall-clock': clocks.wallClock,
    'wasi:io/error': io.error,
    'wasi:io/poll': io.poll,
    'wasi:io/streams': io.streams,
    'wasi:random/insecure': random.insecure,
    'wasi:random/insecure-seed': random.insecureSeed,
  };
}

/** wasi:http's handler, letting through only requests to `origin` (scheme, host and port). */
export function allowOnly(origin) {
  return {
    handle(request, options) {
      const scheme = request.scheme();
      const name = { HTTPS: 'https', HTTP: 'http' }[scheme?.tag];
      const authority = request.authority();
      let target = null;
      try {
        target = name && authority ? new URL(`${name}://${authority}`) : null;
      } catch {
        target = null;
      }
      if (!target || target.protocol !== origin.protocol || target.host !== origin.host) {
        throw { tag: 'HTTP-request-denied' };
      }
      return http.outgoingHandler.handle(request, options);
    },
  };
}

/**
 * The action as the API sent it (the record's `raw` JSON: every member, in the API's spelling);
 * the typed members with the API's names if `raw` is not a JSON object.
 */
export function actionJson(action) {
  try {
    const sent = JSON.parse(action.raw);
    if (sent && typeof sent === 'object' && !Array.isArray(sent)) return sent;
  } catch {
    // Not JSON: fall back to the typed members below.
  }
  const status = action.status.tag === 'other' ? action.status.val : STATUS_TEXT[action.status.tag];
  const file = action.relatedFileInfo ?? null;
  const orNull = (v) => v ?? null;
  return {
    id: action.id,
    type: orNull(action.actionType),
    status,
    machineId: orNull(action.machineId),
    computerDnsName: orNull(action.computerDnsName),
    requestor: orNull(action.requestor),
    requestorComment: orNull(action.requestorComment),
    requestSource: orNull(action.requestSource),
    creationDateTimeUtc: orNull(action.creationDateTimeUtc),
    lastUpdateDateTimeUtc: orNull(action.lastUpdateDateTimeUtc),
    cancellationRequestor: orNull(action.cancellationRequestor),
    cancellationComment: orNull(action.cancellationComment),
    cancellationDateTimeUtc: orNull(action.cancellationDateTimeUtc),
    relatedFileInfo: file && {
      fileIdentifier: file.fileIdentifier,
      fileIdentifierType: orNull(file.fileIdentifierType),
    },
  };
}
