/**
 * Pack a 4096x4096 weight at 50% unstructured, 2:4 and 90% unstructured sparsity, and compare bytes
 * and the time of y = x W^T (batch 1 and 8) against the dense matrix, all measured in this run with
 * the plain-TypeScript reference kernels.
 *
 *   node dist/demo/formats-demo.js [--size 4096] [--json out.json]
 */
import { writeFileSync } from 'node:fs';
import { Rng, Tensor } from '@sparsekit/core';
import { fromDense } from '../convert.js';
import { linear } from '../kernels/reference.js';
import { byteSize, sparsity } from '../stats.js';
import type { SparseMatrix } from '../types.js';

function argument(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1]! : fallback;
}

const size = Number(argument('size', '4096'));
const jsonPath = argument('json', '');
const rng = new Rng(0);
const weights = rng.normalArray(size * size, 0, 0.02);

/** Keep mask of the largest-magnitude (1 - s) fraction over the whole matrix. */
function magnitudeKeep(values: Float32Array, target: number): Uint8Array {
  const magnitudes = new Float32Array(values.length);
  for (let i = 0; i < values.length; i++) magnitudes[i] = Math.abs(values[i]!);
  magnitudes.sort();
  const threshold = magnitudes[Math.floor(target * magnitudes.length)]!;
  const keep = new Uint8Array(values.length);
  for (let i = 0; i < values.length; i++) keep[i] = Math.abs(values[i]!) >= threshold ? 1 : 0;
  return keep;
}

/** Keep the n largest magnitudes of every m consecutive weights in a row. */
function nmKeep(values: Float32Array, n: number, m: number): Uint8Array {
  const keep = new Uint8Array(values.length);
  for (let g = 0; g < values.length; g += m) {
    // Keep each weight that fewer than n others in its group beat (ties to the lower index).
    for (let i = 0; i < m; i++) {
      const a = Math.abs(values[g + i]!);
      let beaten = 0;
      for (let j = 0; j < m; j++) {
        const b = Math.abs(values[g + j]!);
        if (b > a || (b === a && j < i)) beaten++;
      }
      if (beaten < n) keep[g + i] = 1;
    }
  }
  return keep;
}

function median(xs: number[]): number {
  const sorted = [...xs].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

function timeLinear(w: SparseMatrix, batch: number): number {
  const x = new Rng(batch).normalArray(batch * w.cols);
  const out = new Float32Array(batch * w.rows);
  linear(x, batch, w, { out });
  const times: number[] = [];
  for (let r = 0; r < 3; r++) {
    const start = performance.now();
    linear(x, batch, w, { out });
    times.push(performance.now() - start);
  }
  return median(times);
}

const dense = new Tensor('f32', [size, size], weights);
const cases: Array<{ name: string; matrix: SparseMatrix }> = [
  { name: 'dense', matrix: fromDense(dense, 'dense') },
];
const keep50 = magnitudeKeep(weights, 0.5);
const keep90 = magnitudeKeep(weights, 0.9);
cases.push({ name: '50% unstructured (csr)', matrix: fromDense(dense, 'csr', { keep: keep50 }) });
cases.push({ name: '50% unstructured (bitmask)', matrix: fromDense(dense, 'bitmask', { keep: keep50 }) });
cases.push({ name: '2:4 (nm)', matrix: fromDense(dense, 'nm', { keep: nmKeep(weights, 2, 4), n: 2, m: 4 }) });
cases.push({
  name: '2:4 (nm, f16 values)',
  matrix: fromDense(dense, 'nm', { keep: nmKeep(weights, 2, 4), n: 2, m: 4, dtype: 'f16' }),
});
cases.push({ name: '90% unstructured (csr)', matrix: fromDense(dense, 'csr', { keep: keep90 }) });
cases.push({
  name: '90% unstructured (csr, u16 idx)',
  matrix: fromDense(dense, 'csr', { keep: keep90, indexType: 'auto' }),
});

const denseBytes = byteSize(cases[0]!.matrix);
const rows: Array<Record<string, string | number>> = [];
let denseTimes: [number, number] = [0, 0];
for (const { name, matrix } of cases) {
  const t1 = timeLinear(matrix, 1);
  const t8 = timeLinear(matrix, 8);
  if (name === 'dense') denseTimes = [t1, t8];
  rows.push({
    matrix: name,
    format: matrix.format,
    sparsity: sparsity(matrix),
    bytes: byteSize(matrix),
    bytesVsDense: byteSize(matrix) / denseBytes,
    msBatch1: t1,
    speedupBatch1: denseTimes[0] / t1,
    msBatch8: t8,
    speedupBatch8: denseTimes[1] / t8,
  });
}

const mib = (b: number) => `${(b / 2 ** 20).toFixed(1)} MiB`;
console.log(
  `W [${size} x ${size}] f32, y = x W^T, plain-TypeScript reference kernels, median of 3 runs, Node ${process.version}`,
);
console.log('');
const header = ['matrix', 'sparsity', 'bytes', 'vs dense', 'ms b=1', 'x dense', 'ms b=8', 'x dense'];
const table = rows.map((r) => [
  String(r.matrix),
  `${((r.sparsity as number) * 100).toFixed(1)}%`,
  mib(r.bytes as number),
  `${(r.bytesVsDense as number).toFixed(2)}x`,
  (r.msBatch1 as number).toFixed(2),
  `${(r.speedupBatch1 as number).toFixed(2)}x`,
  (r.msBatch8 as number).toFixed(2),
  `${(r.speedupBatch8 as number).toFixed(2)}x`,
]);
const widths = header.map((h, i) => Math.max(h.length, ...table.map((row) => row[i]!.length)));
const line = (cells: string[]) =>
  cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
console.log(line(header));
console.log(widths.map((w) => '-'.repeat(w)).join('  '));
for (const row of table) console.log(line(row));
console.log('');
console.log('Sparsity is counted from the packed data. These are the reference kernels; see the');
console.log('sparse-formats README for which formats have a faster backend.');
if (jsonPath !== '') {
  writeFileSync(jsonPath, JSON.stringify({ size, node: process.version, rows }, null, 2));
  console.log(`JSON written to ${jsonPath}`);
}
