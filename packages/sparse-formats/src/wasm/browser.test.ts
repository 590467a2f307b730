// The wasm backend in a real browser: headless Chromium loads the built package (dist/) through an
// import map, runs the kernels against the reference kernels, and writes the verdict into the page.
// Skipped, with a message, where no Chromium is installed (.ci/run installs one).
import { execFile, spawnSync } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { dirname, extname, join, normalize } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const packages = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

function findChromium(): string | undefined {
  for (const name of ['chromium', 'chromium-browser', 'google-chrome', 'google-chrome-stable']) {
    const found = spawnSync('which', [name], { encoding: 'utf8' });
    if (found.status === 0 && found.stdout.trim() !== '') return found.stdout.trim();
  }
  return undefined;
}

const PAGE = `<!doctype html>
<script type="importmap">
{ "imports": { "@sparsekit/core": "/core/dist/index.js", "@sparsekit/sparse-formats": "/sparse-formats/dist/index.js" } }
</script>
<body>running</body>
<script type="module">
import { Rng, Tensor } from '@sparsekit/core';
import { createWasmBackend, fromDense, linear } from '@sparsekit/sparse-formats';
try {
  const backend = await createWasmBackend();
  const rng = new Rng(7);
  const rows = 37, cols = 48;
  const t = new Tensor('f32', [rows, cols], rng.normalArray(rows * cols));
  const keep = new Uint8Array(rows * cols);
  for (let g = 0; g < keep.length; g += 4) { keep[g] = 1; keep[g + 2] = 1; }
  const cases = [
    fromDense(t, 'dense'), fromDense(t, 'dense', { dtype: 'f16' }),
    fromDense(t, 'csr', { threshold: 0.8, indexType: 'u16', dtype: 'f16' }),
    fromDense(t, 'nm', { keep, n: 2, m: 4 }), fromDense(t, 'bitmask', { threshold: 0.5 }),
  ];
  let worst = 0;
  for (const w of cases) for (const batch of [1, 5, 33]) {
    const x = rng.normalArray(batch * cols);
    const a = backend.linear(x, batch, w), b = linear(x, batch, w);
    for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]) / (1 + Math.abs(b[i])));
  }
  document.body.textContent = 'RESULT ' + JSON.stringify({ threads: backend.threads, shared: typeof SharedArrayBuffer !== 'undefined' && backend.memory.buffer instanceof SharedArrayBuffer, crossOriginIsolated: self.crossOriginIsolated, worst });
} catch (error) {
  document.body.textContent = 'RESULT ' + JSON.stringify({ error: String(error && error.stack || error) });
}
</script>`;

const chromium = findChromium();
if (chromium === undefined) {
  console.warn(
    'browser.test.ts: no chromium on PATH, the browser tests are skipped (apt-get install chromium)',
  );
}

describe.skipIf(chromium === undefined)('wasm backend in headless Chromium', () => {
  let server: Server;
  let port = 0;
  beforeAll(async () => {
    server = createServer(async (req, res) => {
      const url = new URL(req.url ?? '/', 'http://localhost');
      const headers: Record<string, string> = {};
      if (url.searchParams.has('isolated')) {
        headers['Cross-Origin-Opener-Policy'] = 'same-origin';
        headers['Cross-Origin-Embedder-Policy'] = 'require-corp';
      }
      if (url.pathname === '/page.html') {
        res.writeHead(200, { ...headers, 'Content-Type': 'text/html' }).end(PAGE);
        return;
      }
      const path = normalize(join(packages, url.pathname));
      if (!path.startsWith(packages)) {
        res.writeHead(403).end();
        return;
      }
      try {
        const body = await readFile(path);
        const type = extname(path) === '.js' ? 'text/javascript' : 'application/octet-stream';
        res.writeHead(200, { 'Content-Type': type, 'Cross-Origin-Resource-Policy': 'same-origin' }).end(body);
      } catch {
        res.writeHead(404).end();
      }
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as AddressInfo).port;
  });
  afterAll(async () => {
    await new Promise((resolve) => server.close(resolve));
  });

  // Asynchronous, so this process's server can answer the browser meanwhile.
  const run = async (query: string) => {
    const { stdout: dom } = await promisify(execFile)(
      chromium!,
      [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-dev-shm-usage',
        '--virtual-time-budget=20000',
        '--dump-dom',
        `http://127.0.0.1:${port}/page.html${query}`,
      ],
      { encoding: 'utf8', timeout: 60_000 },
    );
    const match = /RESULT (\{.*\})/.exec(dom);
    expect(match, dom.slice(0, 500)).not.toBeNull();
    return JSON.parse(match![1]!.replaceAll('&quot;', '"')) as Record<string, unknown>;
  };

  it('runs on a plain page (no SharedArrayBuffer: plain memory, one thread) and matches the reference', async () => {
    const result = await run('');
    expect(result.error).toBeUndefined();
    expect(result).toMatchObject({ threads: 1, shared: false, crossOriginIsolated: false });
    expect(result.worst as number).toBeLessThan(1e-4);
  }, 90_000);

  it('runs on a cross-origin-isolated page with shared memory', async () => {
    const result = await run('?isolated');
    expect(result.error).toBeUndefined();
    expect(result).toMatchObject({ shared: true, crossOriginIsolated: true });
    expect(result.worst as number).toBeLessThan(1e-4);
  }, 90_000);
});
