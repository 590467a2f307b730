import { existsSync, readdirSync, readFileSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import tar from 'tar-stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dataFolder, declaring, NO_SQLITE, TINY_LM, tarOf } from './server.test-util.js';

const { createServer } = NO_SQLITE ? ({} as typeof import('./app.js')) : await import('./app.js');
type Server = Awaited<ReturnType<typeof createServer>>;

/** Files of a tar archive, by name. */
async function untar(buffer: Buffer): Promise<Map<string, Buffer>> {
  const out = new Map<string, Buffer>();
  const extract = tar.extract();
  const done = (async () => {
    for await (const entry of extract) {
      const chunks: Buffer[] = [];
      for await (const c of entry) chunks.push(c as Buffer);
      out.set(entry.header.name, Buffer.concat(chunks));
    }
  })();
  Readable.from([buffer]).pipe(extract);
  await done;
  return out;
}

describe.skipIf(NO_SQLITE)('the HTTP API', () => {
  let server: Server;
  let token: string;
  let root: string;
  let dataDir: string;
  const auth = () => ({ authorization: `Bearer ${token}` });
  const api = (
    method: 'GET' | 'POST' | 'PUT',
    url: string,
    payload?: unknown,
    headers: Record<string, string> = {},
  ) =>
    server.app.inject({
      method,
      url,
      headers: { ...auth(), ...headers },
      ...(payload === undefined ? {} : { payload: payload as string }),
    });
  /** Follow a job's events to its end; the parsed events. */
  const events = async (id: number) => {
    const r = await api('GET', `/jobs/${id}/events`);
    expect(r.headers['content-type']).toBe('text/event-stream');
    return r.payload
      .split('\n\n')
      .filter((b) => b.startsWith('event: '))
      .map((b) => {
        const [e, d] = b.split('\n');
        return { event: e!.slice(7), data: JSON.parse(d!.slice(6)) };
      });
  };

  beforeAll(async () => {
    ({ dataDir, root } = dataFolder());
    server = await createServer({
      dataDir,
      root,
      workers: 1,
      pollMs: 50,
      backoffBaseMs: 10,
      workerEnv: { SPARSEKIT_NATIVE: '0' },
    });
    token = server.tokens.create('tester');
  });
  afterAll(async () => {
    await server?.close();
  });

  it('needs a bearer token on every route but /health, and says how to get one', async () => {
    expect((await server.app.inject({ url: '/health' })).json()).toEqual({
      ok: true,
      mode: 'sqlite',
      workers: 1,
    });
    for (const url of ['/jobs', '/models', '/openapi.json', '/jobs/1']) {
      const r = await server.app.inject({ url });
      expect(r.statusCode, url).toBe(401);
      expect(r.headers['www-authenticate']).toBe('Bearer');
      expect(r.json().error.code).toBe('server/unauthorized');
    }
    const wrong = await server.app.inject({ url: '/jobs', headers: { authorization: 'Bearer sk_wrong' } });
    expect(wrong.statusCode).toBe(401);
    // A revoked token stops working.
    const other = server.tokens.create('other');
    expect(
      (await server.app.inject({ url: '/jobs', headers: { authorization: `Bearer ${other}` } })).statusCode,
    ).toBe(200);
    server.tokens.revoke('other');
    expect(
      (await server.app.inject({ url: '/jobs', headers: { authorization: `Bearer ${other}` } })).statusCode,
    ).toBe(401);
    // CORS is off: no allow-origin header for a browser's request.
    const cors = await api('GET', '/jobs', undefined, { origin: 'http://evil.example' });
    expect(cors.headers['access-control-allow-origin']).toBeUndefined();
  });

  it('serves an OpenAPI document whose job params schemas are the ones it validates against', async () => {
    const doc = (await api('GET', '/openapi.json')).json();
    expect(doc.openapi).toBe('3.1.0');
    const kinds = doc.paths['/jobs'].post.requestBody.content['application/json'].schema.oneOf;
    const prune = kinds.find((k: { title: string }) => k.title === 'prune');
    expect(prune.properties.params.properties.method.enum).toContain('sparsegpt');
    expect(prune.properties.params.additionalProperties).toBe(false);
    const listed = (await api('GET', '/kinds')).json().kinds;
    expect(listed.map((k: { kind: string }) => k.kind)).toEqual([
      'prune',
      'eval',
      'sweep',
      'sae-train',
      'sae-features',
      'bench',
      'convert',
    ]);
  });

  it('refuses params its schemas do not allow, unknown models and paths outside the root, with 4xx and a typed error', async () => {
    const cases: [unknown, number, RegExp][] = [
      [{ kind: 'prune', params: { method: 'wanda', sparsity: 1.5 } }, 400, /sparsity must be < 1/],
      [
        { kind: 'prune', params: { method: 'nope' } },
        400,
        /method must be equal to one of the allowed values/,
      ],
      [{ kind: 'prune', params: { sparsity: 0.5, extra: 1 } }, 400, /must NOT have additional properties/],
      [{ kind: 'prune', params: { sparsity: '0.5' } }, 400, /sparsity must be number/],
      [{ kind: 'eval', params: { tasks: 'a;rm -rf /' } }, 400, /tasks must match pattern/],
      [{ kind: 'teleport' }, 400, /kind must be equal to one of the allowed values/],
      [{ kind: 'eval', params: { model: 'missing' } }, 404, /No model named "missing"/],
      [{ kind: 'eval', params: { text: '../../etc/passwd' } }, 400, /Refused path/],
      [{ kind: 'sweep', params: { methods: ['magnitude'] } }, 400, /needs sparsities or patterns/],
    ];
    for (const [body, status, message] of cases) {
      const r = await api('POST', '/jobs', body);
      expect(r.statusCode, JSON.stringify(body)).toBe(status);
      expect(r.json().error.message, JSON.stringify(body)).toMatch(message);
    }
    const bad = await api('POST', '/jobs', '{"kind": "eval",', { 'content-type': 'application/json' });
    expect(bad.statusCode).toBe(400);
    expect(server.store.list()).toHaveLength(0);
  });

  it('registers folders under the root only, and refuses "..", absolute paths elsewhere and links that leave it', async () => {
    const ok = await api('POST', '/models', { name: 'tiny', path: 'models/tiny' });
    expect(ok.statusCode).toBe(201);
    expect(ok.json()).toMatchObject({ name: 'tiny', source: 'registered' });
    expect((await api('POST', '/models', { name: 'tiny', path: 'models/tiny' })).statusCode).toBe(409);
    symlinkSync(TINY_LM, join(root, 'models', 'link-out'));
    for (const path of ['../data', '/etc', TINY_LM, 'models/link-out', 'models/missing'])
      expect((await api('POST', '/models', { name: 'x', path })).json().error.code, path).toBe(
        'server/path-refused',
      );
    expect((await api('POST', '/models', { name: '../x', path: 'models/tiny' })).statusCode).toBe(400);
    const info = (await api('GET', '/models/tiny')).json();
    expect(info.config.model_type).toBeDefined();
    expect(info.files.map((f: { name: string }) => f.name)).toContain('model.safetensors');
  });

  it('runs a job in a worker process: events with its progress lines, its log, and its result', async () => {
    const r = await api('POST', '/jobs', {
      kind: 'eval',
      params: { model: 'tiny', maxWindows: 2 },
      idempotencyKey: 'eval-1',
    });
    expect(r.statusCode).toBe(201);
    const id = r.json().id as number;
    const seen = await events(id);
    const states = seen.filter((e) => e.event === 'job').map((e) => e.data.state);
    expect(states.at(-1)).toBe('succeeded');
    expect(seen.some((e) => e.event === 'log' && /eval: 2\/2 windows/.test(e.data.line))).toBe(true);
    const result = (await api('GET', `/jobs/${id}/result`)).json();
    expect(result.result.perplexity).toBeGreaterThan(1);
    expect(result.result.protocol.windows).toBe(2);
    expect((await api('GET', `/jobs/${id}/log`)).payload).toMatch(
      /\$ sparsekit eval --model=.* --max-windows=2 --json/,
    );
    // The same key again: the same job, 200, and no second one.
    const again = await api('POST', '/jobs', {
      kind: 'eval',
      params: { maxWindows: 99 },
      idempotencyKey: 'eval-1',
    });
    expect(again.statusCode).toBe(200);
    expect(again.json().id).toBe(id);
  });

  it('prunes, serves the pruned folder as a tar, and takes it back as an upload that evaluates', async () => {
    const r = await api('POST', '/jobs', {
      kind: 'prune',
      params: { model: 'tiny', method: 'magnitude', sparsity: 0.5, pack: true, calibSamples: 4 },
    });
    const id = r.json().id as number;
    expect((await events(id)).at(-1)!.data.state).toBe('succeeded');
    const job = (await api('GET', `/jobs/${id}`)).json();
    expect(job.result.report.sparsity).toBeCloseTo(0.5, 2);
    expect(job.result.layout).toBe('packed');
    const download = await api('GET', `/jobs/${id}/output.tar`);
    expect(download.statusCode).toBe(200);
    const files = await untar(download.rawPayload);
    expect([...files.keys()]).toEqual(expect.arrayContaining(['config.json', 'tokenizer.json']));
    const up = await api('PUT', '/models/pruned', download.rawPayload, {
      'content-type': 'application/x-tar',
    });
    expect(up.statusCode).toBe(201);
    expect(up.json()).toMatchObject({ name: 'pruned', source: 'uploaded' });
    const ev = await api('POST', '/jobs', { kind: 'eval', params: { model: 'pruned', maxWindows: 2 } });
    const done = (await events(ev.json().id)).at(-1)!.data;
    expect(done.state).toBe('succeeded');
    expect(done.result.perplexity).toBeGreaterThan(1);
    // An eval job has no output folder.
    expect((await api('GET', `/jobs/${ev.json().id}/output.tar`)).statusCode).toBe(400);
  });

  it('runs a sweep (dense, then each point pruned and evaluated) into one report it serves', async () => {
    const r = await api('POST', '/jobs', {
      kind: 'sweep',
      params: {
        model: 'tiny',
        methods: ['magnitude', 'wanda'],
        sparsities: [0.5],
        patterns: ['2:4'],
        maxWindows: 1,
        calibSamples: 2,
      },
    });
    const id = r.json().id as number;
    const seen = await events(id);
    expect(seen.at(-1)!.data.state).toBe('succeeded');
    expect(seen.filter((e) => e.event === 'log' && /^sweep: \d\/6 /.test(e.data.line))).toHaveLength(10);
    const html = await api('GET', `/jobs/${id}/files/report/report.html`);
    expect(html.headers['content-type']).toMatch(/text\/html/);
    for (const row of ['dense', 'magnitude 50%', 'wanda 2:4']) expect(html.payload).toContain(row);
    const svg = await api('GET', `/jobs/${id}/files/report/report.svg`);
    expect(svg.payload).toMatch(/^<svg/);
    expect((await api('GET', `/jobs/${id}/files/..%2F..%2Fjobs.sqlite`)).statusCode).toBe(400);
    expect((await api('GET', `/jobs/${id}/files/report/missing.json`)).statusCode).toBe(400);
  });

  it('refuses hostile and oversized uploads with nothing kept', async () => {
    const config = readFileSync(join(TINY_LM, 'config.json'));
    const cases: [string, Buffer, number, string][] = [
      ['absolute', await tarOf([{ name: '/etc/evil', data: config }]), 400, 'unsafe-entry'],
      ['dot-dot', await tarOf([{ name: 'ok/../../evil', data: config }]), 400, 'unsafe-entry'],
      [
        'symlink',
        await tarOf([{ name: 'config.json', type: 'symlink', linkname: '/etc/passwd' }]),
        400,
        'unsafe-entry',
      ],
      [
        'hardlink',
        await tarOf([
          { name: 'a', data: config },
          { name: 'b', type: 'link', linkname: 'a' },
        ]),
        400,
        'unsafe-entry',
      ],
      [
        'twice',
        await tarOf([
          { name: 'config.json', data: config },
          { name: 'config.json', data: config },
        ]),
        400,
        'unsafe-entry',
      ],
      [
        'huge declared size',
        declaring(await tarOf([{ name: 'config.json', data: config }]), 8 * 2 ** 30 - 1),
        413,
        'too-large',
      ],
      ['no config.json', await tarOf([{ name: 'weights.bin', data: Buffer.from('x') }]), 400, 'not-a-model'],
      ['garbage', Buffer.alloc(4096, 7), 400, 'malformed'],
      [
        'truncated',
        (await tarOf([{ name: 'config.json', data: config }])).subarray(0, 700),
        400,
        'malformed',
      ],
    ];
    for (const [what, body, status, reason] of cases) {
      const r = await api('PUT', '/models/hostile', body, { 'content-type': 'application/x-tar' });
      expect(r.statusCode, what).toBe(status);
      expect(r.json().error.message, what).toContain(`(${reason})`);
    }
    const many = await tarOf(
      Array.from({ length: 12 }, (_, i) => ({ name: `f${i}`, data: Buffer.from('x') })),
    );
    const small = await createServer({
      dataDir: `${dataDir}-small`,
      root,
      workers: 0,
      limits: { uploadEntries: 10, uploadBytes: 1000 },
    });
    const t = small.tokens.create('t');
    const put = (body: Buffer) =>
      small.app.inject({
        method: 'PUT',
        url: '/models/m',
        payload: body,
        headers: { authorization: `Bearer ${t}`, 'content-type': 'application/x-tar' },
      });
    expect((await put(many)).statusCode).toBe(413);
    expect((await put(await tarOf([{ name: 'config.json', data: Buffer.alloc(2000) }]))).statusCode).toBe(
      413,
    );
    await small.close();
    expect(existsSync(join(dataDir, 'models', 'hostile'))).toBe(false);
    expect(readdirSync(join(dataDir, 'models')).filter((n) => n.startsWith('.'))).toEqual([]);
    expect((await api('GET', '/models')).json().models.map((m: { name: string }) => m.name)).not.toContain(
      'hostile',
    );
  });

  it('cancels a running job by a signal to its worker, and the next job runs on a fresh worker', async () => {
    const r = await api('POST', '/jobs', {
      kind: 'sae-train',
      params: { model: 'tiny', epochs: 1000, k: 4, expansion: 2 },
    });
    const id = r.json().id as number;
    for (let i = 0; i < 400 && server.pool!.pidOf(id) === undefined; i++)
      await new Promise((d) => setTimeout(d, 25));
    const pid = server.pool!.pidOf(id)!;
    expect(pid).toBeGreaterThan(0);
    const c = await api('POST', `/jobs/${id}/cancel`);
    expect(c.json().cancelRequested).toBe(true);
    expect((await events(id)).at(-1)!.data.state).toBe('cancelled');
    expect(() => process.kill(pid, 0)).toThrow();
    const next = await api('POST', '/jobs', { kind: 'eval', params: { maxWindows: 1 } });
    expect((await events(next.json().id)).at(-1)!.data.state).toBe('succeeded');
  });

  it('limits each token’s request rate (429 with retry-after)', async () => {
    const limited = await createServer({
      dataDir: `${dataDir}-rate`,
      root,
      workers: 0,
      limits: { rateCapacity: 3, ratePerSecond: 0.5 },
    });
    const t = limited.tokens.create('t');
    const codes: number[] = [];
    for (let i = 0; i < 5; i++)
      codes.push(
        (await limited.app.inject({ url: '/jobs', headers: { authorization: `Bearer ${t}` } })).statusCode,
      );
    expect(codes).toEqual([200, 200, 200, 429, 429]);
    const r = await limited.app.inject({ url: '/jobs', headers: { authorization: `Bearer ${t}` } });
    expect(Number(r.headers['retry-after'])).toBeGreaterThan(0);
    await limited.close();
  });
});
