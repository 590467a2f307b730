#!/usr/bin/env node
// sparsekit-server: `serve` (the default) starts the API and its workers; `token create|revoke|list`
// administers the bearer tokens in the data folder's store.
import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { SparsekitError } from '@sparsekit/core';
import { createServer } from './app.js';
import { startRedisWorker } from './redis-worker.js';
import { JobStore } from './store.js';
import { TokenStore } from './tokens.js';

const HELP = `Usage: sparsekit-server [serve] [--data DIR] [--root DIR] [--host H] [--port N] [--workers N]
                        [--upload-limit BYTES] [--rate-limit BURST/PER_SECOND] [--cors ORIGIN,...]
       sparsekit-server --redis URL [serve flags]
       sparsekit-server worker --redis URL [--concurrency N] [--lock-ms MS] [--stalled-ms MS]
       sparsekit-server token create NAME | revoke NAME | list [--data DIR]

serve: the HTTP API on http://HOST:PORT (default 127.0.0.1:8787), jobs in DIR/jobs.sqlite, job
  folders in DIR/jobs, uploaded models in DIR/models (default DIR: ./sparsekit-data). Model folders
  and text files clients name must lie below --root (default: DIR). --workers N worker processes
  (default 1). Every route but /health needs "Authorization: Bearer <token>"; each token may make
  BURST requests at once, refilled at PER_SECOND (default 60/20). Uploads: at most --upload-limit
  bytes of files (default 4 GiB) and 10 000 entries.
--redis URL: jobs go to BullMQ on Redis instead of the SQLite store, and \`worker\` processes on any
  machine take them (--concurrency jobs at once, each in its own process; BullMQ's lock and
  stalled-check intervals, default 30000 ms). The server and its workers share the data folder, at
  the same path on every machine.
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
      redis: { type: 'string' },
      concurrency: { type: 'string' },
      'lock-ms': { type: 'string' },
      'stalled-ms': { type: 'string' },
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
  const integer = (flag: string, v: string | undefined, fallback: number, min: number) => {
    if (v === undefined) return fallback;
    const n = Number(v);
    if (!Number.isSafeInteger(n) || n < min) throw new Error(`--${flag} must be an integer >= ${min}`);
    return n;
  };
  if (command === 'worker') {
    if (values.redis === undefined)
      throw new Error('a worker needs --redis URL (the queue the server submits to)');
    const worker = await startRedisWorker({
      url: values.redis,
      concurrency: integer('concurrency', values.concurrency, 1, 1),
      lockDuration: integer('lock-ms', values['lock-ms'], 30_000, 100),
      stalledInterval: integer('stalled-ms', values['stalled-ms'], 30_000, 100),
    });
    process.stderr.write(`sparsekit-server worker: taking jobs from ${values.redis}\n`);
    const stop = () => {
      worker.close().then(() => process.exit(0));
    };
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
    return -1;
  }
  if (command !== 'serve') {
    process.stderr.write(`${HELP}\n`);
    return 2;
  }

  const [burst, perSecond] = (values['rate-limit'] ?? '60/20').split('/').map(Number);
  if (!(Number.isFinite(burst) && Number.isFinite(perSecond)))
    throw new Error('--rate-limit must be BURST/PER_SECOND, for example 60/20');
  const server = await createServer({
    dataDir,
    ...(values.root === undefined ? {} : { root: resolve(values.root) }),
    workers: integer('workers', values.workers, 1, 0),
    ...(values.redis === undefined ? {} : { redis: values.redis }),
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
    `sparsekit-server: ${address} (data ${dataDir}; ${values.redis === undefined ? `${server.pool!.size()} workers` : `jobs on Redis ${values.redis}`})\n`,
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
