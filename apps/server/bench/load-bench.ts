/**
 * A load test of the read endpoints: `sparsekit-server` in its own process (no workers, 200 jobs
 * queued), autocannon against each route for a fixed time, GET /health (no token, no database) as
 * the baseline measured in the same run:
 *
 *   pnpm --filter @sparsekit/server bench
 *   node build/bench/load-bench.js [--seconds 5] [--connections 16] [--out bench-results]
 *
 * Prints a table and writes DIR/server-load.{json,md}.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { markdownTable, option, ratio, writeJsonAtomic, writeTextAtomic } from '@sparsekit/bench';
import autocannon from 'autocannon';

const seconds = Number(option('seconds', '5'));
const connections = Number(option('connections', '16'));
const outDir = option('out', 'bench-results');
const MAIN = fileURLToPath(new URL('../../dist/main.js', import.meta.url));
const TINY_LM = fileURLToPath(new URL('../../../../packages/models/tiny-lm', import.meta.url));

const base = mkdtempSync(join(tmpdir(), 'server-load-'));
const dataDir = join(base, 'data');
cpSync(TINY_LM, join(base, 'root', 'tiny'), { recursive: true });
const token = execFileSync(process.execPath, [MAIN, 'token', 'create', 'load', '--data', dataDir], {
  encoding: 'utf8',
}).trim();
const child: ChildProcess = spawn(
  process.execPath,
  [
    MAIN,
    'serve',
    '--data',
    dataDir,
    '--root',
    join(base, 'root'),
    '--port',
    '0',
    '--workers',
    '0',
    '--rate-limit',
    '1000000/1000000',
  ],
  { stdio: ['ignore', 'ignore', 'pipe'] },
);
const url = await new Promise<string>((resolve, reject) => {
  let err = '';
  child.stderr!.on('data', (d: Buffer) => {
    err += String(d);
    const m = /sparsekit-server: (http:\/\/\S+)/.exec(err);
    if (m !== null) resolve(m[1]!);
  });
  child.on('exit', (code) => reject(new Error(`server exited with ${code}: ${err}`)));
});
const headers = { authorization: `Bearer ${token}`, 'content-type': 'application/json' };
try {
  await fetch(`${url}/models`, {
    method: 'POST',
    headers,
    body: JSON.stringify({ name: 'tiny', path: 'tiny' }),
  });
  for (let i = 0; i < 200; i++)
    await fetch(`${url}/jobs`, {
      method: 'POST',
      headers,
      body: JSON.stringify({
        kind: 'prune',
        params: { model: 'tiny', method: 'wanda', sparsity: 0.5 },
        idempotencyKey: `load-${i}`,
      }),
    });

  const routes = [
    '/health',
    '/jobs/100',
    '/jobs?limit=20',
    '/jobs?limit=100',
    '/models',
    '/models/tiny',
    '/openapi.json',
  ];
  type Row = {
    route: string;
    requestsPerSecond: number;
    p50Ms: number;
    p99Ms: number;
    errors: number;
    non2xx: number;
  };
  const rows: Row[] = [];
  for (const route of routes) {
    const r = await autocannon({ url: `${url}${route}`, connections, duration: seconds, headers });
    rows.push({
      route,
      requestsPerSecond: r.requests.average,
      p50Ms: r.latency.p50,
      p99Ms: r.latency.p99,
      errors: r.errors,
      non2xx: r.non2xx,
    });
    console.log(`  ${route}: ${r.requests.average.toFixed(0)} req/s, p99 ${r.latency.p99} ms`);
  }
  const health = rows[0]!.requestsPerSecond;
  const table = markdownTable(
    ['route', 'req/s', 'vs /health', 'p50 ms', 'p99 ms', 'errors + non-2xx'],
    rows.map((r) => [
      `GET ${r.route}`,
      r.requestsPerSecond.toFixed(0),
      ratio(r.requestsPerSecond / health),
      String(r.p50Ms),
      String(r.p99Ms),
      String(r.errors + r.non2xx),
    ]),
  );
  const command = `node build/bench/load-bench.js ${process.argv.slice(2).join(' ')}`.trim();
  console.log(
    `\n${cpus()[0]?.model ?? 'cpu'}, ${cpus().length} cores, ${connections} connections, ${seconds} s per route\n\n${table}`,
  );
  writeJsonAtomic(join(outDir, 'server-load.json'), {
    command,
    date: new Date().toISOString(),
    connections,
    seconds,
    rows,
  });
  writeTextAtomic(join(outDir, 'server-load.md'), `${command}\n\n${table}\n`);
} finally {
  child.kill('SIGTERM');
  rmSync(base, { recursive: true, force: true });
}
