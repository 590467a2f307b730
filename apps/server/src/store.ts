// The embedded job store: jobs in one SQLite file (better-sqlite3, WAL), shared by the server and
// its worker processes. Submission is idempotent by key; a queued job is claimed by exactly one
// worker; a result is committed exactly once (keyed by job id, only while the job runs); a failed or
// interrupted run is retried with exponential backoff until its attempts are spent; a restart
// re-queues what was running when the server died.

import { InvalidArgumentError, IOError, SparsekitError } from '@sparsekit/core';
import Database from 'better-sqlite3';

export const JOB_KINDS = ['prune', 'eval', 'sweep', 'sae-train', 'sae-features', 'bench', 'convert'] as const;
export type JobKind = (typeof JOB_KINDS)[number];
export type JobState = 'queued' | 'running' | 'succeeded' | 'failed' | 'cancelled';

/** Largest params or result JSON a job may hold. */
export const MAX_JSON_BYTES = 1 << 20;
const MAX_KEY_LENGTH = 200;

export interface Job {
  id: number;
  kind: JobKind;
  params: unknown;
  state: JobState;
  idempotencyKey: string | null;
  attempts: number;
  maxAttempts: number;
  /** Not before this time (ms since the epoch): the backoff after a failed attempt. */
  runAfter: number;
  createdAt: number;
  updatedAt: number;
  startedAt: number | null;
  finishedAt: number | null;
  worker: string | null;
  cancelRequested: boolean;
  progress: unknown;
  result: unknown;
  error: string | null;
}

/** A job id that is not in the store. */
export class JobNotFoundError extends SparsekitError {
  static override readonly code = 'server/job-not-found';
  static override readonly hint = 'list the jobs to see their ids';

  /** A number in the SQLite store, a BullMQ job id with Redis. */
  constructor(readonly id: number | string) {
    super(JobNotFoundError.code, `No job ${typeof id === 'number' ? id : JSON.stringify(id)}.`);
  }
}

export interface SubmitOptions {
  kind: JobKind;
  params: unknown;
  /** The same key submitted again returns the job it made (and its params are not compared). */
  idempotencyKey?: string;
  /** Attempts before a failing job is failed for good (default 3). */
  maxAttempts?: number;
}

export interface StoreOptions {
  /** Backoff before attempt n + 1: baseMs * 2^(n - 1) (default 1000). */
  backoffBaseMs?: number;
  /** The clock (for tests). */
  now?: () => number;
}

interface Row {
  id: number;
  kind: JobKind;
  params: string;
  state: JobState;
  idempotency_key: string | null;
  attempts: number;
  max_attempts: number;
  run_after: number;
  created_at: number;
  updated_at: number;
  started_at: number | null;
  finished_at: number | null;
  worker: string | null;
  cancel_requested: number;
  progress: string | null;
  result: string | null;
  error: string | null;
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS jobs (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  kind TEXT NOT NULL,
  params TEXT NOT NULL,
  state TEXT NOT NULL CHECK (state IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
  idempotency_key TEXT UNIQUE,
  attempts INTEGER NOT NULL DEFAULT 0,
  max_attempts INTEGER NOT NULL,
  run_after INTEGER NOT NULL,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  started_at INTEGER,
  finished_at INTEGER,
  worker TEXT,
  cancel_requested INTEGER NOT NULL DEFAULT 0,
  progress TEXT,
  result TEXT,
  error TEXT
);
CREATE INDEX IF NOT EXISTS jobs_queue ON jobs (state, run_after, id);
`;

function toJson(value: unknown, what: string): string {
  let text: string | undefined;
  try {
    text = JSON.stringify(value);
  } catch (error) {
    throw new InvalidArgumentError(what, typeof value, `must be JSON (${(error as Error).message})`);
  }
  if (text === undefined) throw new InvalidArgumentError(what, typeof value, 'must be JSON');
  if (text.length > MAX_JSON_BYTES)
    throw new InvalidArgumentError(what, `${text.length} bytes`, `is larger than ${MAX_JSON_BYTES}`);
  return text;
}

function fromRow(r: Row): Job {
  return {
    id: r.id,
    kind: r.kind,
    params: JSON.parse(r.params),
    state: r.state,
    idempotencyKey: r.idempotency_key,
    attempts: r.attempts,
    maxAttempts: r.max_attempts,
    runAfter: r.run_after,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
    startedAt: r.started_at,
    finishedAt: r.finished_at,
    worker: r.worker,
    cancelRequested: r.cancel_requested === 1,
    progress: r.progress === null ? null : JSON.parse(r.progress),
    result: r.result === null ? null : JSON.parse(r.result),
    error: r.error,
  };
}

export class JobStore {
  private readonly now: () => number;
  private readonly backoffBaseMs: number;

  private constructor(
    private readonly db: Database.Database,
    options: StoreOptions,
  ) {
    this.now = options.now ?? Date.now;
    this.backoffBaseMs = options.backoffBaseMs ?? 1000;
  }

  /** Open (creating if needed) the store at `path` (':memory:' for a private one). */
  static open(path: string, options: StoreOptions = {}): JobStore {
    let db: Database.Database;
    try {
      db = new Database(path);
      db.pragma('journal_mode = WAL');
      db.pragma('busy_timeout = 10000');
      db.pragma('synchronous = FULL');
      db.exec(SCHEMA);
    } catch (error) {
      throw new IOError(path, 'cannot open the job store', error);
    }
    return new JobStore(db, options);
  }

  close(): void {
    this.db.close();
  }

  /** The SQLite connection (the token store keeps its table in the same file). */
  get database(): Database.Database {
    return this.db;
  }

  /** Submit a job, or with an idempotency key already used, get the job it made. */
  submit(options: SubmitOptions): { job: Job; created: boolean } {
    if (!(JOB_KINDS as readonly string[]).includes(options.kind))
      throw new InvalidArgumentError('kind', options.kind, `must be one of ${JOB_KINDS.join(', ')}`);
    const params = toJson(options.params, 'params');
    const key = options.idempotencyKey;
    if (key !== undefined && (typeof key !== 'string' || key === '' || key.length > MAX_KEY_LENGTH))
      throw new InvalidArgumentError(
        'idempotencyKey',
        key,
        `must be a non-empty string of at most ${MAX_KEY_LENGTH} characters`,
      );
    const maxAttempts = options.maxAttempts ?? 3;
    if (!(Number.isInteger(maxAttempts) && maxAttempts >= 1 && maxAttempts <= 100))
      throw new InvalidArgumentError('maxAttempts', maxAttempts, 'must be an integer in [1, 100]');
    const run = this.db.transaction(() => {
      if (key !== undefined) {
        const found = this.db.prepare('SELECT * FROM jobs WHERE idempotency_key = ?').get(key) as
          | Row
          | undefined;
        if (found !== undefined) return { job: fromRow(found), created: false };
      }
      const t = this.now();
      const row = this.db
        .prepare(
          `INSERT INTO jobs (kind, params, state, idempotency_key, max_attempts, run_after, created_at, updated_at)
           VALUES (?, ?, 'queued', ?, ?, ?, ?, ?) RETURNING *`,
        )
        .get(options.kind, params, key ?? null, maxAttempts, t, t, t) as Row;
      return { job: fromRow(row), created: true };
    });
    // IMMEDIATE: the key lookup and the insert hold the write lock together across processes.
    return run.immediate();
  }

  get(id: number): Job {
    const row = this.db.prepare('SELECT * FROM jobs WHERE id = ?').get(id) as Row | undefined;
    if (row === undefined) throw new JobNotFoundError(id);
    return fromRow(row);
  }

  list(options: { state?: JobState; limit?: number } = {}): Job[] {
    const limit = options.limit ?? 100;
    const rows = (
      options.state === undefined
        ? this.db.prepare('SELECT * FROM jobs ORDER BY id LIMIT ?').all(limit)
        : this.db.prepare('SELECT * FROM jobs WHERE state = ? ORDER BY id LIMIT ?').all(options.state, limit)
    ) as Row[];
    return rows.map(fromRow);
  }

  /** The oldest runnable queued job, now running for `worker` (one attempt more); undefined if none. */
  claim(worker: string): Job | undefined {
    const t = this.now();
    const row = this.db
      .prepare(
        `UPDATE jobs SET state = 'running', attempts = attempts + 1, worker = ?, started_at = ?, updated_at = ?
         WHERE id = (SELECT id FROM jobs WHERE state = 'queued' AND run_after <= ? ORDER BY id LIMIT 1)
         RETURNING *`,
      )
      .get(worker, t, t, t) as Row | undefined;
    return row === undefined ? undefined : fromRow(row);
  }

  /** Record a running job's progress (ignored once it is no longer running). */
  progress(id: number, progress: unknown): void {
    this.db
      .prepare(`UPDATE jobs SET progress = ?, updated_at = ? WHERE id = ? AND state = 'running'`)
      .run(toJson(progress, 'progress'), this.now(), id);
  }

  /**
   * Commit a running job's result: true the first time; false when the job is not running (it
   * finished already, was cancelled, or was re-queued), and then nothing changes.
   */
  complete(id: number, result: unknown, worker?: string): boolean {
    const text = toJson(result, 'result');
    const t = this.now();
    const r = this.db
      .prepare(
        `UPDATE jobs SET state = 'succeeded', result = ?, finished_at = ?, updated_at = ?, progress = NULL
         WHERE id = ? AND state = 'running' AND (? IS NULL OR worker = ?)`,
      )
      .run(text, t, t, id, worker ?? null, worker ?? null);
    return r.changes === 1;
  }

  /**
   * A running job's attempt failed: re-queued after a backoff while attempts remain (or failed for
   * good, or at once with `final`; cancelled if a cancel was asked). Returns the job's new state, or undefined when it was
   * not running.
   */
  fail(id: number, error: string, worker?: string, options: { final?: boolean } = {}): JobState | undefined {
    const run = this.db.transaction(() => {
      const row = this.db.prepare(`SELECT * FROM jobs WHERE id = ? AND state = 'running'`).get(id) as
        | Row
        | undefined;
      if (row === undefined || (worker !== undefined && row.worker !== worker)) return undefined;
      const t = this.now();
      const state: JobState =
        row.cancel_requested === 1
          ? 'cancelled'
          : row.attempts < row.max_attempts && options.final !== true
            ? 'queued'
            : 'failed';
      const runAfter = state === 'queued' ? t + this.backoffBaseMs * 2 ** (row.attempts - 1) : row.run_after;
      this.db
        .prepare(
          `UPDATE jobs SET state = ?, error = ?, run_after = ?, updated_at = ?, worker = NULL,
             finished_at = CASE WHEN ? = 'queued' THEN NULL ELSE ? END
           WHERE id = ?`,
        )
        .run(state, error.slice(0, 10_000), runAfter, t, state, t, id);
      return state;
    });
    return run.immediate();
  }

  /** Cancel: a queued job at once; a running one is asked to stop (its worker checks). */
  cancel(id: number): Job {
    const t = this.now();
    this.db
      .transaction(() => {
        this.get(id);
        this.db
          .prepare(
            `UPDATE jobs SET state = 'cancelled', finished_at = ?, updated_at = ? WHERE id = ? AND state = 'queued'`,
          )
          .run(t, t, id);
        this.db
          .prepare(`UPDATE jobs SET cancel_requested = 1, updated_at = ? WHERE id = ? AND state = 'running'`)
          .run(t, id);
      })
      .immediate();
    return this.get(id);
  }

  /** A running job cancelled by its worker after it stopped. */
  cancelled(id: number): boolean {
    const t = this.now();
    return (
      this.db
        .prepare(
          `UPDATE jobs SET state = 'cancelled', finished_at = ?, updated_at = ?, worker = NULL WHERE id = ? AND state = 'running'`,
        )
        .run(t, t, id).changes === 1
    );
  }

  /**
   * After a restart: every job left running (its worker died with the server) counts as a failed
   * attempt, so it is re-queued or failed by its policy. Returns the ids it touched.
   */
  recover(): number[] {
    const running = this.db.prepare(`SELECT id FROM jobs WHERE state = 'running'`).all() as { id: number }[];
    for (const { id } of running) this.fail(id, 'interrupted: the server stopped while the job ran');
    return running.map((r) => r.id);
  }
}
