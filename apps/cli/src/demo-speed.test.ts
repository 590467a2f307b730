import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createCpuBackend } from '@sparsekit/kernels-native';
import { afterAll, describe, expect, it } from 'vitest';
import { speedMarkdown, speedSection, speedTable } from './commands/demo-speed.js';
import { Ui } from './ui.js';

const dir = mkdtempSync(join(tmpdir(), 'demo-speed-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const SMALL = {
  description: 'a 2-block test model (hidden 64, MLP 128), random weights',
  hidden: 64,
  intermediate: 128,
  heads: 4,
  kvHeads: 2,
  layers: 2,
  vocab: 96,
  maxPositions: 64,
};

describe('the demo speed rows', () => {
  it('times decode of each pruned and packed variant, with the sparsity and bytes counted from the data', async () => {
    const { backend } = await createCpuBackend({ threads: 1 });
    const lines: string[] = [];
    const ui = new Ui(
      { stdout: { write: (s: string) => lines.push(s) }, stderr: { write: () => true } } as never,
      false,
    );
    const file = join(dir, 'speed-results.jsonl');
    const section = await speedSection(backend, ui, { file, resume: false, newTokens: 4, shape: SMALL });
    expect(section.rows.map((r) => [r.config, r.format])).toEqual([
      ['dense', 'dense f32'],
      ['dense, onnxruntime-node', 'dense f32'],
      ['magnitude 50%', 'CSR'],
      ['magnitude 2:4', 'N:M'],
      ['magnitude 70%', 'CSR'],
      ['magnitude 90%', 'CSR'],
      ['magnitude 90%, 1x8 blocks', 'BSR 1x8'],
      ['magnitude 90%, 8x1 blocks', 'BSR 8x1'],
    ]);
    const [dense, onnx, half, nm, seventy, ninety, blocks, tall] = section.rows;
    expect(dense!.sparsity).toBe(0);
    expect(dense!.bytes).toBe(4 * 2 * (2 * 64 * 64 + 2 * 32 * 64 + 3 * 64 * 128));
    // onnxruntime decodes the same dense weights (its engine says so); ours are dense again after it.
    expect(onnx!.engine).toBe('onnxruntime');
    expect([onnx!.sparsity, onnx!.bytes]).toEqual([0, dense!.bytes]);
    expect(section.onnxruntimeMissing).toBeUndefined();
    expect(speedMarkdown(section)).toContain('The onnxruntime-node row decodes the same dense weights');
    for (const [row, s] of [
      [half, 0.5],
      [nm, 0.5],
      [seventy, 0.7],
      [ninety, 0.9],
      [blocks, 0.9],
      [tall, 0.9],
    ] as const)
      expect(row!.sparsity, row!.config).toBeCloseTo(s, 2);
    expect(ninety!.bytes).toBeLessThan(seventy!.bytes);
    for (const r of section.rows) expect(r.decodeTokensPerSecond, r.config).toBeGreaterThan(0);
    expect(section.lmHeadShare).toBeCloseTo(
      (96 * 64) / (96 * 64 + 2 * (2 * 64 * 64 + 2 * 32 * 64 + 3 * 64 * 128)),
      9,
    );
    expect(speedTable(section)).toMatch(/magnitude 90%, 1x8 blocks\s+BSR 1x8\s+\d+\.\d%/);
    expect(speedMarkdown(section)).toContain('| magnitude 2:4 | N:M | 50.0% |');
    // Rows were saved as they finished: a resumed run measures nothing again.
    expect(readFileSync(file, 'utf8').trim().split('\n')).toHaveLength(9);
    const again = await speedSection(backend, ui, { file, resume: true, newTokens: 4, shape: SMALL });
    expect(again.rows).toEqual(section.rows);
    await backend.dispose();
  });

  it('leaves the onnxruntime row out when asked to, and says so in the report', async () => {
    const { backend } = await createCpuBackend({ threads: 1 });
    const ui = new Ui({ stdout: { write: () => true }, stderr: { write: () => true } } as never, false);
    const file = join(dir, 'speed-no-onnx.jsonl');
    const section = await speedSection(backend, ui, {
      file,
      resume: false,
      newTokens: 3,
      shape: { ...SMALL, layers: 1 },
      onnxruntime: false,
    });
    expect(section.rows.some((r) => r.engine === 'onnxruntime')).toBe(false);
    expect(section.rows).toHaveLength(7);
    expect(speedMarkdown(section)).toContain('No onnxruntime-node row: not asked for.');
    await backend.dispose();
  });
});
