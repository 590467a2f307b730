#!/usr/bin/env node
// sparsekit-server: `serve` (the default) starts the API and its workers; `token create|revoke|list`
// administers the bearer tokens in the data folder's store.
import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { SparsekitError } from '@sparsekit/core';
import { createServer } from './app.js';
import { JobStore } from './store.js';
import { TokenStore } from './tokens.js';

const HELP = `Usage: sparsekit-server [serve] [--data DIR] [--root DIR] [--host H] [--port N] [--workers N]
                        [--upload-limit BYTES] [--rate-limit BURST/PER_SECOND] [--cors ORIGIN,...]
       sparsekit-server token create NAME | revoke NAME | list [--data DIR]

serve: the HTTP API on http://HOST:PORT (default 127.0.0.1:8787), jobs in DIR/jobs.sqlite, job
  folders in DIR/jobs, uploaded models in DIR/models (default DIR: ./sparsekit-data). Model folders
  and text files clients name must lie below --root (default: DIR). --workers N worker processes
  (default 1). Every route but /health needs "Authorization: Bearer <token>"; each token may make
  BURST requests at once, refilled at PER_SECOND (default 60/20). Uploads: at most --upload-limit
  bytes of files (default 4 GiB) and 10 000 entries.
token create NAME: prints a new token once (only its hash is stored).`;

async function run(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      data: { type: 'string' },
      root: { type: 'string' },
      host: { type: 'string' },
      port: { type: 'string' },
      workers: { type: 'string' },
      'upload-limit': { type: 'string' },
      'rate-limit': { type: 'string' },
      cors: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help === true) {
    process.stdout.write(`${HELP}\n`);
    return 0;
  }
  const dataDir = resolve(values.data ?? 'sparsekit-data');
  const [command = 'serve', action, name] = positionals;
  if (command === 'token') {
    mkdirSync(dataDir, { recursive: true });
    const store = JobStore.open(join(dataDir, 'jobs.sqlite'));
    const tokens = new TokenStore(store.database);
    try {
      if (action === 'create' && name !== undefined) process.stdout.write(`${tokens.create(name)}\n`);
      else if (action === 'revoke' && name !== undefined) {
        if (!tokens.revoke(name)) throw new Error(`no token named ${name}`);
      } else if (action === 'list')
        for (const t of tokens.list()) process.stdout.write(`${t.name}${t.revoked ? ' (revoked)' : ''}\n`);
      else {
        process.stderr.write(`${HELP}\n`);
        return 2;
      }
    } finally {
      store.close();
    }
    return 0;
  }
  if (command !== 'serve') {
    process.stderr.write(`${HELP}\n`);
    return 2;
  }
  const integer = (flag: string, v: string | undefined, fallback: number, min: number) => {
    if (v === undefined) return fallback;
    const n = Number(v);
    if (!Number.isSafeInteger(n) || n < min) throw new Error(`--${flag} must be an integer >= ${min}`);
    return n;
  };
  const [burst, perSecond] = (values['rate-limit'] ?? '60/20').split('/').map(Number);
  if (!(Number.isFinite(burst) && Number.isFinite(perSecond)))
    throw new Error('--rate-limit must be BURST/PER_SECOND, for example 60/20');
  const server = await createServer({
    dataDir,
    ...(values.root === undefined ? {} : { root: resolve(values.root) }),
    workers: integer('workers', values.workers, 1, 0),
    limits: {
      uploadBytes: integer('upload-limit', values['upload-limit'], 4 * 2 ** 30, 1),
      rateCapacity: burst!,
      ratePerSecond: perSecond!,
    },
    ...(values.cors === undefined ? {} : { corsOrigins: values.cors.split(',') }),
  });
  const host = values.host ?? '127.0.0.1';
  const port = integer('port', values.port, 8787, 0);
  const address = await server.app.listen({ host, port });
  process.stderr.write(
    `sparsekit-server: ${address} (data ${dataDir}; ${server.pool.pids().length} workers)\n`,
  );
  const stop = () => {
    server.close().then(() => process.exit(0));
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  return -1;
}

run(process.argv.slice(2)).then(
  (code) => {
    if (code >= 0) process.exitCode = code;
  },
  (error: Error) => {
    process.stderr.write(`error: ${error.message}\n`);
    if (SparsekitError.isInstance(error) && (error as SparsekitError).hint !== undefined)
      process.stderr.write(`hint: ${(error as SparsekitError).hint}\n`);
    process.exitCode = 1;
  },
);
