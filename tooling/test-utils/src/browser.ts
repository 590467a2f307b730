// Headless Chromium for browser tests: serve the built packages (packages/*/dist) and a test page
// over HTTP, load the page in a real-time headless browser, and receive the object the page passes to
// `report(...)` (a helper injected before the page, which POSTs it back).
import { spawn, spawnSync } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { extname, join, normalize } from 'node:path';
import { afterAll, beforeAll, describe } from 'vitest';

/** The Chromium (or Chrome) binary on PATH, if any. */
export function findChromium(): string | undefined {
  for (const name of ['chromium', 'chromium-browser', 'google-chrome', 'google-chrome-stable']) {
    const found = spawnSync('which', [name], { encoding: 'utf8' });
    if (found.status === 0 && found.stdout.trim() !== '') return found.stdout.trim();
  }
  return undefined;
}

export interface PageServer {
  /** Load `/page.html` (plus `query`) in headless Chromium and return what the page reports. */
  run(query?: string, flags?: readonly string[], timeoutMs?: number): Promise<Record<string, unknown>>;
  close(): Promise<void>;
}

/**
 * Serve `page` at /page.html and the files under `root` (the packages folder) at their paths;
 * `?isolated` in a page URL adds the cross-origin-isolation headers (SharedArrayBuffer).
 */
export async function servePage(chromium: string, root: string, page: string): Promise<PageServer> {
  const helper = `<script>window.report = (result) => fetch('/result', { method: 'POST', body: JSON.stringify(result) });</script>`;
  let deliver: ((result: Record<string, unknown>) => void) | undefined;
  const server = createServer(async (req, res) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const headers: Record<string, string> = {};
    if (url.searchParams.has('isolated')) {
      headers['Cross-Origin-Opener-Policy'] = 'same-origin';
      headers['Cross-Origin-Embedder-Policy'] = 'require-corp';
    }
    if (url.pathname === '/page.html') {
      res.writeHead(200, { ...headers, 'Content-Type': 'text/html' }).end(helper + page);
      return;
    }
    if (url.pathname === '/result' && req.method === 'POST') {
      let body = '';
      for await (const chunk of req) body += chunk;
      res.writeHead(204).end();
      deliver?.(JSON.parse(body) as Record<string, unknown>);
      return;
    }
    const path = normalize(join(root, url.pathname));
    if (!path.startsWith(root)) {
      res.writeHead(403).end();
      return;
    }
    let body: Buffer;
    try {
      body = await readFile(path);
    } catch {
      res.writeHead(404).end();
      return;
    }
    const type = extname(path) === '.js' ? 'text/javascript' : 'application/octet-stream';
    res.writeHead(200, { 'Content-Type': type, 'Cross-Origin-Resource-Policy': 'same-origin' }).end(body);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    run(query = '', flags = ['--disable-gpu'], timeoutMs = 60_000) {
      return new Promise((resolve, reject) => {
        const browser = spawn(
          chromium,
          [
            '--headless',
            '--no-sandbox',
            '--disable-dev-shm-usage',
            ...flags,
            `http://127.0.0.1:${port}/page.html${query}`,
          ],
          { stdio: 'ignore' },
        );
        const timer = setTimeout(() => {
          deliver = undefined;
          browser.kill();
          reject(new Error(`the page reported nothing within ${timeoutMs} ms`));
        }, timeoutMs);
        deliver = (result) => {
          deliver = undefined;
          clearTimeout(timer);
          browser.kill();
          resolve(result);
        };
      });
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/**
 * A suite that runs `page` in headless Chromium: the packages under `root` are served, `body`
 * registers tests that load the page with `server().run(...)`. Skipped, with a warning naming the
 * file, where no Chromium is installed.
 */
export function describeInChromium(
  title: string,
  root: string,
  page: string,
  body: (server: () => PageServer) => void,
): void {
  const chromium = findChromium();
  if (chromium === undefined)
    console.warn(`${title}: no chromium on PATH, skipped (apt-get install chromium)`);
  describe.skipIf(chromium === undefined)(title, () => {
    let server: PageServer | undefined;
    beforeAll(async () => {
      server = await servePage(chromium!, root, page);
    });
    afterAll(() => server?.close());
    body(() => server!);
  });
}

/**
 * Whether a page's result says its Chromium has no WebGPU adapter (then the caller returns early,
 * after this warning).
 */
export function noWebGpuAdapter(result: Record<string, unknown>, what: string): boolean {
  if (typeof result.error !== 'string' || !/NO_GPU_ADAPTER|No WebGPU adapter/.test(result.error))
    return false;
  console.warn(`${what}: this Chromium offers no WebGPU adapter, skipped (${result.error.slice(0, 120)})`);
  return true;
}
