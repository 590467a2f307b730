import { InvalidArgumentError, Rng, ShapeMismatchError } from '@sparsekit/core';
import {
  createReferenceBackend,
  type DenseMatrix,
  dense,
  encodeValues,
  linear as referenceLinear,
  valuesF32,
} from '@sparsekit/sparse-formats';
import { afterAll, describe, expect, it } from 'vitest';
import { GpuBackend } from './backend.js';
import { gatherSplits } from './gather-gemv.js';
import { NoGpuAdapterError } from './gpu.js';
import { GATHER_THREADS } from './wgsl.js';

// The WebGPU gather GEMV against the reference backend's gatherGemv, on whatever adapter exists
// (CI: Mesa lavapipe). Correctness only: nothing here measures speed.
const backend = await GpuBackend.create().catch((error: unknown) => {
  if (!(error instanceof NoGpuAdapterError)) throw error;
  console.warn(`SKIPPED: WebGPU gather-GEMV tests need an adapter (${error.message})`);
  return undefined;
});
afterAll(() => backend?.dispose());

const reference = createReferenceBackend();
const rng = new Rng(7);

function weight(rows: number, cols: number, dtype: 'f32' | 'f16'): DenseMatrix {
  const values = rng.normalArray(rows * cols, 0, 0.5);
  return dense({ rows, cols, dtype, values: encodeValues(values, dtype) });
}

/** x with NaN at the inactive entries: a kernel that read one would be wrong everywhere. */
function input(cols: number, active: Int32Array): Float32Array {
  const x = new Float32Array(cols).fill(Number.NaN);
  for (const i of active) x[i] = rng.normal();
  return x;
}

/**
 * Tolerance of a sum of products: 1e-5 of the row's sum of |w x| (the scale of the rounding error
 * of any summation order), with rtol 1e-5.
 */
function tolerance(w: DenseMatrix, x: Float32Array, active: Int32Array): { atol: number; rtol: number } {
  const values = valuesF32(w.values, w.dtype);
  let scale = 0;
  for (let o = 0; o < w.rows; o++) {
    let s = 0;
    for (const i of active) s += Math.abs(values[o * w.cols + i]! * x[i]!);
    scale = Math.max(scale, s);
  }
  return { atol: Math.max(1e-6, 1e-5 * scale), rtol: 1e-5 };
}

describe('gatherSplits', () => {
  it('divides the active list into whole chunks, never more splits than entries', () => {
    expect(gatherSplits(100, 0)).toEqual({ splits: 1, chunk: 0 });
    // A short output with many active inputs is split; every split is at least one staged tile.
    const short = gatherSplits(64, 4096);
    expect(short.splits).toBeGreaterThan(1);
    expect(short.chunk).toBeGreaterThanOrEqual(GATHER_THREADS);
    expect(short.splits * short.chunk).toBeGreaterThanOrEqual(4096);
    expect((short.splits - 1) * short.chunk).toBeLessThan(4096);
    // A long output fills the GPU on its own: one split.
    expect(gatherSplits(1 << 20, 4096).splits).toBe(1);
    // Fewer active entries than one tile: one split.
    expect(gatherSplits(64, GATHER_THREADS - 1).splits).toBe(1);
    expect(gatherSplits(10, 5, 100)).toEqual({ splits: 5, chunk: 1 });
    expect(gatherSplits(10, 10, 3)).toEqual({ splits: 3, chunk: 4 });
    expect(() => gatherSplits(10, 10, 0)).toThrow(InvalidArgumentError);
    expect(() => gatherSplits(10, 10, 1.5)).toThrow(InvalidArgumentError);
  });
});

describe.skipIf(backend === undefined)('WebGPU gatherGemv vs the reference backend', () => {
  const gpu = backend!;
  // Outputs and inputs that are not multiples of the workgroup (64 threads x 2 outputs) or the
  // staged tile (64 entries), odd output counts (an f16 word holding one real output), and 4097
  // outputs (33 workgroups of outputs).
  const shapes: Array<[number, number]> = [
    [1, 1],
    [2, 3],
    [63, 65],
    [129, 127],
    [128, 256],
    [257, 1000],
    [4097, 96],
  ];
  const fractions = [0, 0.1, 0.5, 1];

  for (const dtype of ['f32', 'f16'] as const) {
    it(`${dtype}: every shape and active fraction, with and without bias and out`, async () => {
      for (const [rows, cols] of shapes) {
        const w = weight(rows, cols, dtype);
        const bias = rng.normalArray(rows);
        for (const fraction of fractions) {
          const active = rng.sample(cols, Math.round(fraction * cols));
          const x = input(cols, active);
          const tol = tolerance(w, x, active);
          const label = `${dtype} [${rows}, ${cols}], ${active.length} active`;
          const want = reference.gatherGemv({ w, x, active });
          expect(await gpu.gatherGemv({ w, x, active }), label).toAllClose(want, tol);
          const wantBiased = reference.gatherGemv({ w, x, active, bias });
          const out = new Float32Array(rows).fill(Number.NaN);
          const got = await gpu.gatherGemv({ w, x, active, bias, out });
          expect(got, label).toBe(out);
          expect(out, `${label}, bias`).toAllClose(wantBiased, tol);
        }
        gpu.release(w);
        reference.release(w);
      }
    });
  }

  it('f16 weights: the dense product of the f16-rounded weights', async () => {
    const [rows, cols] = [301, 190];
    const values = rng.normalArray(rows * cols, 0, 0.5);
    const w = dense({ rows, cols, dtype: 'f16', values: encodeValues(values, 'f16') });
    const rounded = dense({ rows, cols, values: valuesF32(w.values, 'f16') });
    const active = rng.sample(cols, 77);
    const x = input(cols, active);
    const masked = x.map((v, i) => (active.includes(i) ? v : 0));
    const bias = rng.normalArray(rows);
    const want = referenceLinear(masked, 1, rounded, { bias });
    expect(await gpu.gatherGemv({ w, x, active, bias })).toAllClose(want, tolerance(w, x, active));
    gpu.release(w);
  });

  it('split-K: one split, several, and one entry per split agree with the reference', async () => {
    for (const dtype of ['f32', 'f16'] as const) {
      const [rows, cols] = [77, 500];
      const w = weight(rows, cols, dtype);
      const active = rng.sample(cols, 333);
      const x = input(cols, active);
      const bias = rng.normalArray(rows);
      const want = reference.gatherGemv({ w, x, active, bias });
      const tol = tolerance(w, x, active);
      for (const splits of [1, 2, 3, 7, 64, active.length]) {
        expect(await gpu.gatherGemv({ w, x, active, bias, splits }), `${dtype}, ${splits} splits`).toAllClose(
          want,
          tol,
        );
      }
      gpu.release(w);
      reference.release(w);
    }
  });

  it('keeps the column copy resident until release, beside the linear kernels copy', async () => {
    const [rows, cols] = [40, 30];
    const values = rng.normalArray(rows * cols);
    const w = dense({ rows, cols, values });
    const active = Int32Array.of(3, 17, 29, 0);
    const x = input(cols, active);
    const before = reference.gatherGemv({ w, x, active });
    expect(await gpu.gatherGemv({ w, x, active })).toAllClose(before, { atol: 1e-5, rtol: 1e-5 });
    const prepared = gpu.prepare(w);
    // The device copy was made on first use: changing the host values does not reach it...
    values.fill(1);
    expect(await gpu.gatherGemv({ w, x, active })).toAllClose(before, { atol: 1e-5, rtol: 1e-5 });
    // ...until release frees it (and the linear kernels' copy) and the next call uploads again.
    gpu.release(w);
    expect(gpu.prepare(w)).not.toBe(prepared);
    const sum = x[3]! + x[17]! + x[29]! + x[0]!;
    expect(await gpu.gatherGemv({ w, x, active })).toAllClose(new Float32Array(rows).fill(sum), {
      atol: 1e-5,
      rtol: 1e-5,
    });
    gpu.release(w);
  });

  it('refuses bad calls with typed errors', async () => {
    const w = weight(5, 8, 'f32');
    const x = new Float32Array(8);
    await expect(gpu.gatherGemv({ w, x: new Float32Array(7), active: Int32Array.of(1) })).rejects.toThrow(
      ShapeMismatchError,
    );
    await expect(gpu.gatherGemv({ w, x, active: Int32Array.of(2, 2) })).rejects.toThrow(InvalidArgumentError);
    await expect(gpu.gatherGemv({ w, x, active: Int32Array.of(8) })).rejects.toThrow(InvalidArgumentError);
    await expect(gpu.gatherGemv({ w, x, active: Int32Array.of(1), splits: 0 })).rejects.toThrow(
      InvalidArgumentError,
    );
    await expect(
      gpu.gatherGemv({ w, x, active: Int32Array.of(1), out: new Float32Array(4) }),
    ).rejects.toThrow(ShapeMismatchError);
  });
});
