// The dashboard end to end in headless Chromium (playwright-core driving Debian's chromium): sign
// in, submit a job from the form, watch it finish live, open its report; train an SAE and browse its
// features. SPARSEKIT_DASHBOARD_SCREENSHOT=FILE also saves a screenshot of a finished job's page.
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { findChromium } from '@sparsekit/test-utils';
import { type Browser, chromium } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dataFolder, NO_SQLITE } from './server.test-util.js';

const { createServer } = NO_SQLITE ? ({} as typeof import('./app.js')) : await import('./app.js');
const executable = findChromium();
if (executable === undefined)
  console.warn('the dashboard tests: no chromium on PATH, skipped (apt-get install chromium)');

describe.skipIf(NO_SQLITE || executable === undefined)('the dashboard in headless Chromium', () => {
  let server: Awaited<ReturnType<typeof createServer>>;
  let browser: Browser;
  let url: string;
  let token: string;
  let root: string;

  beforeAll(async () => {
    const folder = dataFolder('dashboard-');
    root = folder.root;
    const dataDir = folder.dataDir;
    server = await createServer({
      dataDir,
      root,
      workers: 1,
      pollMs: 50,
      workerEnv: { SPARSEKIT_NATIVE: '0' },
    });
    token = server.tokens.create('browser');
    server.models.register('tiny', 'models/tiny');
    url = await server.app.listen({ host: '127.0.0.1', port: 0 });
    browser = await chromium.launch({
      executablePath: executable!,
      // Without these, Chromium keeps trying to reach its update and sync services.
      args: [
        '--no-sandbox',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
        '--disable-dev-shm-usage',
      ],
    });
  });
  afterAll(async () => {
    await browser?.close();
    await server?.close();
  });

  it('asks for a token, refuses a wrong one, and serves no data without one', async () => {
    const page = await browser.newPage();
    await page.goto(`${url}/`);
    await page.fill('input[name=token]', 'sk_wrong');
    await page.click('text=Sign in');
    await page.waitForSelector('text=That token was refused.');
    expect((await fetch(`${url}/jobs`)).status).toBe(401);
    await page.close();
  });

  it('submits a job from the form, shows it finish live, and opens its report', async () => {
    const page = await browser.newPage({ viewport: { width: 1100, height: 900 } });
    const failures: string[] = [];
    page.on('pageerror', (e) => failures.push(e.message));
    await page.goto(`${url}/#token=${token}`);
    await page.waitForSelector('[data-testid=jobs]');
    await page.click('text=New job');
    await page.selectOption('select[name=kind]', 'eval');
    await page.selectOption('select[name=p-model]', 'tiny');
    await page.fill('input[name=p-maxWindows]', '3');
    await page.click('button[type=submit]');
    // The job's page: live log lines, then the final state and the report's charts.
    await page.waitForSelector('[data-state=succeeded]', { timeout: 60_000 });
    await page.waitForSelector('[data-testid=report]');
    const log = await page.textContent('[data-testid=log]');
    expect(log).toMatch(/eval: 3\/3 windows/);
    const loaded = await page.$eval('[data-testid=report]', (img) => (img as HTMLImageElement).naturalWidth);
    expect(loaded).toBeGreaterThan(100);
    expect(await page.textContent('[data-testid=result]')).toMatch(/"perplexity": \d/);
    const shot = process.env.SPARSEKIT_DASHBOARD_SCREENSHOT;
    if (shot !== undefined) {
      await page.screenshot({ path: shot, fullPage: false });
      expect(statSync(shot).size).toBeGreaterThan(10_000);
    }
    // The jobs list shows it.
    await page.click('text=Jobs');
    await page.waitForSelector('[data-testid=jobs] [data-state=succeeded]');
    expect(failures).toEqual([]);
    await page.close();
  });

  it('trains an SAE, then browses its features: contexts with the activating token marked', async () => {
    // A short text keeps the training tiny.
    const short = readFileSync(join(root, 'models', 'tiny', 'test.txt'), 'utf8').slice(0, 6000);
    writeFileSync(join(root, 'short.txt'), short);
    const train = server.store.submit({
      kind: 'sae-train',
      params: {
        model: 'tiny',
        epochs: 1,
        k: 4,
        expansion: 1,
        text: 'short.txt',
        evalText: 'short.txt',
        evalWindows: 1,
      },
    });
    for (let i = 0; i < 600 && !['succeeded', 'failed'].includes(server.store.get(train.job.id).state); i++)
      await new Promise((d) => setTimeout(d, 100));
    expect(server.store.get(train.job.id).state).toBe('succeeded');
    const page = await browser.newPage();
    await page.goto(`${url}/#token=${token}`);
    await page.waitForSelector('[data-testid=jobs]');
    const r = await fetch(`${url}/jobs`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({
        kind: 'sae-features',
        params: { saeJob: train.job.id, topFeatures: 5, windows: 1, text: 'short.txt' },
      }),
    });
    const { id } = (await r.json()) as { id: number };
    await page.goto(`${url}/#/jobs/${id}`);
    await page.waitForSelector('[data-state=succeeded]', { timeout: 60_000 });
    await page.waitForSelector('[data-testid=features] li');
    expect(await page.$$eval('[data-testid=features] li', (l) => l.length)).toBe(5);
    await page.click('[data-testid=features] li:nth-child(2)');
    await page.waitForSelector('.context mark');
    expect(await page.textContent('h4')).toMatch(/^Feature \d+: density/);
    await page.close();
  });
});
