import {
  f32ToF16Bits,
  InvalidArgumentError,
  NonFiniteError,
  Rng,
  ShapeMismatchError,
  Tensor,
} from '@sparsekit/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { referenceBackend } from '../backend/reference-backend.js';
import { fromDense } from '../convert.js';
import { dense } from '../formats/dense.js';
import type { DenseMatrix, ValueDType } from '../types.js';
import { valuesF32 } from '../values.js';
import { createWasmBackend, type WasmBackend } from './backend.js';

/**
 * The plain dense product on the masked input, in float64: y = bias + W xm with xm = x at `active`
 * and 0 elsewhere, W's values as stored (f16 weights rounded to f16). Also returns the tolerance
 * scale: the largest row sum of |w x| (f32 accumulation error grows with it, not with |y|).
 */
function denseMasked(
  w: DenseMatrix,
  x: Float32Array,
  active: Int32Array,
  bias?: Float32Array,
): { y: Float64Array; scale: number } {
  const values = valuesF32(w.values, w.dtype);
  const xm = new Float64Array(w.cols);
  for (const c of active) xm[c] = x[c]!;
  const y = new Float64Array(w.rows);
  let scale = 0;
  for (let o = 0; o < w.rows; o++) {
    let s = bias?.[o] ?? 0;
    let magnitude = Math.abs(s);
    for (let i = 0; i < w.cols; i++) {
      s += values[o * w.cols + i]! * xm[i]!;
      magnitude += Math.abs(values[o * w.cols + i]! * xm[i]!);
    }
    y[o] = s;
    scale = Math.max(scale, magnitude);
  }
  return { y, scale };
}

/** allclose with rtol 1e-5 and atol 2e-6 of the largest row sum of |w x| (f32 accumulation). */
function expectMatches(actual: Float32Array, expected: { y: Float64Array; scale: number }, what: string) {
  expect(actual, what).toAllClose(expected.y, { rtol: 1e-5, atol: 2e-6 * Math.max(expected.scale, 1e-30) });
}

function weight(rows: number, cols: number, dtype: ValueDType, rng: Rng): DenseMatrix {
  return fromDense(new Tensor('f32', [rows, cols], rng.normalArray(rows * cols)), 'dense', { dtype });
}

/** Active sets for `cols` columns: none, one, all (in order and reversed), and random subsets. */
function activeSets(cols: number, rng: Rng): Int32Array[] {
  const sets: Int32Array[] = [
    new Int32Array(0),
    Int32Array.of(rng.int(cols)),
    Int32Array.from({ length: cols }, (_, i) => i),
  ];
  sets.push(Int32Array.from({ length: cols }, (_, i) => cols - 1 - i));
  for (const fraction of [0.1, 0.5, 0.7]) {
    const k = Math.max(1, Math.round(cols * fraction));
    sets.push(rng.sample(cols, k)); // random order
    for (const extra of [1, 2, 3]) if (k + extra <= cols) sets.push(rng.sample(cols, k + extra));
  }
  return sets;
}

// Rows not divisible by 4, 8, 32 (the partition multiple) or 32768 (the kernel's row tile).
const SHAPES: Array<[number, number]> = [
  [1, 1],
  [3, 5],
  [7, 4],
  [37, 24],
  [64, 64],
  [130, 72],
  [257, 33],
  [2100, 9],
  [4129, 6],
  [33001, 5],
];

describe.each([
  [1, 0],
  [3, 0],
  [2, 1 << 17],
])('wasm gatherGemv, %i thread(s), minParallelWork %i', (threads, minParallelWork) => {
  let backend: WasmBackend;
  beforeAll(async () => {
    backend = await createWasmBackend({ threads, minParallelWork });
  });
  afterAll(async () => {
    await backend.dispose();
  });

  it.each(['f32', 'f16'] as const)('%s weights: equals the dense product on the masked input', (dtype) => {
    const rng = new Rng(dtype === 'f32' ? 11 : 12);
    for (const [rows, cols] of SHAPES) {
      const w = weight(rows, cols, dtype, rng);
      const x = rng.normalArray(cols);
      const bias = rng.normalArray(rows);
      for (const active of activeSets(cols, rng)) {
        // Inactive entries of x are garbage: a kernel that read them would give NaN.
        const noisy = x.map((v, i) => (active.includes(i) ? v : Number.NaN));
        const what = `${rows}x${cols} ${dtype}, ${active.length} active`;
        expectMatches(backend.gatherGemv({ w, x: noisy, active }), denseMasked(w, x, active), what);
        const out = new Float32Array(rows).fill(7);
        const y = backend.gatherGemv({ w, x: noisy, active, bias, out });
        expect(y).toBe(out);
        expectMatches(y, denseMasked(w, x, active, bias), `${what}, bias and out`);
      }
      backend.release(w);
    }
  });

  it('f16: subnormal halves, zeros, signs and x beyond 2^16 are exact', () => {
    const rng = new Rng(13);
    const [rows, cols] = [70, 40];
    // Every value class of f16: normal, subnormal (down to 2^-24), +-0, the largest finite.
    const values = Float32Array.from({ length: rows * cols }, (_, i) => {
      const kind = i % 7;
      if (kind === 0) return (rng.uniform() < 0.5 ? -1 : 1) * 2 ** -24 * (1 + rng.int(1023));
      if (kind === 1) return i % 2 === 0 ? 0 : -0;
      if (kind === 2) return (rng.uniform() < 0.5 ? -1 : 1) * 65504;
      return rng.normal();
    });
    const w = fromDense(new Tensor('f32', [rows, cols], values), 'dense', { dtype: 'f16' });
    for (const scale of [1, 1e-3, 1e5, 3e6]) {
      const x = rng.normalArray(cols).map((v) => v * scale);
      if (scale === 1) x[3] = 70000; // one group with an x too large to carry the 2^112 factor
      for (const active of activeSets(cols, rng)) {
        expectMatches(
          backend.gatherGemv({ w, x, active }),
          denseMasked(w, x, active),
          `x scale ${scale}, ${active.length} active`,
        );
      }
    }
    // A single subnormal weight read back exactly through x = e_j.
    const tiny = fromDense(new Tensor('f32', [9, 2], new Float32Array(18).fill(2 ** -20)), 'dense', {
      dtype: 'f16',
    });
    expect(
      Array.from(backend.gatherGemv({ w: tiny, x: Float32Array.of(0, 1), active: Int32Array.of(1) })),
    ).toEqual(new Array(9).fill(2 ** -20));
  });

  it('agrees with the reference backend, and non-finite x propagates like it', () => {
    const rng = new Rng(14);
    const w = weight(45, 30, 'f32', rng);
    const x = rng.normalArray(30);
    x[4] = Number.POSITIVE_INFINITY;
    const active = Int32Array.of(4, 9, 1);
    expect(backend.gatherGemv({ w, x, active })).toAllClose(referenceBackend.gatherGemv({ w, x, active }));
  });

  it('refuses bad input with typed errors', () => {
    const rng = new Rng(15);
    const w = weight(6, 10, 'f32', rng);
    const x = rng.normalArray(10);
    const call = (args: Partial<Parameters<WasmBackend['gatherGemv']>[0]>) => () =>
      backend.gatherGemv({ w, x, active: Int32Array.of(1, 2), ...args });
    expect(call({ active: Int32Array.of(1, 10) })).toThrow(InvalidArgumentError);
    expect(call({ active: Int32Array.of(-1) })).toThrow(InvalidArgumentError);
    expect(call({ active: Int32Array.of(3, 5, 3) })).toThrow(/unique/);
    expect(call({ active: new Int32Array(11) })).toThrow(InvalidArgumentError);
    expect(call({ x: new Float32Array(9) })).toThrow(ShapeMismatchError);
    expect(call({ bias: new Float32Array(5) })).toThrow(ShapeMismatchError);
    expect(call({ out: new Float32Array(7) })).toThrow(ShapeMismatchError);
    const csr = fromDense(new Tensor('f32', [6, 10], w.values as Float32Array), 'csr');
    expect(call({ w: csr as never })).toThrow(InvalidArgumentError);
    // Duplicate checks are per call: an index seen by an earlier call is not a duplicate.
    backend.gatherGemv({ w, x, active: Int32Array.of(3, 5) });
    expect(() => backend.gatherGemv({ w, x, active: Int32Array.of(5, 3) })).not.toThrow();
    // The marks grow with the widest matrix seen.
    const wide = weight(2, 5000, 'f32', rng);
    const xw = rng.normalArray(5000);
    expect(() => backend.gatherGemv({ w: wide, x: xw, active: Int32Array.of(4999, 7, 4999) })).toThrow(
      /unique/,
    );
    expect(() => backend.gatherGemv({ w: wide, x: xw, active: Int32Array.of(4999, 7) })).not.toThrow();
    backend.release(wide);
    const bits = new Uint16Array(4).fill(f32ToF16Bits(1));
    bits[2] = 0x7c00; // +Inf
    const inf = dense({ rows: 2, cols: 2, values: bits, dtype: 'f16' });
    expect(() => backend.gatherGemv({ w: inf, x: new Float32Array(2), active: Int32Array.of(0) })).toThrow(
      NonFiniteError,
    );
  });

  it('keeps one resident copy per matrix and frees it on release', () => {
    const rng = new Rng(16);
    const before = backend.allocator.allocatedBytes;
    // Values in [1, 2): no subnormal halves, so the copy is the columns alone.
    const values = rng.uniformArray(100 * 50, 1, 2);
    const w = fromDense(new Tensor('f32', [100, 50], values), 'dense', { dtype: 'f16' });
    const x = rng.normalArray(50);
    backend.gatherGemv({ w, x, active: Int32Array.of(0, 1) });
    const resident = backend.allocator.allocatedBytes;
    const copy = backend.prepareGather(w);
    expect(copy.bytes).toBe(128 * 50 * 2); // f16 stays f16: rows padded to 128, 2 bytes each
    for (let i = 0; i < 3; i++) backend.gatherGemv({ w, x, active: Int32Array.of(i + 2) });
    expect(backend.allocator.allocatedBytes).toBe(resident);
    backend.release(w);
    // The io region may have grown once; the copy itself is gone.
    expect(backend.allocator.allocatedBytes - before).toBeLessThan(copy.bytes);
  });
});
