// The Redis mode against a real redis-server (started here on a free loopback port, with an
// append-only file fsynced on every write) and three `sparsekit-server worker` processes.
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { createServer as netServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dataFolder, NO_SQLITE } from './server.test-util.js';

const REDIS = spawnSync('which', ['redis-server'], { encoding: 'utf8' }).stdout.trim();
if (REDIS === '' && process.env.SPARSEKIT_REQUIRE_REDIS === '1')
  throw new Error('redis-server is required (apt-get install redis-server)');
if (REDIS === '')
  console.warn('the Redis mode tests: no redis-server on PATH, skipped (apt-get install redis-server)');
const { createServer } = NO_SQLITE ? ({} as typeof import('./app.js')) : await import('./app.js');
const MAIN = fileURLToPath(new URL('../dist/main.js', import.meta.url));
const sleep = (ms: number) => new Promise((d) => setTimeout(d, ms));

async function freePort(): Promise<number> {
  const s = netServer();
  await new Promise<void>((d) => s.listen(0, '127.0.0.1', d));
  const port = (s.address() as { port: number }).port;
  await new Promise((d) => s.close(d));
  return port;
}

async function until(what: string, test: () => Promise<boolean>, ms = 60_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await test())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

describe.skipIf(NO_SQLITE || REDIS === '')('jobs on Redis (BullMQ) with three worker processes', () => {
  let redis: ChildProcess;
  let port: number;
  let redisDir: string;
  const workers: ChildProcess[] = [];
  let server: Awaited<ReturnType<typeof createServer>>;
  let token: string;

  const startRedis = async () => {
    redis = spawn(
      REDIS,
      [
        '--port',
        String(port),
        '--bind',
        '127.0.0.1',
        '--dir',
        redisDir,
        '--appendonly',
        'yes',
        '--appendfsync',
        'always',
        '--save',
        '',
      ],
      {
        stdio: 'ignore',
      },
    );
    await until(
      'redis-server',
      async () =>
        spawnSync('redis-cli', ['-p', String(port), 'ping'], { encoding: 'utf8' }).stdout.trim() === 'PONG',
      10_000,
    );
  };
  const startWorker = () => {
    const w = spawn(
      process.execPath,
      [MAIN, 'worker', '--redis', `redis://127.0.0.1:${port}`, '--lock-ms', '2000', '--stalled-ms', '500'],
      {
        env: { ...process.env, SPARSEKIT_NATIVE: '0' },
        stdio: 'ignore',
      },
    );
    workers.push(w);
    return w;
  };
  const api = (method: 'GET' | 'POST', url: string, payload?: unknown) =>
    server.app.inject({
      method,
      url,
      headers: { authorization: `Bearer ${token}` },
      ...(payload === undefined ? {} : { payload: payload as string }),
    });
  const job = async (id: string) => (await api('GET', `/jobs/${id}`)).json();
  const finished = (id: string) =>
    until(`job ${id}`, async () => ['succeeded', 'failed', 'cancelled'].includes((await job(id)).state));

  beforeAll(async () => {
    port = await freePort();
    redisDir = mkdtempSync(join(tmpdir(), 'redis-'));
    await startRedis();
    const { dataDir, root } = dataFolder('redis-mode-');
    server = await createServer({
      dataDir,
      root,
      redis: `redis://127.0.0.1:${port}`,
      backoffBaseMs: 50,
      limits: { rateCapacity: 10_000, ratePerSecond: 10_000 },
    });
    token = server.tokens.create('redis');
    server.models.register('tiny', 'models/tiny');
    for (let i = 0; i < 3; i++) startWorker();
  }, 30_000);
  afterAll(async () => {
    for (const w of workers) w.kill('SIGKILL');
    await server?.close();
    redis?.kill('SIGKILL');
  });

  it('runs jobs on the workers, dedupes idempotency keys, and reports them like the embedded mode', async () => {
    expect((await server.app.inject({ url: '/health' })).json()).toMatchObject({ mode: 'redis' });
    const ids: string[] = [];
    for (let i = 0; i < 6; i++) {
      const r = await api('POST', '/jobs', {
        kind: 'eval',
        params: { model: 'tiny', maxWindows: 2 + (i % 3) },
        idempotencyKey: `r-${i}`,
      });
      expect(r.statusCode).toBe(201);
      ids.push(r.json().id);
    }
    const again = await api('POST', '/jobs', { kind: 'eval', params: {}, idempotencyKey: 'r-3' });
    expect(again.statusCode).toBe(200);
    expect(again.json().id).toBe(ids[3]);
    for (const id of ids) await finished(id);
    const jobs = await Promise.all(ids.map(job));
    for (const [i, j] of jobs.entries()) {
      expect(j.state).toBe('succeeded');
      expect(j.result.protocol.windows).toBe(2 + (i % 3));
    }
    expect(new Set(jobs.map((j) => j.worker)).size).toBeGreaterThan(1);
    // Its log, its events, its report.
    expect((await api('GET', `/jobs/${ids[0]}/log`)).payload).toMatch(/eval: 2\/2 windows/);
    const events = (await api('GET', `/jobs/${ids[0]}/events`)).payload;
    expect(events).toMatch(/"state":"succeeded"/);
    expect((await api('GET', `/jobs/${ids[0]}/files/report/report.svg`)).payload).toMatch(/^<svg/);
    const listed = (await api('GET', '/jobs?state=succeeded')).json().jobs;
    expect(listed.map((j: { id: string }) => j.id)).toEqual(expect.arrayContaining(ids));
  });

  it('100 concurrent submissions carrying 20 duplicate keys make exactly 80 jobs', async () => {
    const keys = [
      ...Array.from({ length: 80 }, (_, i) => `c${i}`),
      ...Array.from({ length: 20 }, (_, i) => `c${i * 4}`),
    ];
    const responses = await Promise.all(
      keys.map((key) => server.queue.submit({ kind: 'bench', params: { tokens: 1 }, idempotencyKey: key })),
    );
    expect(responses.filter((r) => r.created)).toHaveLength(80);
    expect(new Set(responses.map((r) => r.job.id)).size).toBe(80);
    // (Not run: cancel them, so the workers stay free.)
    for (const r of responses) if (r.created) await server.queue.cancel(String(r.job.id));
  });

  it('a worker killed with kill -9 mid-job: the job completes on another worker, with one result', async () => {
    const r = await api('POST', '/jobs', { kind: 'eval', params: { model: 'tiny', maxWindows: 40 } });
    const id = r.json().id as string;
    await until('the job to run', async () => (await job(id)).state === 'running');
    const name = (await job(id)).worker as string;
    const pid = Number(name.split(':').at(-1));
    const victim = workers.find((w) => w.pid === pid);
    expect(victim).toBeDefined();
    victim!.kill('SIGKILL');
    startWorker();
    await finished(id);
    const done = await job(id);
    expect(done.state).toBe('succeeded');
    expect(done.worker).not.toBe(name);
    expect(done.result.protocol.windows).toBe(40);
  });

  it('Redis restarted mid-run: no job is lost', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 6; i++)
      ids.push(
        (
          await api('POST', '/jobs', {
            kind: 'eval',
            params: { model: 'tiny', maxWindows: 3 + i },
            idempotencyKey: `restart-${i}`,
          })
        ).json().id,
      );
    await until('a job to run', async () => (await job(ids[0]!)).state !== 'queued');
    redis.kill('SIGKILL'); // the append-only file holds every acknowledged write
    await new Promise((d) => redis.once('exit', d));
    await sleep(500);
    await startRedis();
    for (const id of ids) await finished(id);
    for (const [i, id] of ids.entries()) {
      const j = await job(id);
      expect(j.state, id).toBe('succeeded');
      expect(j.result.protocol.windows).toBe(3 + i);
    }
  }, 120_000);

  it('cancels a running job by a signal through Redis to its worker', async () => {
    const r = await api('POST', '/jobs', {
      kind: 'sae-train',
      params: { model: 'tiny', epochs: 1000, k: 4, expansion: 1 },
    });
    const id = r.json().id as string;
    await until('the job to run', async () => (await job(id)).state === 'running');
    expect((await api('POST', `/jobs/${id}/cancel`)).json().cancelRequested).toBe(true);
    await finished(id);
    expect((await job(id)).state).toBe('cancelled');
  });
});
