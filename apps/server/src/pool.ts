// The local worker pool: worker processes that each run one job at a time, so CPU-bound jobs never
// block the HTTP loop. The pool claims jobs from the SQLite store for its idle workers, relays their
// log lines, commits each result once, and turns a worker's death into a failed attempt (retried by
// the job's policy). Cancel is a signal to the worker running the job (SIGTERM, then SIGKILL).
import { EventEmitter } from 'node:events';
import { hostname } from 'node:os';
import { type Finished, WorkerProcess } from './child.js';
import type { Plans } from './plan.js';
import type { JobId } from './protocol.js';
import type { Job, JobStore } from './store.js';

export interface PoolOptions {
  /** Worker processes (default 1). */
  size?: number;
  plans: Plans;
  /** How often idle workers look for work and running jobs for a cancel (ms, default 200). */
  pollMs?: number;
  /** Time a cancelled worker gets between SIGTERM and SIGKILL (ms, default 5000). */
  killGraceMs?: number;
  /** Extra environment for the workers. */
  env?: NodeJS.ProcessEnv;
}

interface Slot {
  name: string;
  worker: WorkerProcess | undefined;
}

/** The result a command printed with --json (its text when it is not JSON). */
export function parseResult(stdout: string): unknown {
  if (stdout.trim() === '') return null;
  try {
    return JSON.parse(stdout);
  } catch {
    return { stdout: stdout.slice(0, 100_000) };
  }
}

/** Events: 'log' (id, line), 'state' (id) whenever a job starts or ends. */
export class WorkerPool extends EventEmitter {
  private readonly slots: Slot[];
  private timer: NodeJS.Timeout | undefined;
  private stopping = false;

  constructor(
    private readonly store: JobStore,
    private readonly options: PoolOptions,
  ) {
    super();
    this.slots = Array.from({ length: options.size ?? 1 }, (_, i) => ({
      name: `${hostname()}:${process.pid}:w${i}`,
      worker: undefined,
    }));
  }

  start(): void {
    for (const slot of this.slots) this.spawn(slot);
    this.timer = setInterval(() => this.tick(), this.options.pollMs ?? 200);
    this.timer.unref();
  }

  /** Live worker processes. */
  size(): number {
    return this.slots.filter((s) => s.worker?.alive === true).length;
  }

  /** Worker process ids (for tests). */
  pids(): (number | undefined)[] {
    return this.slots.map((s) => s.worker?.pid);
  }

  /** The pid of the worker running job `id`, if one of ours is. */
  pidOf(id: JobId): number | undefined {
    return this.slots.find((s) => s.worker?.job === id)?.worker?.pid;
  }

  /** Stop the job's worker if one of ours runs it (the store already holds the cancel request). */
  cancel(id: JobId): void {
    this.slots.find((s) => s.worker?.job === id)?.worker?.stop(this.options.killGraceMs);
  }

  async stop(): Promise<void> {
    this.stopping = true;
    if (this.timer !== undefined) clearInterval(this.timer);
    await Promise.all(
      this.slots.map(({ worker }) =>
        worker === undefined || !worker.alive
          ? undefined
          : new Promise<void>((done) => {
              worker.once('exit', () => done());
              worker.stop(2000);
            }),
      ),
    );
  }

  private spawn(slot: Slot): void {
    const worker = new WorkerProcess(this.options.env);
    slot.worker = worker;
    worker.on('log', (id: number, line: string) => {
      this.store.progress(id, { line: line.slice(0, 2000), at: Date.now() });
      this.emit('log', id, line);
    });
    worker.on('done', (f: Finished) => this.finish(slot, f));
    worker.on('exit', (code: number | null, signal: NodeJS.Signals | null, job: number | undefined) => {
      if (job !== undefined) {
        // Cancelled when a cancel was asked; otherwise a failed attempt, retried by the job's policy.
        this.store.fail(
          job,
          `the worker process died (${signal === null ? `code ${code}` : `signal ${signal}`}) while running the job`,
          slot.name,
        );
        this.emit('state', job);
      }
      if (!this.stopping) this.spawn(slot);
    });
  }

  private tick(): void {
    if (this.stopping) return;
    for (const slot of this.slots) {
      const worker = slot.worker;
      if (worker === undefined) continue;
      if (worker.job !== undefined) {
        // A cancel asked through another process (or before the worker took it).
        try {
          if (this.store.get(worker.job as number).cancelRequested) worker.stop(this.options.killGraceMs);
        } catch {
          /* the job is gone: nothing to stop */
        }
        continue;
      }
      if (!worker.ready) continue;
      const job = this.store.claim(slot.name);
      if (job === undefined) return;
      this.run(slot, worker, job);
    }
  }

  private run(slot: Slot, worker: WorkerProcess, job: Job): void {
    let plan: ReturnType<Plans['plan']>;
    try {
      plan = this.options.plans.plan(job.kind, job.params, job.id);
    } catch (error) {
      // Params that no longer check (a model unregistered, a file gone) would fail every attempt.
      this.store.fail(job.id, (error as Error).message, slot.name, { final: true });
      this.emit('state', job.id);
      return;
    }
    worker.run(job.id, plan);
    this.emit('state', job.id);
  }

  private finish(slot: Slot, f: Finished): void {
    const id = f.id as number;
    if (f.code === 0) this.store.complete(id, parseResult(f.stdout), slot.name);
    else {
      // Exit code 2 is a usage error: the same parameters would fail again, so no retry.
      const error = f.error ?? `sparsekit exited with code ${f.code}; see the job's log`;
      this.store.fail(id, error, slot.name, { final: f.code === 2 });
    }
    this.emit('state', id);
  }
}
