/**
 * Seconds mask selection takes on one layer, by the selection pruners use (quickselect) and by a full
 * sort (the baseline: what the reference's `torch.sort` does), in one run:
 *
 *   pnpm --filter @sparsekit/pruners bench [--shapes 1024x1024,2048x2048,4096x4096]
 *
 * W ~ N(0, 0.02) (seed 0), scores |W|: Wanda's per-row 50% (a stable sort of each row vs `rowMask`),
 * magnitude's one threshold per matrix (a sort of all scores vs `matrixMask`), and 2:4 groups
 * (a comparator sort per group vs `nmMask`). Each pair is checked to select the same weights.
 * Prints a table and writes bench-results/masks.json.
 */
import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { option } from '@sparsekit/bench';
import { Rng } from '@sparsekit/core';
import { magnitudes, matrixMask, nmMask, rowMask } from '@sparsekit/pruners';

const shapes = option('shapes', '1024x1024,2048x2048,4096x4096')
  .split(',')
  .map((s) => s.split('x').map(Number) as [number, number]);

// Baselines: the sorts the reference code does.
function sortedRowMask(scores: Float64Array, rows: number, cols: number, count: number): Uint8Array {
  const mask = new Uint8Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    const order = Int32Array.from({ length: cols }, (_, i) => i);
    order.sort((a, b) => scores[r * cols + a]! - scores[r * cols + b]! || a - b);
    for (let i = 0; i < count; i++) mask[r * cols + order[i]!] = 1;
  }
  return mask;
}
function sortedMatrixMask(scores: Float64Array, sparsity: number): Uint8Array {
  const threshold = Float64Array.from(scores).sort()[Math.floor(scores.length * sparsity)]!;
  const mask = new Uint8Array(scores.length);
  for (let i = 0; i < scores.length; i++) mask[i] = scores[i]! <= threshold ? 1 : 0;
  return mask;
}
function sortedNmMask(scores: Float64Array, n: number, m: number): Uint8Array {
  const mask = new Uint8Array(scores.length);
  for (let g = 0; g < scores.length; g += m) {
    const order = Array.from({ length: m }, (_, i) => i).sort(
      (a, b) => scores[g + a]! - scores[g + b]! || a - b,
    );
    for (let i = 0; i < m - n; i++) mask[g + order[i]!] = 1;
  }
  return mask;
}

const time = <T>(f: () => T): [number, T] => {
  const t0 = performance.now();
  const out = f();
  return [(performance.now() - t0) / 1000, out];
};
const same = (a: Uint8Array, b: Uint8Array) => a.every((v, i) => v === b[i]);

const rows: Array<Record<string, number | string>> = [];
for (const [R, C] of shapes) {
  const scores = magnitudes(new Rng(0).normalArray(R * C, 0, 0.02));
  const [rowSort, a] = time(() => sortedRowMask(scores, R, C, C / 2));
  const [rowSelect, b] = time(() => rowMask(scores, R, C, 0.5));
  const [matrixSort, c] = time(() => sortedMatrixMask(scores, 0.5));
  const [matrixSelect, d] = time(() => matrixMask(scores, 0.5));
  const [nmSort, e] = time(() => sortedNmMask(scores, 2, 4));
  const [nmSelect, f] = time(() => nmMask(scores, R, C, 2, 4));
  if (!same(a, b) || !same(c, d) || !same(e, f)) throw new Error(`masks differ at ${R}x${C}`);
  rows.push({ shape: `${R}x${C}`, rowSort, rowSelect, matrixSort, matrixSelect, nmSort, nmSelect });
  const x = (p: number, q: number) => `${p.toFixed(3)} s -> ${q.toFixed(3)} s (${(p / q).toFixed(1)}x)`;
  console.log(
    `${R}x${C}: per row 50% ${x(rowSort, rowSelect)}; per matrix 50% ${x(matrixSort, matrixSelect)}; 2:4 ${x(nmSort, nmSelect)}`,
  );
}
mkdirSync('bench-results', { recursive: true });
const path = join('bench-results', 'masks.json');
writeFileSync(`${path}.tmp`, `${JSON.stringify({ date: new Date().toISOString(), rows }, null, 2)}\n`);
renameSync(`${path}.tmp`, path);
console.log(`wrote ${path}`);
