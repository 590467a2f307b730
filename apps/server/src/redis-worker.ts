// A Redis worker (`sparsekit-server worker --redis URL`): BullMQ's Worker takes jobs from the queue
// and runs each in its own child process (worker.ts, as the local pool does), so this process stays
// idle and renews its locks on time: BullMQ's lock renewal stalls under CPU-bound processors
// (bullmq#631), which is why its maintainers recommend sandboxed processors. Cancel arrives by Redis
// pub/sub and is a signal to the child.
import { hostname } from 'node:os';
import { type Job, UnrecoverableError, Worker } from 'bullmq';
import { runInChild, type WorkerProcess } from './child.js';
import { parseResult } from './pool.js';
import {
  CANCEL_CHANNEL,
  CANCELLED,
  cancelKey,
  QUEUE_NAME,
  type RedisJobData,
  redisConnection,
} from './redis-queue.js';

export interface RedisWorkerOptions {
  url: string;
  /** Jobs at once (each in its own process; default 1). */
  concurrency?: number;
  /** BullMQ's lock duration and stalled-job check interval (ms; BullMQ's defaults 30000 and 30000). */
  lockDuration?: number;
  stalledInterval?: number;
  /** Extra environment for the job processes. */
  env?: NodeJS.ProcessEnv;
}

export async function startRedisWorker(options: RedisWorkerOptions): Promise<{ close(): Promise<void> }> {
  const connection = redisConnection(options.url);
  const subscriber = redisConnection(options.url);
  const running = new Map<string, WorkerProcess>();
  await subscriber.subscribe(CANCEL_CHANNEL);
  subscriber.on('message', (_channel: string, id: string) => running.get(id)?.stop());
  const cancelled = async (id: string) => (await connection.exists(cancelKey(id))) === 1;

  const worker = new Worker<RedisJobData>(
    QUEUE_NAME,
    async (job: Job<RedisJobData>) => {
      const id = job.id!;
      if (await cancelled(id)) throw new UnrecoverableError(CANCELLED);
      const end = await runInChild(id, job.data.plan, {
        ...(options.env === undefined ? {} : { env: options.env }),
        onLog: (line) => {
          job.updateProgress({ line: line.slice(0, 2000), at: Date.now() }).catch(() => undefined);
        },
        onStart: (child) => {
          running.set(id, child);
          // A cancel published between the check above and now.
          cancelled(id).then(
            (yes) => yes && child.stop(),
            () => undefined,
          );
        },
      });
      running.delete(id);
      if (end.code === 0) return parseResult(end.stdout);
      if (await cancelled(id)) throw new UnrecoverableError(CANCELLED);
      // Exit code 2 is a usage error: the same parameters would fail again.
      if (end.code === 2)
        throw new UnrecoverableError(
          end.error ?? 'sparsekit exited with code 2 (a usage error); see the log',
        );
      throw new Error(end.error ?? `sparsekit exited with code ${end.code}; see the job's log`);
    },
    {
      connection,
      concurrency: options.concurrency ?? 1,
      lockDuration: options.lockDuration ?? 30_000,
      stalledInterval: options.stalledInterval ?? 30_000,
      maxStalledCount: 1,
      name: `${hostname()}:${process.pid}`,
    },
  );
  worker.on('error', () => undefined); // connection errors while Redis restarts: ioredis reconnects
  await worker.waitUntilReady();
  return {
    async close() {
      for (const child of running.values()) child.stop(1000);
      await worker.close();
      await subscriber.quit().catch(() => undefined);
      await connection.quit().catch(() => undefined);
    },
  };
}
