import { spawnSync } from 'node:child_process';
import { appendFileSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { sweepChart, sweepMarkdown } from './report.js';
import { readSweepFile, runSweep, sweepGrid } from './sweep.js';

const BUILT = fileURLToPath(new URL('../../dist/node.js', import.meta.url));
const points = sweepGrid(
  { method: ['wanda', 'sparsegpt'], sparsity: [0.5, 0.7] },
  (p) => `${p.method} ${p.sparsity}`,
);

describe('runSweep', () => {
  it('runs methods x targets, one fsynced JSON line per point, results in point order', async () => {
    const file = join(mkdtempSync(join(tmpdir(), 'sweep-')), 'results.jsonl');
    const ran: string[] = [];
    const { rows, resumed } = await runSweep({
      points,
      file,
      settings: { windows: 4 },
      run: async (p, point) => {
        ran.push(point.key);
        return { value: p.sparsity * (p.method === 'wanda' ? 1 : 2) };
      },
    });
    expect(points.map((p) => p.key)).toEqual(['wanda 0.5', 'wanda 0.7', 'sparsegpt 0.5', 'sparsegpt 0.7']);
    expect(ran).toEqual(points.map((p) => p.key));
    expect(resumed).toEqual([]);
    expect(rows.map((r) => r.result.value)).toEqual([0.5, 0.7, 1, 1.4]);
    const lines = readFileSync(file, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(lines[0]).toEqual({ sweep: 1, settings: { windows: 4 } });
    expect(lines.slice(1).map((l) => l.key)).toEqual(ran);
  });

  it('resumes after the process is killed (SIGKILL) part way: finished points are not run again', async () => {
    const file = join(mkdtempSync(join(tmpdir(), 'sweep-')), 'results.jsonl');
    const script = `
      import { runSweep, sweepGrid } from ${JSON.stringify(BUILT)};
      const points = sweepGrid({ method: ['wanda', 'sparsegpt'], sparsity: [0.5, 0.7] }, (p) => p.method + ' ' + p.sparsity);
      await runSweep({ points, file: process.argv[1], settings: { windows: 4 }, resume: true, run: async (p, point) => {
        if (point.key === 'sparsegpt 0.5') process.kill(process.pid, 'SIGKILL');
        return { value: p.sparsity };
      } });`;
    const child = spawnSync(process.execPath, ['--input-type=module', '-e', script, file]);
    expect(child.signal).toBe('SIGKILL');
    // A line torn by a crash mid-write is dropped on resume.
    appendFileSync(file, '{"key":"sparsegpt 0.5","resu');
    expect([...readSweepFile(file).results.keys()]).toEqual(['wanda 0.5', 'wanda 0.7']);
    const ran: string[] = [];
    const { rows, resumed } = await runSweep({
      points,
      file,
      settings: { windows: 4 },
      resume: true,
      run: async (p, point) => {
        ran.push(point.key);
        return { value: p.sparsity };
      },
    });
    expect(resumed).toEqual(['wanda 0.5', 'wanda 0.7']);
    expect(ran).toEqual(['sparsegpt 0.5', 'sparsegpt 0.7']);
    expect(rows.map((r) => r.key)).toEqual(points.map((p) => p.key));
    expect([...readSweepFile(file).results.keys()]).toEqual(points.map((p) => p.key));
    // Other settings: refused rather than mixed.
    await expect(
      runSweep({ points, file, settings: { windows: 8 }, resume: true, run: async () => ({ value: 0 }) }),
    ).rejects.toThrow(/other settings/);
    await expect(
      runSweep({ points: [points[0]!, points[0]!], file, run: async () => ({ value: 0 }) }),
    ).rejects.toThrow(/its own key/);
  });

  it('writes the Markdown table and the SVG chart of a sweep', () => {
    const rows = [
      {
        method: 'dense',
        sparsity: 0,
        perplexity: 20,
        bytes: 100,
        decodeTokensPerSecond: 1000,
        pruneSeconds: 0,
      },
      {
        method: 'Wanda <50%>',
        sparsity: 0.5,
        perplexity: 25,
        bytes: 60,
        decodeTokensPerSecond: 1500,
        pruneSeconds: 1,
      },
    ];
    const md = sweepMarkdown(rows, {
      model: 'm',
      windows: 2,
      tokens: 254,
      calibration: 'c',
      threads: 2,
      date: 'd',
    });
    expect(md).toContain('| Wanda <50%> | 50.0% | 25.00 | 1.250x | 60 | 1500 | 1.50x | 1.0 |');
    const svg = sweepChart(rows, 'title & more');
    expect(svg).toMatch(/^<svg xmlns="http:\/\/www.w3.org\/2000\/svg"/);
    expect(svg).toContain('Wanda &lt;50%&gt;');
    expect(svg).toContain('title &amp; more');
  });
});
