// One worker process (worker.ts) as its parent sees it: forked, ready once it has loaded, running one
// job at a time, with the job's log lines and its end reported as events. Used by the local pool
// and by Redis workers alike.
import { type ChildProcess, fork } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { JobId, RunPlan, ToPool, ToWorker } from './protocol.js';

// The compiled worker beside this file (from the sources under test: the build's).
const SCRIPT = fileURLToPath(
  new URL(import.meta.url.endsWith('.ts') ? '../dist/worker.js' : './worker.js', import.meta.url),
);

export interface Finished {
  id: JobId;
  /** The command's exit code, or null when the process died (then `signal` or `exitCode` say how). */
  code: number | null;
  stdout: string;
  error?: string;
}

/** Events: 'ready', 'log' (id, line), 'done' (Finished), 'exit' (code, signal, the job it was running). */
export class WorkerProcess extends EventEmitter {
  readonly process: ChildProcess;
  ready = false;
  job: JobId | undefined;
  private killTimer: NodeJS.Timeout | undefined;

  constructor(env: NodeJS.ProcessEnv = {}) {
    super();
    this.process = fork(SCRIPT, [], {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
      serialization: 'json',
    });
    this.process.on('message', (m: ToPool) => {
      if (m.type === 'ready') {
        this.ready = true;
        this.emit('ready');
      } else if (m.id === this.job) {
        if (m.type === 'log') this.emit('log', m.id, m.line);
        else {
          this.job = undefined;
          this.emit('done', {
            id: m.id,
            code: m.code,
            stdout: m.stdout,
            ...(m.error === undefined ? {} : { error: m.error }),
          });
        }
      }
    });
    this.process.on('exit', (code, signal) => {
      if (this.killTimer !== undefined) clearTimeout(this.killTimer);
      const job = this.job;
      this.job = undefined;
      this.ready = false;
      this.emit('exit', code, signal, job);
    });
  }

  get pid(): number | undefined {
    return this.process.pid;
  }

  get alive(): boolean {
    return this.process.exitCode === null && this.process.signalCode === null;
  }

  /** Start a job (the process must be ready and idle). */
  run(id: JobId, plan: RunPlan): void {
    mkdirSync(plan.dir, { recursive: true });
    this.job = id;
    const message: ToWorker = { type: 'run', id, log: join(plan.dir, 'log.txt'), ...plan };
    this.process.send(message);
  }

  /** SIGTERM, then SIGKILL after `graceMs`. */
  stop(graceMs = 5000): void {
    if (!this.alive || this.killTimer !== undefined) return;
    this.process.kill('SIGTERM');
    this.killTimer = setTimeout(() => this.process.kill('SIGKILL'), graceMs);
    this.killTimer.unref();
  }
}

/** Run one job in a fresh worker process: its end, or null when the process died first. */
export function runInChild(
  id: JobId,
  plan: RunPlan,
  options: {
    env?: NodeJS.ProcessEnv;
    onLog?: (line: string) => void;
    onStart?: (child: WorkerProcess) => void;
  } = {},
): Promise<Finished & { signal?: NodeJS.Signals | null }> {
  const child = new WorkerProcess(options.env);
  return new Promise((resolve) => {
    let finished: Finished | undefined;
    child.once('ready', () => {
      child.run(id, plan);
      options.onStart?.(child);
    });
    child.on('log', (_id: JobId, line: string) => options.onLog?.(line));
    child.once('done', (f: Finished) => {
      finished = f;
      child.process.disconnect();
    });
    child.once('exit', (code: number | null, signal: NodeJS.Signals | null) => {
      resolve(
        finished ?? {
          id,
          code: null,
          stdout: '',
          signal,
          error: `the worker process died (${signal ?? `code ${code}`}) while running the job`,
        },
      );
    });
  });
}
