// The HTTP API (Fastify): models, jobs, their progress as Server-Sent Events, logs and results.
// Every route but /health needs a bearer token; each token has a rate limit; bodies are validated
// against JSON schemas (the job kinds' from their method tables); CORS is off unless origins are given.
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { InvalidArgumentError, SparsekitError } from '@sparsekit/core';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { ArchiveRefusedError, packDir } from './archive.js';
import { KINDS, paramsSchema } from './kinds.js';
import { MODEL_NAME, ModelRegistry } from './models.js';
import { openApi } from './openapi.js';
import { PathRefusedError, resolveInside } from './paths.js';
import { Plans } from './plan.js';
import { WorkerPool } from './pool.js';
import type { JobId } from './protocol.js';
import { type ApiJob, type JobQueue, LocalQueue } from './queue.js';
import { RedisQueue } from './redis-queue.js';
import { JOB_KINDS, type JobKind, type JobState, JobStore } from './store.js';
import { RateLimiter, TokenStore } from './tokens.js';

export interface ServerLimits {
  /** Largest model upload, in bytes of file data (default 4 GiB). */
  uploadBytes: number;
  /** Most entries in an upload (default 10 000). */
  uploadEntries: number;
  /** Requests a token may make at once, refilled at `ratePerSecond` (default 60 and 20). */
  rateCapacity: number;
  ratePerSecond: number;
}

export interface ServerOptions {
  /** The server's own folder: jobs.sqlite, jobs/<id>/, models/<uploaded name>/. */
  dataDir: string;
  /** Model folders and text files clients may name live below this root (default: dataDir). */
  root?: string;
  /** Worker processes (default 1; 0 for an API that only queues, as with remote workers). */
  workers?: number;
  limits?: Partial<ServerLimits>;
  /** Origins allowed to call the API from a browser (CORS is off without them). */
  corsOrigins?: readonly string[];
  /** Environment for the workers (tests set SPARSEKIT_NATIVE and the like). */
  workerEnv?: NodeJS.ProcessEnv;
  /** Jobs on Redis through BullMQ (workers: `sparsekit-server worker`); default: the SQLite store. */
  redis?: string;
  /** Fastify's request log (default off). */
  logger?: boolean;
  pollMs?: number;
  backoffBaseMs?: number;
}

export const DEFAULT_LIMITS: ServerLimits = {
  uploadBytes: 4 * 2 ** 30,
  uploadEntries: 10_000,
  rateCapacity: 60,
  ratePerSecond: 20,
};

// The dashboard's files, beside src/ and dist/.
const UI = fileURLToPath(new URL('../ui/', import.meta.url));
const UI_FILES: Record<string, string> = {
  'index.html': 'text/html; charset=utf-8',
  'dashboard.js': 'text/javascript; charset=utf-8',
  'dashboard.css': 'text/css; charset=utf-8',
};
/** Routes without a token: health, and the dashboard's page and code (they hold no data). */
const PUBLIC = new Set(['/health', '/', '/ui/dashboard.js', '/ui/dashboard.css']);

const STATES: readonly JobState[] = ['queued', 'running', 'succeeded', 'failed', 'cancelled'];
const FINAL = new Set<JobState>(['succeeded', 'failed', 'cancelled']);

export interface Server {
  app: FastifyInstance;
  store: JobStore;
  tokens: TokenStore;
  models: ModelRegistry;
  /** The local worker pool (undefined with Redis, whose workers run elsewhere). */
  pool: WorkerPool | undefined;
  queue: JobQueue;
  close(): Promise<void>;
}

const errorBody = (code: string, message: string, hint?: string) => ({
  error: { code, message, ...(hint === undefined ? {} : { hint }) },
});

/** The HTTP status of a typed error. */
function statusOf(error: SparsekitError): number {
  if (error instanceof ArchiveRefusedError)
    return error.reason === 'too-large' || error.reason === 'too-many-entries' ? 413 : 400;
  switch (error.code) {
    case 'server/job-not-found':
    case 'server/model-not-found':
      return 404;
    case 'server/model-exists':
    case 'core/target-refused':
      return 409;
    default:
      return error instanceof InvalidArgumentError || error instanceof PathRefusedError ? 400 : 500;
  }
}

export async function createServer(options: ServerOptions): Promise<Server> {
  const limits = { ...DEFAULT_LIMITS, ...options.limits };
  const dataDir = options.dataDir;
  mkdirSync(join(dataDir, 'jobs'), { recursive: true });
  mkdirSync(join(dataDir, 'models'), { recursive: true });
  const root = options.root ?? dataDir;
  const store = JobStore.open(join(dataDir, 'jobs.sqlite'), {
    ...(options.backoffBaseMs === undefined ? {} : { backoffBaseMs: options.backoffBaseMs }),
  });
  const tokens = new TokenStore(store.database);
  const models = new ModelRegistry(store.database, root, join(dataDir, 'models'));
  const limiter = new RateLimiter(limits.rateCapacity, limits.ratePerSecond);
  const jobsDir = join(dataDir, 'jobs');
  const plans = new Plans(models, root, jobsDir);
  let pool: WorkerPool | undefined;
  let queue: JobQueue;
  if (options.redis !== undefined) queue = new RedisQueue(options.redis, plans, options.backoffBaseMs);
  else {
    store.recover();
    pool = new WorkerPool(store, {
      size: options.workers ?? 1,
      plans,
      ...(options.pollMs === undefined ? {} : { pollMs: options.pollMs }),
      ...(options.workerEnv === undefined ? {} : { env: options.workerEnv }),
    });
    queue = new LocalQueue(store, pool);
  }

  const app = Fastify({
    logger: options.logger ?? false,
    bodyLimit: 1 << 20,
    // Reject what the schemas do not allow (Fastify's defaults would drop unknown fields and coerce types).
    ajv: { customOptions: { removeAdditional: false, coerceTypes: false, allErrors: true } },
  });
  // Model uploads arrive as a raw tar stream.
  app.addContentTypeParser(['application/x-tar', 'application/octet-stream'], (_req, payload, done) =>
    done(null, payload),
  );

  app.addHook('onRequest', async (req, reply) => {
    const origin = req.headers.origin;
    if (origin !== undefined && options.corsOrigins?.includes(origin)) {
      reply.header('access-control-allow-origin', origin);
      reply.header('vary', 'origin');
      reply.header('access-control-allow-headers', 'authorization, content-type');
      reply.header('access-control-allow-methods', 'GET, POST, PUT, OPTIONS');
      if (req.method === 'OPTIONS') return reply.code(204).send();
    }
    if (PUBLIC.has(req.url.split('?')[0]!)) return;
    const header = req.headers.authorization;
    const token = header?.startsWith('Bearer ') === true ? header.slice(7) : undefined;
    const name = tokens.verify(token);
    if (name === undefined) {
      reply.header('www-authenticate', 'Bearer');
      return reply
        .code(401)
        .send(
          errorBody(
            'server/unauthorized',
            'A valid bearer token is required.',
            'create one with `sparsekit-server token create NAME`',
          ),
        );
    }
    const wait = limiter.take(name);
    if (wait > 0) {
      reply.header('retry-after', String(Math.ceil(wait / 1000)));
      return reply
        .code(429)
        .send(errorBody('server/rate-limited', `Too many requests; retry in ${wait} ms.`));
    }
  });

  app.setErrorHandler((error, _req, reply) => {
    const e = error as Error & { validation?: unknown; statusCode?: number; code?: string };
    if (e.validation !== undefined)
      return reply.code(400).send(errorBody('server/invalid-request', e.message));
    if (SparsekitError.isInstance(error)) {
      const se = error as SparsekitError;
      return reply.code(statusOf(se)).send(errorBody(se.code, se.message, se.hint));
    }
    if (typeof e.statusCode === 'number' && e.statusCode >= 400 && e.statusCode < 500)
      return reply.code(e.statusCode).send(errorBody(`server/${e.code ?? 'bad-request'}`, e.message));
    reply.log.error(error);
    return reply.code(500).send(errorBody('server/internal', e.message ?? 'internal error'));
  });

  app.get('/health', async () => ({ ok: true, mode: queue.mode, workers: queue.workers() }));
  app.get('/', async (_req, reply) =>
    reply.type(UI_FILES['index.html']!).send(readFileSync(join(UI, 'index.html'))),
  );
  app.get('/ui/:file', async (req, reply) => {
    const file = (req.params as { file: string }).file;
    const type = UI_FILES[file];
    if (type === undefined || file === 'index.html')
      return reply.code(404).send(errorBody('server/not-found', `No ${req.url}.`));
    return reply
      .type(type)
      .header('cache-control', 'no-cache')
      .send(readFileSync(join(UI, file)));
  });
  const document = openApi();
  app.get('/openapi.json', async () => document);

  // ---- models ----
  app.get('/models', async () => ({ models: models.list() }));
  app.post(
    '/models',
    {
      schema: {
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['name', 'path'],
          properties: {
            name: { type: 'string', pattern: MODEL_NAME.source },
            path: { type: 'string', maxLength: 4096 },
          },
        },
      },
    },
    async (req, reply) => {
      const { name, path } = req.body as { name: string; path: string };
      return reply.code(201).send(models.register(name, path));
    },
  );
  app.put(
    '/models/:name',
    {
      schema: {
        params: { type: 'object', properties: { name: { type: 'string', pattern: MODEL_NAME.source } } },
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: { replace: { type: 'string', enum: ['true', 'false'] } },
        },
      },
    },
    async (req, reply) => {
      const { name } = req.params as { name: string };
      const declared = Number(req.headers['content-length'] ?? Number.NaN);
      if (declared > limits.uploadBytes + 1024 * limits.uploadEntries + (1 << 20))
        throw new ArchiveRefusedError('too-large', `the request declares ${declared} bytes`);
      const body = req.body as Readable | undefined;
      if (body === undefined || typeof (body as Readable).pipe !== 'function')
        throw new InvalidArgumentError('body', typeof body, 'send the tar as application/x-tar');
      const replace = (req.query as { replace?: string }).replace === 'true';
      const entry = await models.upload(
        name,
        body,
        { maxBytes: limits.uploadBytes, maxEntries: limits.uploadEntries },
        { replace },
      );
      return reply.code(201).send(entry);
    },
  );
  app.get('/models/:name', async (req) => {
    const entry = models.get((req.params as { name: string }).name);
    const files = readdirSync(entry.path, { withFileTypes: true })
      .filter((f) => f.isFile())
      .map((f) => ({ name: f.name, bytes: statSync(join(entry.path, f.name)).size }));
    const config = JSON.parse(readFileSync(join(entry.path, 'config.json'), 'utf8')) as unknown;
    return { ...entry, files, config };
  });

  // ---- jobs ----
  app.post(
    '/jobs',
    {
      schema: {
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['kind'],
          properties: {
            kind: { type: 'string', enum: JOB_KINDS },
            params: { type: 'object' },
            idempotencyKey: { type: 'string', minLength: 1, maxLength: 200 },
            maxAttempts: { type: 'integer', minimum: 1, maximum: 10 },
          },
        },
      },
    },
    async (req, reply) => {
      const body = req.body as {
        kind: JobKind;
        params?: unknown;
        idempotencyKey?: string;
        maxAttempts?: number;
      };
      const params = body.params ?? {};
      plans.check(body.kind, params);
      const { job, created } = await queue.submit({
        kind: body.kind,
        params,
        ...(body.idempotencyKey === undefined ? {} : { idempotencyKey: body.idempotencyKey }),
        ...(body.maxAttempts === undefined ? {} : { maxAttempts: body.maxAttempts }),
      });
      return reply.code(created ? 201 : 200).send(job);
    },
  );
  app.get(
    '/jobs',
    {
      schema: {
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: {
            state: { type: 'string', enum: STATES },
            limit: { type: 'string', pattern: '^[0-9]{1,4}$' },
          },
        },
      },
    },
    async (req) => {
      const q = req.query as { state?: JobState; limit?: string };
      return {
        jobs: await queue.list({
          ...(q.state === undefined ? {} : { state: q.state }),
          limit: Number(q.limit ?? 100),
        }),
      };
    },
  );
  const idOf = (req: FastifyRequest) => (req.params as { id: string }).id;
  const jobOf = (req: FastifyRequest): Promise<ApiJob> => queue.get(idOf(req));
  const dirOf = (job: ApiJob) => join(jobsDir, String(job.id));
  app.get('/jobs/:id', async (req) => jobOf(req));
  app.post('/jobs/:id/cancel', async (req) => {
    return queue.cancel(idOf(req));
  });
  app.get('/jobs/:id/result', async (req) => {
    const job = await jobOf(req);
    return { id: job.id, state: job.state, result: job.result, error: job.error };
  });
  app.get('/jobs/:id/log', async (req, reply) => {
    const job = await jobOf(req);
    const file = join(dataDir, 'jobs', String(job.id), 'log.txt');
    return reply.type('text/plain; charset=utf-8').send(existsSync(file) ? readFileSync(file, 'utf8') : '');
  });
  app.get('/jobs/:id/files/*', async (req, reply) => {
    const job = await jobOf(req);
    const rel = (req.params as { '*': string })['*'];
    if (!existsSync(dirOf(job))) throw new PathRefusedError(rel, `job ${job.id} has no files yet`);
    const file = resolveInside(dirOf(job), rel);
    if (!statSync(file).isFile()) throw new PathRefusedError(rel, 'it is not a file');
    const type = file.endsWith('.html')
      ? 'text/html; charset=utf-8'
      : file.endsWith('.svg')
        ? 'image/svg+xml'
        : file.endsWith('.json')
          ? 'application/json'
          : file.endsWith('.md') || file.endsWith('.txt')
            ? 'text/plain; charset=utf-8'
            : 'application/octet-stream';
    return reply.type(type).send(readFileSync(file));
  });
  app.get('/jobs/:id/output.tar', async (req, reply) => {
    const job = await jobOf(req);
    const out = KINDS[job.kind].out;
    const dir = out === undefined ? undefined : join(dataDir, 'jobs', String(job.id), out);
    if (job.state !== 'succeeded' || dir === undefined || !existsSync(dir))
      throw new PathRefusedError(
        `jobs/${job.id}/output.tar`,
        `job ${job.id} (${job.kind}, ${job.state}) has no output folder`,
      );
    reply.header('content-disposition', `attachment; filename="job-${job.id}-${out}.tar"`);
    return reply.type('application/x-tar').send(packDir(dir));
  });
  app.get('/jobs/:id/events', async (req, reply) => streamEvents(req, reply, (await jobOf(req)).id, queue));
  app.get('/kinds', async () => ({
    kinds: JOB_KINDS.map((k) => ({ kind: k, summary: KINDS[k].summary, params: paramsSchema(k) })),
  }));

  await app.ready();
  pool?.start();
  return {
    app,
    store,
    tokens,
    models,
    pool,
    queue,
    async close() {
      await app.close();
      await queue.close();
      store.close();
    },
  };
}

/** Server-Sent Events: the job now, each log line, each change of state; closed once it is final. */
function streamEvents(req: FastifyRequest, reply: FastifyReply, id: JobId, queue: JobQueue): void {
  reply.hijack();
  const res = reply.raw;
  res.writeHead(200, {
    'content-type': 'text/event-stream',
    'cache-control': 'no-cache',
    connection: 'keep-alive',
  });
  let last = '';
  let done = false;
  let checking = false;
  const send = (event: string, data: unknown) =>
    res.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
  const check = async () => {
    if (done || checking) return;
    checking = true;
    try {
      const job = await queue.get(String(id));
      const key = `${job.state}:${job.attempts}:${job.updatedAt}:${job.cancelRequested}`;
      if (key !== last && !done) {
        last = key;
        send('job', job);
      }
      if (FINAL.has(job.state)) finish();
    } catch {
      finish();
    } finally {
      checking = false;
    }
  };
  const onLog = (jobId: JobId, line: string) => {
    if (String(jobId) === String(id) && !done) send('log', { line });
  };
  const onState = (jobId: JobId) => {
    if (String(jobId) === String(id)) void check();
  };
  // Changes the events miss (another process's workers) show up by polling.
  const timer = setInterval(() => void check(), 500);
  const heartbeat = setInterval(() => res.write(': keep-alive\n\n'), 15_000);
  function finish() {
    if (done) return;
    done = true;
    clearInterval(timer);
    clearInterval(heartbeat);
    queue.events.off('log', onLog);
    queue.events.off('state', onState);
    res.end();
  }
  queue.events.on('log', onLog);
  queue.events.on('state', onState);
  req.raw.on('close', finish);
  void check();
}
