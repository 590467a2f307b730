// The server under failure, on loopback: a worker killed mid-job, the server killed with jobs
// queued, and 100 concurrent submissions with duplicate idempotency keys.
import { type ChildProcess, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { dataFolder, NO_SQLITE, serverAddress } from './server.test-util.js';

const { createServer } = NO_SQLITE ? ({} as typeof import('./app.js')) : await import('./app.js');
const MAIN = fileURLToPath(new URL('../dist/main.js', import.meta.url));
const sleep = (ms: number) => new Promise((d) => setTimeout(d, ms));

/** `sparsekit-server` in its own process on a free port; resolves with its base URL. */
function startServer(dataDir: string, root: string): Promise<{ child: ChildProcess; url: string }> {
  const child = spawn(
    process.execPath,
    [MAIN, 'serve', '--data', dataDir, '--root', root, '--port', '0', '--workers', '1'],
    {
      env: { ...process.env, SPARSEKIT_NATIVE: '0' },
      stdio: ['ignore', 'ignore', 'pipe'],
    },
  );
  return serverAddress(child).then(({ url }) => ({ child, url }));
}

describe.skipIf(NO_SQLITE)('the server under failure', () => {
  const children: ChildProcess[] = [];
  afterAll(() => {
    for (const c of children) c.kill('SIGKILL');
  });

  it('kill -9 of a worker mid-job: the job completes on retry with exactly one result', async () => {
    const { dataDir, root } = dataFolder();
    const server = await createServer({
      dataDir,
      root,
      workers: 1,
      pollMs: 50,
      backoffBaseMs: 10,
      workerEnv: { SPARSEKIT_NATIVE: '0' },
    });
    try {
      const { job } = server.store.submit({ kind: 'eval', params: { maxWindows: 40 } });
      let pid: number | undefined;
      for (let i = 0; i < 400 && pid === undefined; i++) {
        await sleep(10);
        pid = server.pool!.pidOf(job.id);
      }
      // Killed once it has printed progress (mid-job).
      for (let i = 0; i < 400 && server.store.get(job.id).progress === null; i++) await sleep(10);
      process.kill(pid!, 'SIGKILL');
      for (let i = 0; i < 1000 && server.store.get(job.id).state !== 'succeeded'; i++) await sleep(20);
      const done = server.store.get(job.id);
      expect(done.state).toBe('succeeded');
      expect(done.attempts).toBe(2);
      expect(done.error).toMatch(/worker process died \(signal SIGKILL\)/);
      expect((done.result as { protocol: { windows: number } }).protocol.windows).toBe(40);
      // Exactly one result: completing again is refused.
      expect(server.store.complete(job.id, { again: true })).toBe(false);
      expect(server.pool!.pids()[0]).not.toBe(pid);
    } finally {
      await server.close();
    }
  });

  it('kill -9 of the server with jobs queued and one running: all finish after a restart', async () => {
    const { dataDir, root } = dataFolder();
    let { child, url } = await startServer(dataDir, root);
    children.push(child);
    const { execFileSync } = await import('node:child_process');
    const token = execFileSync(process.execPath, [MAIN, 'token', 'create', 'ops', '--data', dataDir], {
      encoding: 'utf8',
    }).trim();
    const headers = { authorization: `Bearer ${token}`, 'content-type': 'application/json' };
    const ids: number[] = [];
    for (let i = 0; i < 4; i++) {
      const r = await fetch(`${url}/jobs`, {
        method: 'POST',
        headers,
        body: JSON.stringify({ kind: 'eval', params: { maxWindows: 3 + i }, idempotencyKey: `restart-${i}` }),
      });
      expect(r.status).toBe(201);
      ids.push(((await r.json()) as { id: number }).id);
    }
    const get = async (id: number) =>
      (await (await fetch(`${url}/jobs/${id}`, { headers })).json()) as { state: string; result: unknown };
    for (let i = 0; i < 300 && (await get(ids[0]!)).state === 'queued'; i++) await sleep(100);
    child.kill('SIGKILL');
    await new Promise((d) => child.once('exit', d));
    ({ child, url } = await startServer(dataDir, root));
    children.push(child);
    for (const id of ids) {
      // (polled 10 times a second: under the token's rate limit)
      for (let i = 0; i < 600 && !['succeeded', 'failed'].includes((await get(id)).state); i++)
        await sleep(100);
      const job = await get(id);
      expect(job.state, `job ${id}`).toBe('succeeded');
      expect((job.result as { protocol: { windows: number } }).protocol.windows).toBe(3 + ids.indexOf(id));
    }
    // Submitting the same keys again after the restart makes nothing new.
    const again = await fetch(`${url}/jobs`, {
      method: 'POST',
      headers,
      body: JSON.stringify({ kind: 'eval', params: {}, idempotencyKey: 'restart-2' }),
    });
    expect(again.status).toBe(200);
    expect(((await again.json()) as { id: number }).id).toBe(ids[2]);
    child.kill('SIGTERM');
  });

  it('100 concurrent submissions carrying 20 duplicate idempotency keys make exactly 80 jobs', async () => {
    const { dataDir, root } = dataFolder();
    const server = await createServer({ dataDir, root, workers: 0, limits: { rateCapacity: 1000 } });
    const url = await server.app.listen({ host: '127.0.0.1', port: 0 });
    const token = server.tokens.create('load');
    try {
      // Keys 0..79, then 20 of them again, all sent at once.
      const keys = [
        ...Array.from({ length: 80 }, (_, i) => `k${i}`),
        ...Array.from({ length: 20 }, (_, i) => `k${i * 4}`),
      ];
      const responses = await Promise.all(
        keys.map((key) =>
          fetch(`${url}/jobs`, {
            method: 'POST',
            headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
            body: JSON.stringify({ kind: 'bench', params: { tokens: 4 }, idempotencyKey: key }),
          }).then(async (r) => ({ status: r.status, id: ((await r.json()) as { id: number }).id, key })),
        ),
      );
      expect(responses.filter((r) => r.status === 201)).toHaveLength(80);
      expect(responses.filter((r) => r.status === 200)).toHaveLength(20);
      const jobs = server.store.list({ limit: 1000 });
      expect(jobs).toHaveLength(80);
      expect(new Set(jobs.map((j) => j.idempotencyKey)).size).toBe(80);
      // Each duplicate got the job its key made.
      const byKey = new Map(jobs.map((j) => [j.idempotencyKey, j.id]));
      for (const r of responses) expect(r.id).toBe(byKey.get(r.key));
    } finally {
      await server.close();
    }
  });
});
