// Runs the Node host against `host-harness simulate`, started as a separate process (the shim's
// HTTP is synchronous: a server in this process could never answer).
//
// Needs HOST_HARNESS (the host-harness binary) in the environment and the component transpiled
// into build/defender; `test.sh` provides both.

import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createInterface } from 'node:readline';
import { after, before, beforeEach, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { ActionFailed, Budgets, DefenderHost, Tenant } from '../host.js';

const HOST_HARNESS = process.env.HOST_HARNESS;
const COMPONENT_DIR = new URL('../build/defender/', import.meta.url);
const EXAMPLE = fileURLToPath(new URL('../stop-and-quarantine.js', import.meta.url));
const TOKEN = `node-example-${randomBytes(8).toString('hex')}`;
const SHA1 = '87662bc3d60e4200ceaf7aae249d1c343f4b83c9';
const COMMENT = 'Quarantine per alert 441688558380765161_2136280442';
const UUID = /^[0-9a-f-]{36}$/;

const newMachineId = () => randomBytes(20).toString('hex');

/** `host-harness simulate` in its own process, and the requests it answered. */
class Simulator {
  static async start() {
    const process_ = spawn(HOST_HARNESS, ['simulate', '--port', '0'], {
      env: { ...process.env, MDE_TOKEN: TOKEN },
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    const lines = createInterface({ input: process_.stdout })[Symbol.asyncIterator]();
    const first = await lines.next();
    assert.match(first.value ?? '', /^http:\/\/127\.0\.0\.1:\d+$/, 'the simulator did not start');
    return new Simulator(process_, lines, first.value);
  }

  constructor(process_, lines, baseUrl) {
    this.process = process_;
    this.lines = lines;
    this.baseUrl = baseUrl;
  }

  /** The exchanges since the last call: sends a marker request of its own and returns every
   *  exchange logged before the marker's, so none can be missed. */
  async exchanges() {
    const marker = `/api/machineactions/marker-${randomBytes(8).toString('hex')}`;
    await fetch(this.baseUrl + marker); // answered 401: it carries no token
    const seen = [];
    for (;;) {
      const { value } = await this.lines.next();
      const exchange = JSON.parse(value);
      if (exchange.path === marker) return seen;
      seen.push(exchange);
    }
  }

  stop() {
    this.process.kill();
  }
}

let simulator;
before(async () => {
  simulator = await Simulator.start();
});
after(() => simulator.stop());
beforeEach(async () => {
  await simulator.exchanges(); // start each test with an empty log
});

function runExample(machineId, token = TOKEN) {
  return spawnSync(process.execPath, [EXAMPLE, '--machine-id', machineId, '--sha1', SHA1,
    '--comment', COMMENT, '--api-url', simulator.baseUrl], {
    env: { ...process.env, MDE_TOKEN: token },
    encoding: 'utf8',
    timeout: 120_000,
  });
}

test('the example sends the exact request and prints the action', async () => {
  const machineId = newMachineId();
  const run = runExample(machineId);
  assert.equal(run.status, 0, run.stderr);
  const action = JSON.parse(run.stdout);
  assert.equal(action.type, 'StopAndQuarantineFile');
  assert.equal(action.status, 'Pending');
  assert.equal(action.machineId, machineId);
  assert.equal(action.requestorComment, COMMENT);
  // Members the component's record does not model come through, as the API sent them.
  assert.deepEqual([action.commands, action.externalId], [[], null]);
  assert.deepEqual(action.relatedFileInfo, { fileIdentifier: SHA1, fileIdentifierType: 'Sha1' });
  assert.match(action.id, UUID);
  const exchanges = await simulator.exchanges();
  const authority = simulator.baseUrl.replace('http://', '');
  for (const exchange of exchanges) {
    const hosts = exchange.headers.filter(([name]) => name === 'host').map(([, value]) => value);
    assert.deepEqual(hosts, [authority], 'one Host header, naming the API (RFC 9112)');
    delete exchange.headers;
  }
  assert.deepEqual(exchanges, [{
    method: 'POST',
    path: `/api/machines/${machineId}/StopAndQuarantineFile`,
    version: 'HTTP/1.1',
    host: authority,
    contentType: 'application/json',
    authorized: true,
    body: JSON.stringify({ Comment: COMMENT, Sha1: SHA1 }),
    status: 201,
  }]);
  assert.ok(!(run.stdout + run.stderr).includes(TOKEN));
});

test('bad input names the field and sends nothing', async () => {
  const run = runExample('not-a-device');
  assert.equal(run.status, 2);
  assert.equal(run.stdout, '');
  const error = JSON.parse(run.stderr);
  assert.equal(error.error, 'invalid-input');
  assert.equal(error.field, 'machine-id');
  assert.deepEqual(await simulator.exchanges(), []);
});

test('a refused token reports the API error with its correlation ID', async () => {
  const run = runExample(newMachineId(), 'not-the-tenant-token');
  assert.equal(run.status, 1);
  const error = JSON.parse(run.stderr);
  assert.equal(error.error, 'unauthorized');
  assert.deepEqual([error.status, error.code], [401, 'Unauthorized']);
  assert.match(error.target, UUID);
  assert.ok(!run.stderr.includes('not-the-tenant-token'));
  // The component asks once more with a fresh credential, then reports.
  assert.deepEqual((await simulator.exchanges()).map((e) => e.status), [401, 401]);
});

test('the tenant rate limiter stops calls before they are sent', async () => {
  process.env.EXAMPLE_TEST_TOKEN = TOKEN;
  const host = await DefenderHost.load(COMPONENT_DIR);
  const tenant = new Tenant({
    apiBaseUrl: simulator.baseUrl,
    tokenEnv: 'EXAMPLE_TEST_TOKEN',
    budgets: new Budgets({ perHour: 1 }),
  });
  const first = host.stopAndQuarantine(tenant, newMachineId(), SHA1, COMMENT);
  assert.equal(first.status, 'Pending');
  assert.throws(() => host.stopAndQuarantine(tenant, newMachineId(), SHA1, COMMENT), (error) => {
    assert.ok(error instanceof ActionFailed);
    assert.equal(error.kind, 'rate-limited');
    assert.ok(error.details.retryAfterMs > 3_500_000n);
    return true;
  });
  assert.deepEqual((await simulator.exchanges()).map((e) => e.status), [201]);
});

test('a request outside the tenant origin never leaves the host', async () => {
  process.env.EXAMPLE_TEST_TOKEN = TOKEN;
  const host = await DefenderHost.load(COMPONENT_DIR);
  // The credential points the component at the simulator; the allowlist admits only the
  // tenant's real API.
  const tenant = new Tenant({ apiBaseUrl: simulator.baseUrl, tokenEnv: 'EXAMPLE_TEST_TOKEN' });
  tenant.origin = new URL('https://api.security.microsoft.com');
  assert.throws(() => host.stopAndQuarantine(tenant, newMachineId(), SHA1, COMMENT), (error) => {
    assert.ok(error instanceof ActionFailed);
    assert.equal(error.kind, 'transport');
    assert.match(error.details.message, /denied/i);
    return true;
  });
  assert.deepEqual(await simulator.exchanges(), []);
});
