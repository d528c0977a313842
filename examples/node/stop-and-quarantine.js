// Stop and quarantine a file on one Defender for Endpoint device through the component.
//
//   node stop-and-quarantine.js --machine-id ID --sha1 SHA1 --comment TEXT \
//       [--api-url URL] [--token-env VAR] [--component-dir DIR]
//
// Prints the MachineAction as JSON on stdout and exits 0; on failure prints the component's
// error as JSON on stderr and exits 1 (2 for bad input, which never reaches the API).

import { parseArgs } from 'node:util';
import { pathToFileURL } from 'node:url';
import { ActionFailed, bigintsAsNumbers, DefenderHost, Tenant } from './host.js';

const { values } = parseArgs({
  options: {
    'machine-id': { type: 'string' },
    sha1: { type: 'string' },
    comment: { type: 'string' },
    'api-url': { type: 'string', default: 'https://api.security.microsoft.com' },
    'token-env': { type: 'string', default: 'MDE_TOKEN' },
    'component-dir': { type: 'string', default: new URL('build/defender/', import.meta.url).pathname },
  },
});
for (const name of ['machine-id', 'sha1', 'comment']) {
  if (values[name] === undefined) {
    process.stderr.write(`--${name} is required\n`);
    process.exit(2);
  }
}

const dir = pathToFileURL(values['component-dir'].replace(/\/?$/, '/'));
const host = await DefenderHost.load(dir);
const tenant = new Tenant({ apiBaseUrl: values['api-url'], tokenEnv: values['token-env'] });
try {
  const action = host.stopAndQuarantine(tenant, values['machine-id'], values.sha1, values.comment);
  process.stdout.write(`${JSON.stringify(action, null, 2)}\n`);
} catch (error) {
  if (!(error instanceof ActionFailed)) throw error;
  const json = JSON.stringify({ error: error.kind, ...error.details }, bigintsAsNumbers);
  process.stderr.write(`${json}\n`);
  process.exitCode = error.kind === 'invalid-input' ? 2 : 1;
}
