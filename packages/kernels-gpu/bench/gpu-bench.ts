/**
 * WebGPU kernel times against the dense WGSL kernel, measured in one run on one adapter:
 *
 *   pnpm bench:gpu                      (from the repository root; or in this package: pnpm bench:gpu)
 *   node build/bench/gpu-bench.js [--shapes 4096x4096,11008x4096] [--batches 1,8,128] [--seqs 2048,8192]
 *     [--reps 20] [--out DIR]
 *
 * Weights N(0, 0.02), seed 0, pruned by magnitude (50%, 90%) or per group of 4 (2:4); every kernel
 * is timed as dispatches back to back on resident buffers (no upload, no readback), median of 5
 * trials. Dense baseline: the row kernel (GEMV) at batch <= 4, the tiled GEMM above. Attention:
 * causal block-sparse forward with a sliding window of key blocks vs all blocks at or below the
 * diagonal. Prints tables and writes gpu-bench.json + gpu-bench.md. Speed means nothing on a
 * software adapter (lavapipe); run it on a real GPU.
 */
import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { option } from '@sparsekit/bench';
import { Rng, Tensor } from '@sparsekit/core';
import { blockDensity, GpuBackend, timeBlockSparseAttention } from '@sparsekit/kernels-gpu';
import { fromDense, type SparseMatrix } from '@sparsekit/sparse-formats';

const shapes = option('shapes', '4096x4096,11008x4096')
  .split(',')
  .map((s) => s.split('x').map(Number) as [number, number]);
const batches = option('batches', '1,8,128').split(',').map(Number);
const reps = Number(option('reps', '20'));
const seqs = option('seqs', '2048,8192').split(',').map(Number);
const outDir = option('out', 'bench-results');

const backend = await GpuBackend.create({ powerPreference: 'high-performance' });
console.log(`adapter: ${backend.adapter}`);
const rng = new Rng(0);

function magnitude(w: Float32Array, s: number): Float32Array {
  const t = Float32Array.from(w, Math.abs).sort()[Math.floor(s * w.length)]!;
  return w.map((v) => (Math.abs(v) > t ? v : 0));
}

function twoFour(w: Float32Array): Float32Array {
  const out = w.slice();
  for (let g = 0; g < out.length; g += 4) {
    const order = [0, 1, 2, 3].sort((a, b) => Math.abs(out[g + a]!) - Math.abs(out[g + b]!));
    out[g + order[0]!] = 0;
    out[g + order[1]!] = 0;
  }
  return out;
}

/** Whole bR x bC blocks of a [rows, cols] weight dropped with probability s (seeded). */
function blocks(
  w: Float32Array,
  rows: number,
  cols: number,
  [bR, bC]: [number, number],
  s: number,
): Float32Array {
  const out = w.slice();
  for (let br = 0; br < rows; br += bR)
    for (let bc = 0; bc < cols; bc += bC)
      if (rng.uniform() < s)
        for (let i = 0; i < bR; i++) out.fill(0, (br + i) * cols + bc, (br + i) * cols + bc + bC);
  return out;
}

type Row = Record<string, string | number>;
const rows: Row[] = [];
for (const [R, C] of shapes) {
  const w = rng.normalArray(R * C, 0, 0.02);
  const t = (values: Float32Array) => new Tensor('f32', [R, C], values);
  const cases: Array<[string, () => SparseMatrix]> = [
    ['dense f32', () => fromDense(t(w), 'dense')],
    ['dense f16', () => fromDense(t(w), 'dense', { dtype: 'f16' })],
    ['50% csr f32', () => fromDense(t(magnitude(w, 0.5)), 'csr')],
    ['50% bitmask f16', () => fromDense(t(magnitude(w, 0.5)), 'bitmask', { dtype: 'f16' })],
    ['2:4 nm f32', () => fromDense(t(twoFour(w)), 'nm', { n: 2, m: 4 })],
    ['2:4 nm f16', () => fromDense(t(twoFour(w)), 'nm', { n: 2, m: 4, dtype: 'f16' })],
    ['90% csr f32', () => fromDense(t(magnitude(w, 0.9)), 'csr')],
    ['90% csr f16', () => fromDense(t(magnitude(w, 0.9)), 'csr', { dtype: 'f16' })],
    ['90% bitmask f16', () => fromDense(t(magnitude(w, 0.9)), 'bitmask', { dtype: 'f16' })],
    ['90% bsr 1x8 f32', () => fromDense(t(blocks(w, R, C, [1, 8], 0.9)), 'bsr', { blockShape: [1, 8] })],
    ['90% bsr 8x1 f32', () => fromDense(t(blocks(w, R, C, [8, 1], 0.9)), 'bsr', { blockShape: [8, 1] })],
  ];
  for (const [label, make] of cases) {
    const matrix = make();
    const prepared = backend.prepare(matrix);
    for (const batch of batches) {
      const ms = await backend.timeLinear(batch, prepared, { reps });
      rows.push({
        kernel: 'linear',
        shape: `${R}x${C}`,
        batch,
        case: label,
        deviceBytes: prepared.bytes,
        ms,
      });
    }
    backend.release(prepared);
  }
}
for (const r of rows) {
  const dense = rows.find((d) => d.shape === r.shape && d.batch === r.batch && d.case === 'dense f32')!;
  r.vsDense = (dense.ms as number) / (r.ms as number);
}

// Attention: 16 heads, head dim 64, blocks of 64.
for (const seq of seqs) {
  const heads = 16;
  const headDim = 64;
  const blockSize = 64;
  const q = rng.normalArray(heads * seq * headDim);
  const k = rng.normalArray(heads * seq * headDim);
  const v = rng.normalArray(heads * seq * headDim);
  const blocks = Math.ceil(seq / blockSize);
  const window = 4;
  const causalMask = Uint8Array.from({ length: blocks * blocks }, (_, i) =>
    i % blocks <= Math.floor(i / blocks) ? 1 : 0,
  );
  const windowMask = Uint8Array.from({ length: blocks * blocks }, (_, i) => {
    const [qb, kb] = [Math.floor(i / blocks), i % blocks];
    return kb <= qb && (qb - kb < window || kb === 0) ? 1 : 0;
  });
  const base = { heads, seq, headDim, blockSize, reps: Math.max(2, reps >> 2), trials: 3 };
  const dense = await timeBlockSparseAttention(backend, q, k, v, { ...base, blockMask: causalMask });
  const sparse = await timeBlockSparseAttention(backend, q, k, v, { ...base, blockMask: windowMask });
  for (const [label, mask, ms] of [
    ['causal (all blocks <= diagonal)', causalMask, dense],
    [`window ${window} blocks + first`, windowMask, sparse],
  ] as const) {
    rows.push({
      kernel: 'attention',
      shape: `${heads}x${seq}x${headDim}`,
      batch: 1,
      case: label,
      blockDensity: blockDensity(mask),
      ms,
      vsDense: dense / ms,
    });
  }
}
backend.dispose();

const md = [
  `Adapter: ${backend.adapter}. Command: \`node build/bench/gpu-bench.js ${process.argv.slice(2).join(' ')}\`.`,
  '',
  '| kernel | shape | batch | case | ms | vs dense f32 |',
  '|---|---|--:|---|--:|--:|',
  ...rows.map(
    (r) =>
      `| ${r.kernel} | ${r.shape} | ${r.batch} | ${r.case} | ${(r.ms as number).toFixed(4)} | ${(r.vsDense as number).toFixed(2)}x |`,
  ),
].join('\n');
console.log(md);
mkdirSync(outDir, { recursive: true });
const write = (file: string, text: string) => {
  writeFileSync(join(outDir, `${file}.tmp`), text);
  renameSync(join(outDir, `${file}.tmp`), join(outDir, file));
};
write(
  'gpu-bench.json',
  `${JSON.stringify({ date: new Date().toISOString(), adapter: backend.adapter, reps, rows }, null, 2)}\n`,
);
write('gpu-bench.md', `${md}\n`);
console.log(`wrote ${join(outDir, 'gpu-bench.json')} and gpu-bench.md`);
