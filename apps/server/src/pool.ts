// The worker pool: child processes that each run one job at a time, so CPU-bound jobs never block
// the HTTP loop. The pool claims jobs from the store for its idle workers, relays their log lines,
// commits each result once, and turns a worker's death into a failed attempt (retried by the job's
// policy). Cancel is a signal to the worker running the job (SIGTERM, then SIGKILL).
import { type ChildProcess, fork } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { mkdirSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ToPool, ToWorker } from './protocol.js';
import type { Job, JobStore } from './store.js';

/** How a claimed job is run: its command line (or sweep plan), or a refusal that fails it for good. */
export type Planner = (job: Job, dir: string) => Omit<ToWorker, 'type' | 'id' | 'log'> | { refuse: string };

export interface PoolOptions {
  /** Worker processes (default 1). */
  size?: number;
  /** Where each job's folder (log, outputs) goes: DIR/<id>. */
  jobsDir: string;
  plan: Planner;
  /** How often idle workers look for work and running jobs for a cancel (ms, default 200). */
  pollMs?: number;
  /** Time a cancelled worker gets between SIGTERM and SIGKILL (ms, default 5000). */
  killGraceMs?: number;
  /** Extra environment for the workers. */
  env?: NodeJS.ProcessEnv;
}

interface Slot {
  name: string;
  child: ChildProcess | undefined;
  ready: boolean;
  job: number | undefined;
  killTimer?: NodeJS.Timeout;
}

/** Events: 'log' (id, line), 'state' (id) whenever a job starts or ends. */
export class WorkerPool extends EventEmitter {
  private readonly slots: Slot[];
  private timer: NodeJS.Timeout | undefined;
  private stopping = false;
  // The compiled worker beside this file (from the sources under test: the build's).
  private readonly script = fileURLToPath(
    new URL(import.meta.url.endsWith('.ts') ? '../dist/worker.js' : './worker.js', import.meta.url),
  );

  constructor(
    private readonly store: JobStore,
    private readonly options: PoolOptions,
  ) {
    super();
    const size = options.size ?? 1;
    this.slots = Array.from({ length: size }, (_, i) => ({
      name: `${hostname()}:${process.pid}:w${i}`,
      child: undefined,
      ready: false,
      job: undefined,
    }));
  }

  start(): void {
    for (const slot of this.slots) this.spawn(slot);
    this.timer = setInterval(() => this.tick(), this.options.pollMs ?? 200);
    this.timer.unref();
  }

  /** Worker process ids (for tests and the health route). */
  pids(): (number | undefined)[] {
    return this.slots.map((s) => s.child?.pid);
  }

  /** The pid of the worker running job `id`, if one of ours is. */
  pidOf(id: number): number | undefined {
    return this.slots.find((s) => s.job === id)?.child?.pid;
  }

  /** Stop the job's worker if one of ours runs it (the store already holds the cancel request). */
  cancel(id: number): void {
    const slot = this.slots.find((s) => s.job === id);
    if (slot?.child === undefined || slot.killTimer !== undefined) return;
    slot.child.kill('SIGTERM');
    const child = slot.child;
    slot.killTimer = setTimeout(() => child.kill('SIGKILL'), this.options.killGraceMs ?? 5000);
    slot.killTimer.unref();
  }

  async stop(): Promise<void> {
    this.stopping = true;
    if (this.timer !== undefined) clearInterval(this.timer);
    await Promise.all(
      this.slots.map(
        (s) =>
          new Promise<void>((done) => {
            const child = s.child;
            if (child === undefined || child.exitCode !== null || child.signalCode !== null) return done();
            child.once('exit', () => done());
            child.kill('SIGTERM');
            setTimeout(() => child.kill('SIGKILL'), 2000).unref();
          }),
      ),
    );
  }

  private spawn(slot: Slot): void {
    const child = fork(this.script, [], {
      env: { ...process.env, ...this.options.env },
      stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
      serialization: 'json',
    });
    slot.child = child;
    slot.ready = false;
    child.on('message', (m: ToPool) => this.onMessage(slot, m));
    child.on('exit', (code, signal) => this.onExit(slot, child, code, signal));
  }

  private tick(): void {
    if (this.stopping) return;
    for (const slot of this.slots) {
      if (slot.job !== undefined) {
        // A cancel asked through another process (or before the worker took it).
        try {
          if (this.store.get(slot.job).cancelRequested) this.cancel(slot.job);
        } catch {
          /* the job is gone: nothing to stop */
        }
        continue;
      }
      if (!slot.ready || slot.child === undefined) continue;
      const job = this.store.claim(slot.name);
      if (job === undefined) return;
      this.run(slot, job);
    }
  }

  private run(slot: Slot, job: Job): void {
    const dir = join(this.options.jobsDir, String(job.id));
    mkdirSync(dir, { recursive: true });
    let plan: ReturnType<Planner>;
    try {
      plan = this.options.plan(job, dir);
    } catch (error) {
      plan = { refuse: (error as Error).message };
    }
    if ('refuse' in plan) {
      this.store.fail(job.id, plan.refuse, slot.name, { final: true });
      this.emit('state', job.id);
      return;
    }
    slot.job = job.id;
    const message: ToWorker = { type: 'run', id: job.id, log: join(dir, 'log.txt'), ...plan };
    slot.child!.send(message);
    this.emit('state', job.id);
  }

  private onMessage(slot: Slot, m: ToPool): void {
    if (m.type === 'ready') {
      slot.ready = true;
      return;
    }
    if (m.id !== slot.job) return;
    if (m.type === 'log') {
      this.store.progress(m.id, { line: m.line.slice(0, 2000), at: Date.now() });
      this.emit('log', m.id, m.line);
      return;
    }
    slot.job = undefined;
    if (m.code === 0) {
      let result: unknown;
      try {
        result = m.stdout.trim() === '' ? null : JSON.parse(m.stdout);
      } catch {
        result = { stdout: m.stdout.slice(0, 100_000) };
      }
      this.store.complete(m.id, result, slot.name);
    } else {
      // Exit code 2 is a usage error: the same parameters would fail again, so no retry.
      const error = m.error ?? `sparsekit exited with code ${m.code}; see the job's log`;
      this.store.fail(m.id, error, slot.name, { final: m.code === 2 });
    }
    this.emit('state', m.id);
  }

  private onExit(slot: Slot, child: ChildProcess, code: number | null, signal: NodeJS.Signals | null): void {
    if (slot.child !== child) return;
    if (slot.killTimer !== undefined) clearTimeout(slot.killTimer);
    slot.killTimer = undefined;
    const id = slot.job;
    slot.job = undefined;
    slot.child = undefined;
    slot.ready = false;
    if (id !== undefined) {
      const how = signal === null ? `code ${code}` : `signal ${signal}`;
      // Cancelled when a cancel was asked; otherwise a failed attempt, retried by the job's policy.
      this.store.fail(id, `the worker process died (${how}) while running the job`, slot.name);
      this.emit('state', id);
    }
    if (!this.stopping) this.spawn(slot);
  }
}
