// Jobs on Redis through BullMQ, for scaling out: the API adds jobs to one queue, and any number of
// `sparsekit-server worker` processes on any machines take them (redis-worker.ts). BullMQ does the
// retries (attempts, exponential backoff), stalled-job detection (a worker that dies loses its lock,
// and the job goes back to wait) and job-id deduplication: an idempotency key becomes the job id, so
// the same key submitted again, even concurrently, adds nothing. Each job carries its plan (the
// command line with paths resolved), so workers need the shared folder only, at the same path.
import { createHash, randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { type Job as BullJob, Queue, QueueEvents } from 'bullmq';
import { Redis } from 'ioredis';
import type { Plans } from './plan.js';
import type { RunPlan } from './protocol.js';
import type { ApiJob, JobQueue } from './queue.js';
import { type JobKind, JobNotFoundError, type JobState, type SubmitOptions } from './store.js';

export const QUEUE_NAME = 'sparsekit-jobs';
/** The failure reason of a cancelled job. */
export const CANCELLED = 'cancelled';
export const CANCEL_CHANNEL = 'sparsekit:cancel';
export const cancelKey = (id: string) => `sparsekit:cancel:${id}`;

/** What a BullMQ job carries. */
export interface RedisJobData {
  kind: JobKind;
  params: unknown;
  plan: RunPlan;
  idempotencyKey: string | null;
  /** Tells the submit that added the job from those that found it. */
  nonce: string;
}

const ID = /^[kj]-[0-9a-f-]{8,64}$/;
const TYPES = {
  queued: ['waiting', 'delayed', 'prioritized', 'paused', 'waiting-children'],
  running: ['active'],
  succeeded: ['completed'],
  failed: ['failed'],
  cancelled: ['failed', 'waiting', 'delayed', 'prioritized', 'paused'],
} as const;

export function redisConnection(url: string): Redis {
  // BullMQ's workers and event streams block: they need requests that wait for a reconnect.
  const connection = new Redis(url, { maxRetriesPerRequest: null });
  // While Redis is away ioredis reconnects by itself; its connection errors are not ours to raise.
  connection.on('error', () => undefined);
  return connection;
}

export class RedisQueue implements JobQueue {
  readonly mode = 'redis';
  readonly events = new EventEmitter();
  private readonly connection: Redis;
  private readonly queue: Queue<RedisJobData>;
  private readonly queueEvents: QueueEvents;

  constructor(
    url: string,
    private readonly plans: Plans,
    private readonly backoffMs = 1000,
  ) {
    this.connection = redisConnection(url);
    this.queue = new Queue<RedisJobData>(QUEUE_NAME, { connection: this.connection });
    this.queueEvents = new QueueEvents(QUEUE_NAME, { connection: redisConnection(url) });
    this.queue.on('error', () => undefined);
    this.queueEvents.on('error', () => undefined);
    this.queueEvents.on('progress', ({ jobId, data }) => {
      const line = (data as { line?: unknown } | undefined)?.line;
      if (typeof line === 'string') this.events.emit('log', jobId, line);
    });
    for (const e of ['active', 'waiting', 'completed', 'failed', 'delayed', 'stalled'] as const)
      this.queueEvents.on(e, ({ jobId }: { jobId: string }) => this.events.emit('state', jobId));
  }

  async submit(options: SubmitOptions): Promise<{ job: ApiJob; created: boolean }> {
    const key = options.idempotencyKey;
    // BullMQ job ids may not hold ':' nor be all digits: a hash of the key, or a random id.
    const jobId =
      key === undefined
        ? `j-${randomUUID()}`
        : `k-${createHash('sha256').update(key).digest('hex').slice(0, 40)}`;
    const nonce = randomUUID();
    const known = key === undefined ? undefined : await this.queue.getJob(jobId);
    if (known === undefined) {
      await this.queue.add(
        options.kind,
        {
          kind: options.kind,
          params: options.params,
          plan: this.plans.plan(options.kind, options.params, jobId),
          idempotencyKey: key ?? null,
          nonce,
        },
        {
          jobId,
          attempts: options.maxAttempts ?? 3,
          backoff: { type: 'exponential', delay: this.backoffMs },
          removeOnComplete: false,
          removeOnFail: false,
        },
      );
    }
    const job = await this.queue.getJob(jobId);
    if (job === undefined) throw new JobNotFoundError(jobId);
    return { job: await this.toApi(job), created: job.data.nonce === nonce };
  }

  async get(id: string): Promise<ApiJob> {
    const job = ID.test(id) ? await this.queue.getJob(id) : undefined;
    if (job === undefined) throw new JobNotFoundError(id);
    return this.toApi(job);
  }

  async list(options: { state?: JobState; limit?: number }): Promise<ApiJob[]> {
    const limit = options.limit ?? 100;
    const types =
      options.state === undefined ? [...new Set(Object.values(TYPES).flat())] : [...TYPES[options.state]];
    const jobs = (await this.queue.getJobs(types as never, 0, limit - 1, true)).filter(
      (j): j is BullJob<RedisJobData> => j !== undefined,
    );
    const api = await Promise.all(jobs.map((j) => this.toApi(j)));
    return api
      .filter((j) => options.state === undefined || j.state === options.state)
      .sort((a, b) => a.createdAt - b.createdAt)
      .slice(0, limit);
  }

  async cancel(id: string): Promise<ApiJob> {
    const job = await this.get(id);
    if (job.state === 'queued' || job.state === 'running') {
      await this.connection.set(cancelKey(String(job.id)), '1', 'EX', 7 * 24 * 3600);
      await this.connection.publish(CANCEL_CHANNEL, String(job.id));
    }
    return this.get(id);
  }

  workers(): number {
    return 0;
  }

  async close(): Promise<void> {
    await this.queueEvents.close();
    await this.queue.close();
    await this.connection.quit().catch(() => undefined);
  }

  private async toApi(job: BullJob<RedisJobData>): Promise<ApiJob> {
    const [s, cancel] = await Promise.all([job.getState(), this.connection.exists(cancelKey(job.id!))]);
    const state: JobState =
      s === 'completed'
        ? 'succeeded'
        : s === 'failed'
          ? job.failedReason === CANCELLED
            ? 'cancelled'
            : 'failed'
          : s === 'active'
            ? 'running'
            : cancel === 1
              ? 'cancelled'
              : 'queued';
    const progress = typeof job.progress === 'object' ? job.progress : null;
    return {
      id: job.id!,
      kind: job.data.kind,
      params: job.data.params,
      state,
      idempotencyKey: job.data.idempotencyKey,
      attempts: job.attemptsStarted ?? job.attemptsMade,
      maxAttempts: job.opts.attempts ?? 1,
      runAfter: job.timestamp + (job.delay ?? 0),
      createdAt: job.timestamp,
      updatedAt: Math.max(job.timestamp, job.processedOn ?? 0, job.finishedOn ?? 0),
      startedAt: job.processedOn ?? null,
      finishedAt: job.finishedOn ?? null,
      worker: job.processedBy ?? null,
      cancelRequested: cancel === 1,
      progress: state === 'running' ? progress : null,
      result: job.returnvalue ?? null,
      error: job.failedReason ?? null,
    };
  }
}
