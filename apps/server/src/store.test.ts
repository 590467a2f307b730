import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';

// better-sqlite3 is an optional dependency (it builds from source where no prebuilt binary can be
// fetched): without it these tests are skipped, and with SPARSEKIT_REQUIRE_SQLITE=1 (CI) that fails.
const loaded = await import('./store.js').catch((error: Error) => error);
if (loaded instanceof Error && process.env.SPARSEKIT_REQUIRE_SQLITE === '1') throw loaded;
const { JobNotFoundError, JobStore } = loaded instanceof Error ? ({} as typeof import('./store.js')) : loaded;

const dir = mkdtempSync(join(tmpdir(), 'job-store-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const DIST = fileURLToPath(new URL('../dist/store.js', import.meta.url));

/** Run `body` (with `store` open on `path`) in a child process; resolves with what it prints. */
function child(path: string, body: string): Promise<string> {
  const script = `import { JobStore } from ${JSON.stringify(DIST)};
const store = JobStore.open(${JSON.stringify(path)});
${body}
store.close();`;
  return new Promise((resolve, reject) => {
    execFile(process.execPath, ['--input-type=module', '-e', script], (error, stdout, stderr) =>
      error === null ? resolve(stdout) : reject(new Error(stderr)),
    );
  });
}

describe.skipIf(loaded instanceof Error)('the job store', () => {
  it('submits, lists and returns jobs; an idempotency key submitted again returns the same job', () => {
    const store = JobStore.open(':memory:');
    const a = store.submit({
      kind: 'prune',
      params: { method: 'wanda', sparsity: 0.5 },
      idempotencyKey: 'k1',
    });
    expect(a.created).toBe(true);
    expect(a.job).toMatchObject({ id: 1, kind: 'prune', state: 'queued', attempts: 0, maxAttempts: 3 });
    const again = store.submit({ kind: 'prune', params: { other: true }, idempotencyKey: 'k1' });
    expect(again).toEqual({ job: a.job, created: false });
    store.submit({ kind: 'eval', params: {} });
    expect(store.list().map((j) => j.kind)).toEqual(['prune', 'eval']);
    expect(store.get(1).params).toEqual({ method: 'wanda', sparsity: 0.5 });
    expect(() => store.get(99)).toThrow(JobNotFoundError);
    expect(() => store.submit({ kind: 'mine' as 'prune', params: {} })).toThrow(/kind/);
    expect(() => store.submit({ kind: 'eval', params: { big: 'x'.repeat(1 << 20) } })).toThrow(/larger than/);
    expect(() => store.submit({ kind: 'eval', params: {}, idempotencyKey: '' })).toThrow(/idempotencyKey/);
    store.close();
  });

  it('100 concurrent submissions from 4 processes with 20 duplicate keys make exactly 80 jobs', async () => {
    const path = join(dir, 'submit.db');
    JobStore.open(path).close();
    // Keys 0..79 once each, and keys 0..19 a second time; each process takes every fourth.
    const keys = [...Array.from({ length: 80 }, (_, i) => i), ...Array.from({ length: 20 }, (_, i) => i)];
    await Promise.all(
      [0, 1, 2, 3].map((p) =>
        child(
          path,
          `for (const k of ${JSON.stringify(keys.filter((_, i) => i % 4 === p))}) store.submit({ kind: 'eval', params: { k }, idempotencyKey: 'key-' + k });`,
        ),
      ),
    );
    const store = JobStore.open(path);
    const jobs = store.list({ limit: 1000 });
    expect(jobs).toHaveLength(80);
    expect(new Set(jobs.map((j) => j.idempotencyKey)).size).toBe(80);
    store.close();
  });

  it('hands each queued job to exactly one of several worker processes', async () => {
    const path = join(dir, 'claim.db');
    const store = JobStore.open(path);
    for (let i = 0; i < 40; i++) store.submit({ kind: 'bench', params: { i } });
    const outs = await Promise.all(
      [0, 1, 2, 3].map((w) =>
        child(
          path,
          `const got = []; for (let j; (j = store.claim('w${w}')) !== undefined; ) { got.push(j.id); store.complete(j.id, { by: 'w${w}' }, 'w${w}'); } console.log(JSON.stringify(got));`,
        ),
      ),
    );
    const claimed = outs.flatMap((o) => JSON.parse(o) as number[]);
    expect(claimed.sort((a, b) => a - b)).toEqual(Array.from({ length: 40 }, (_, i) => i + 1));
    expect(store.list({ state: 'succeeded', limit: 100 })).toHaveLength(40);
    store.close();
  });

  it('commits a result exactly once, retries failures with backoff, and cancels', () => {
    let t = 1000;
    const store = JobStore.open(':memory:', { now: () => t, backoffBaseMs: 100 });
    const { job } = store.submit({ kind: 'prune', params: {}, maxAttempts: 2 });
    expect(store.claim('w')!.attempts).toBe(1);
    expect(store.fail(job.id, 'boom')).toBe('queued');
    expect(store.get(job.id).runAfter).toBe(1100); // 100 ms x 2^0
    expect(store.claim('w')).toBeUndefined(); // not before its backoff
    t = 1100;
    expect(store.claim('w')!.attempts).toBe(2);
    expect(store.complete(job.id, { ok: 1 }, 'someone-else')).toBe(false); // not its worker
    expect(store.complete(job.id, { ok: 1 })).toBe(true);
    expect(store.complete(job.id, { ok: 2 })).toBe(false);
    expect(store.get(job.id)).toMatchObject({ state: 'succeeded', result: { ok: 1 }, attempts: 2 });
    const b = store.submit({ kind: 'prune', params: {}, maxAttempts: 1 }).job;
    store.claim('w');
    expect(store.fail(b.id, 'boom')).toBe('failed');
    expect(store.get(b.id).error).toBe('boom');
    const c = store.submit({ kind: 'eval', params: {} }).job;
    expect(store.cancel(c.id).state).toBe('cancelled');
    const d = store.submit({ kind: 'eval', params: {} }).job;
    store.claim('w');
    expect(store.cancel(d.id)).toMatchObject({ state: 'running', cancelRequested: true });
    expect(store.fail(d.id, 'stopped')).toBe('cancelled');
    store.close();
  });

  it('kill -9 of a worker mid-job: after recovery the job runs again and has exactly one result', async () => {
    const path = join(dir, 'crash.db');
    const store = JobStore.open(path);
    const { job } = store.submit({ kind: 'sweep', params: {} });
    const script = `import { JobStore } from ${JSON.stringify(DIST)};
const store = JobStore.open(${JSON.stringify(path)});
store.claim('doomed');
console.log('claimed');
setInterval(() => {}, 1000);`;
    const worker: ChildProcess = spawn(process.execPath, ['--input-type=module', '-e', script]);
    await new Promise<void>((resolve) => worker.stdout!.once('data', () => resolve()));
    worker.kill('SIGKILL');
    await new Promise((resolve) => worker.once('exit', resolve));
    expect(store.get(job.id)).toMatchObject({ state: 'running', worker: 'doomed', attempts: 1 });
    // The server restarts: what was running is an interrupted attempt, re-queued by its policy.
    const restarted = JobStore.open(path, { backoffBaseMs: 0 });
    expect(restarted.recover()).toEqual([job.id]);
    expect(restarted.get(job.id)).toMatchObject({
      state: 'queued',
      error: expect.stringMatching(/interrupted/),
    });
    const again = restarted.claim('w2')!;
    expect(again).toMatchObject({ id: job.id, attempts: 2 });
    expect(restarted.complete(job.id, { done: true }, 'w2')).toBe(true);
    expect(store.complete(job.id, { done: 'twice' }, 'doomed')).toBe(false);
    expect(restarted.get(job.id).result).toEqual({ done: true });
    store.close();
    restarted.close();
  });
});
