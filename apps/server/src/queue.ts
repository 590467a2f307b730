// The jobs behind the API, in either mode: the embedded SQLite store with the local worker pool
// (`LocalQueue`), or BullMQ on Redis with workers anywhere (`RedisQueue`, redis-queue.ts). The API
// sees only this interface.
import type { EventEmitter } from 'node:events';
import type { WorkerPool } from './pool.js';
import type { JobId } from './protocol.js';
import { type Job, JobNotFoundError, type JobState, type JobStore, type SubmitOptions } from './store.js';

/** A job as the API returns it (ids are numbers with SQLite, strings with Redis). */
export type ApiJob = Omit<Job, 'id'> & { id: JobId };

export interface JobQueue {
  readonly mode: 'sqlite' | 'redis';
  /** 'log' (id, line) for each progress line, 'state' (id) when a job may have changed. */
  readonly events: EventEmitter;
  submit(options: SubmitOptions): Promise<{ job: ApiJob; created: boolean }>;
  get(id: string): Promise<ApiJob>;
  list(options: { state?: JobState; limit?: number }): Promise<ApiJob[]>;
  /** A queued job at once; a running one by a signal to its worker. */
  cancel(id: string): Promise<ApiJob>;
  /** Worker processes this server runs (0 when they run elsewhere). */
  workers(): number;
  close(): Promise<void>;
}

export class LocalQueue implements JobQueue {
  readonly mode = 'sqlite';

  constructor(
    readonly store: JobStore,
    readonly pool: WorkerPool,
  ) {}

  get events(): EventEmitter {
    return this.pool;
  }

  private id(id: string): number {
    const n = Number(id);
    if (!/^[0-9]{1,15}$/.test(id) || n < 1) throw new JobNotFoundError(id);
    return n;
  }

  async submit(options: SubmitOptions) {
    return this.store.submit(options);
  }

  async get(id: string) {
    return this.store.get(this.id(id));
  }

  async list(options: { state?: JobState; limit?: number }) {
    return this.store.list(options);
  }

  async cancel(id: string) {
    const job = this.store.cancel(this.id(id));
    this.pool.cancel(job.id);
    return job;
  }

  workers(): number {
    return this.pool.size();
  }

  async close() {
    await this.pool.stop();
    this.store.close();
  }
}
