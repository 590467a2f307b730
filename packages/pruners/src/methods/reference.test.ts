// The methods against the outputs of the reference code on one layer (see the fixture's README):
// masks agree on >= 99% of entries and layer errors within 1%.
import { NonFiniteError, Tensor } from '@sparsekit/core';
import { readSafetensors } from '@sparsekit/core/node';
import { createWasmBackend, HessianAccumulator, InputNormAccumulator } from '@sparsekit/sparse-formats';
import { fixturePath } from '@sparsekit/test-utils';
import { beforeAll, describe, expect, it } from 'vitest';
import { magnitude } from './magnitude.js';
import { sparseGpt } from './sparsegpt.js';
import { wanda } from './wanda.js';

const ROWS = 64;
const COLS = 192;
let tensors: Record<string, Tensor>;
let W: Float32Array;
let X: Float32Array;

/** sum((X W^T - X W'^T)^2) in float64. */
function layerError(pruned: Float32Array): number {
  let total = 0;
  const tokens = X.length / COLS;
  for (let t = 0; t < tokens; t++) {
    for (let r = 0; r < ROWS; r++) {
      let d = 0;
      for (let c = 0; c < COLS; c++) d += X[t * COLS + c]! * (W[r * COLS + c]! - pruned[r * COLS + c]!);
      total += d * d;
    }
  }
  return total;
}

function agreement(a: Uint8Array, b: ArrayLike<number>): number {
  let same = 0;
  for (let i = 0; i < a.length; i++) if (a[i] === b[i]) same++;
  return same / a.length;
}

beforeAll(async () => {
  tensors = (await readSafetensors(fixturePath(import.meta.url, 'layer-64x192.safetensors'))).tensors;
  W = tensors.W!.data as Float32Array;
  X = tensors.X!.data as Float32Array;
});

function check(name: string, result: { weight: Float32Array; mask: Uint8Array }, maskAgreement = 0.99) {
  const refMask = tensors[`${name}.mask`]!.data as Uint8Array;
  const refErr = (tensors[`${name}.err`]!.data as Float64Array)[0]!;
  expect(agreement(result.mask, refMask)).toBeGreaterThanOrEqual(maskAgreement);
  expect(Math.abs(layerError(result.weight) - refErr) / refErr).toBeLessThan(0.01);
}

describe('calibration statistics', () => {
  it("the Hessian's X^T X on the wasm kernel (f32) matches the float64 loop to 1e-5 relative", async () => {
    const backend = await createWasmBackend();
    try {
      const [plain, fast] = [new HessianAccumulator(COLS), new HessianAccumulator(COLS, backend)];
      for (const acc of [plain, fast]) {
        acc.add(new Tensor('f32', [300, COLS], X.subarray(0, 300 * COLS)));
        acc.add(new Tensor('f32', [468, COLS], X.subarray(300 * COLS)));
      }
      expect(fast.samples).toBe(768);
      const [a, b] = [plain.matrix(), fast.matrix()];
      let scale = 0;
      for (const v of a) scale = Math.max(scale, Math.abs(v));
      expect(b).toAllClose(a, { atol: 1e-5 * scale, rtol: 0 });
    } finally {
      await backend.dispose();
    }
  });
});

describe('against the reference implementations', () => {
  it('magnitude 50% (one threshold per matrix)', () => {
    check('magnitude_50', magnitude(W, ROWS, COLS, { sparsity: 0.5 }));
  });

  it('Wanda 50% and 2:4', () => {
    const norms = new InputNormAccumulator(COLS);
    // In two batches: the running mean must equal one pass over all tokens.
    norms.add(new Tensor('f32', [300, COLS], X.subarray(0, 300 * COLS)));
    norms.add(new Tensor('f32', [468, COLS], X.subarray(300 * COLS)));
    check('wanda_50', wanda(W, ROWS, COLS, norms.scalerRow, { sparsity: 0.5 }));
    check('wanda_2of4', wanda(W, ROWS, COLS, norms.scalerRow, { n: 2, m: 4 }));
  });

  it('SparseGPT 50% and 2:4 (blocks of 128: a full and a partial block)', () => {
    const h = new HessianAccumulator(COLS);
    h.add(new Tensor('f32', [768, COLS], X));
    const H = h.matrix();
    const u = sparseGpt(W, ROWS, COLS, H, { sparsity: 0.5 });
    check('sparsegpt_50', u);
    const nm = sparseGpt(W, ROWS, COLS, H, { n: 2, m: 4 });
    check('sparsegpt_2of4', nm);
    // The updated weights, not only the masks, follow the reference.
    expect(u.weight).toAllClose(tensors['sparsegpt_50.weight']!.data as Float32Array, {
      atol: 1e-3,
      rtol: 1e-3,
    });
  });

  it('SparseGPT with its products on the wasm kernel (f32) matches the reference and the float64 loop', async () => {
    const h = new HessianAccumulator(COLS);
    h.add(new Tensor('f32', [768, COLS], X));
    const backend = await createWasmBackend({ threads: 1 });
    try {
      for (const [key, pattern] of [
        ['sparsegpt_50', { sparsity: 0.5 }],
        ['sparsegpt_2of4', { n: 2, m: 4 }],
      ] as const) {
        const fast = sparseGpt(W, ROWS, COLS, h.matrix(), { ...pattern, backend });
        check(key, fast);
        const exact = sparseGpt(W, ROWS, COLS, h.matrix(), pattern);
        expect(fast.weight).toAllClose(exact.weight, { atol: 1e-4, rtol: 1e-4 });
      }
      // The kernel path sweeps each block in sub-blocks of 32 columns (of a multiple of M for N:M):
      // ragged ones (48 = 32 + 16; 96 = 30 + 30 + 30 + 6 for 1:3) and 4:8 groups inside them give
      // the float64 whole-block loop's result.
      for (const pattern of [
        { sparsity: 0.6, blockSize: 48 },
        { n: 4, m: 8 },
        { n: 1, m: 3, blockSize: 96 },
      ]) {
        const fast = sparseGpt(W, ROWS, COLS, h.matrix(), { ...pattern, backend });
        const exact = sparseGpt(W, ROWS, COLS, h.matrix(), pattern);
        expect(fast.mask).toEqual(exact.mask);
        expect(fast.weight).toAllClose(exact.weight, { atol: 1e-4, rtol: 1e-4 });
      }
    } finally {
      await backend.dispose();
    }
  });

  it('the literature ordering holds on this layer: SparseGPT < Wanda < magnitude error', () => {
    const h = new HessianAccumulator(COLS);
    h.add(new Tensor('f32', [768, COLS], X));
    const norms = new InputNormAccumulator(COLS);
    norms.add(new Tensor('f32', [768, COLS], X));
    const s = layerError(sparseGpt(W, ROWS, COLS, h.matrix(), { sparsity: 0.5 }).weight);
    const w = layerError(wanda(W, ROWS, COLS, norms.scalerRow, { sparsity: 0.5 }).weight);
    const m = layerError(magnitude(W, ROWS, COLS, { sparsity: 0.5 }).weight);
    expect(s).toBeLessThan(w);
    expect(w).toBeLessThan(m);
  });

  it('SparseGPT N:M with M not dividing 128 (1:3, 2:6): blocks of a multiple of M, N kept per group', () => {
    const h = new HessianAccumulator(COLS);
    h.add(new Tensor('f32', [768, COLS], X));
    for (const [n, m] of [
      [1, 3],
      [2, 6],
    ] as const) {
      const { weight, mask } = sparseGpt(W, ROWS, COLS, h.matrix(), { n, m });
      for (let g = 0; g < weight.length; g += m) {
        const group = weight.subarray(g, g + m);
        expect(group.filter((v) => v !== 0).length).toBe(n);
        expect(mask.subarray(g, g + m).reduce((a, b) => a + b, 0)).toBe(m - n);
      }
      // Still far better than magnitude on this layer.
      expect(layerError(weight)).toBeLessThan(layerError(magnitude(W, ROWS, COLS, { n, m }).weight));
    }
  });

  it('SparseGPT zeroes the weights of dead inputs (a zero Hessian diagonal), as the reference', () => {
    const dead = [5, 130];
    const x = X.slice();
    for (let t = 0; t < 768; t++) for (const c of dead) x[t * COLS + c] = 0;
    const h = new HessianAccumulator(COLS);
    h.add(new Tensor('f32', [768, COLS], x));
    for (const pattern of [{ sparsity: 0.5 }, { n: 2, m: 4 }]) {
      const { weight, mask } = sparseGpt(W, ROWS, COLS, h.matrix(), pattern);
      for (let r = 0; r < ROWS; r++) {
        for (const c of dead) {
          expect(weight[r * COLS + c]).toBe(0);
          // A zeroed weight scores 0, so it is among the pruned.
          expect(mask[r * COLS + c]).toBe(1);
        }
      }
      expect(weight.every(Number.isFinite)).toBe(true);
    }
  });

  it('rejects impossible targets, bad patterns and non-finite activations', () => {
    expect(() => magnitude(W, ROWS, COLS, { sparsity: 1 })).toThrow(/sparsity/);
    expect(() => magnitude(W, ROWS, COLS, { sparsity: -0.1 })).toThrow(/sparsity/);
    expect(() => magnitude(W, ROWS, COLS, { n: 4, m: 4 })).toThrow(/N:M/);
    expect(() => magnitude(W, ROWS, COLS, { n: 2, m: 5 })).toThrow(/multiple of M/);
    const h = new HessianAccumulator(COLS);
    const bad = X.slice(0, 2 * COLS);
    bad[3] = Number.NaN;
    expect(() => h.add(new Tensor('f32', [2, COLS], bad))).toThrow(NonFiniteError);
    expect(() => h.matrix()).toThrow(/no calibration tokens/);
    const norms = new Float64Array(COLS).fill(1);
    norms[7] = Number.NaN;
    expect(() => wanda(W, ROWS, COLS, norms, { sparsity: 0.5 })).toThrow(NonFiniteError);
    norms[7] = -1;
    expect(() => wanda(W, ROWS, COLS, norms, { sparsity: 0.5 })).toThrow(/entry 7 is negative/);
    const w = W.slice();
    w[9] = Number.NEGATIVE_INFINITY;
    for (const prune of [
      () => magnitude(w, ROWS, COLS, { sparsity: 0.5 }),
      () => wanda(w, ROWS, COLS, new Float64Array(COLS).fill(1), { n: 2, m: 4 }),
      () => sparseGpt(w, ROWS, COLS, new Float64Array(COLS * COLS), { sparsity: 0.5 }),
    ])
      expect(prune).toThrow(/weight holds a non-finite value \(-Infinity\) at flat index 9/);
  });
});
