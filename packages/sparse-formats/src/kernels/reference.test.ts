import { Rng, ShapeMismatchError, Tensor } from '@sparsekit/core';
import { denseMatmul, transposeDense } from '@sparsekit/test-utils';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { denseCase, FC_OPTIONS } from '../arbitraries.test-util.js';
import { fromDense } from '../convert.js';
import type { FormatName, NmMatrix } from '../types.js';
import { linear, nmLinear, sddmm, spmm, spmv } from './reference.js';

const TOL = { atol: 1e-5, rtol: 1e-5 };
const FORMATS: Array<[FormatName, object]> = [
  ['dense', {}],
  ['coo', {}],
  ['csr', {}],
  ['csc', {}],
  ['bsr', { blockShape: [2, 2] }],
  ['nm', { n: 2, m: 4 }],
  ['bitmask', {}],
];

const caseWithWidth = fc.tuple(
  denseCase({ rowMultiple: 2, colMultiple: 4, nm: [2, 4] }),
  fc.integer({ min: 0, max: 5 }),
  fc.integer({ min: 0, max: 2 ** 31 - 1 }),
);

describe.each(FORMATS)('reference kernels on %s', (format, options) => {
  it('spmv matches dense A x', () => {
    fc.assert(
      fc.property(caseWithWidth, ([{ rows, cols, values }, , seed]) => {
        const a = fromDense(new Tensor('f32', [rows, cols], values), format, options);
        const x = new Rng(seed).normalArray(cols);
        expect(spmv(a, x)).toAllClose(denseMatmul(values, x, rows, cols, 1), TOL);
      }),
      FC_OPTIONS,
    );
  });

  it('spmm matches dense A B', () => {
    fc.assert(
      fc.property(caseWithWidth, ([{ rows, cols, values }, n, seed]) => {
        const a = fromDense(new Tensor('f32', [rows, cols], values), format, options);
        const b = new Rng(seed).normalArray(cols * n);
        expect(spmm(a, b, n)).toAllClose(denseMatmul(values, b, rows, cols, n), TOL);
      }),
      FC_OPTIONS,
    );
  });

  it('linear matches dense x W^T + bias', () => {
    fc.assert(
      fc.property(caseWithWidth, ([{ rows, cols, values }, batch, seed]) => {
        const w = fromDense(new Tensor('f32', [rows, cols], values), format, options);
        const rng = new Rng(seed);
        const x = rng.normalArray(batch * cols);
        const bias = rng.normalArray(rows);
        const expected = denseMatmul(x, transposeDense(values, rows, cols), batch, cols, rows);
        for (let b = 0; b < batch; b++) for (let o = 0; o < rows; o++) expected[b * rows + o]! += bias[o]!;
        expect(linear(x, batch, w, { bias })).toAllClose(expected, TOL);
      }),
      FC_OPTIONS,
    );
  });

  it('sddmm samples dense A B at the pattern', () => {
    fc.assert(
      fc.property(caseWithWidth, ([{ rows, cols, values }, k, seed]) => {
        const pattern = fromDense(new Tensor('f32', [rows, cols], values), format, options);
        const rng = new Rng(seed);
        const a = rng.normalArray(rows * k);
        const b = rng.normalArray(k * cols);
        const product = denseMatmul(a, b, rows, k, cols);
        const out = sddmm(pattern, a, b, k, { alpha: 2, beta: 0.5 });
        const dense = new Float64Array(rows * cols);
        for (let r = 0; r < rows; r++) {
          for (let e = out.indptr[r]!; e < out.indptr[r + 1]!; e++)
            dense[r * cols + out.indices[e]!] = out.values[e]!;
        }
        const expected = values.map((v, i) => (v === 0 ? 0 : 2 * product[i]! + 0.5 * v));
        expect(dense).toAllClose(expected, { atol: 1e-4, rtol: 1e-5 });
      }),
      FC_OPTIONS,
    );
  });
});

describe('nmLinear', () => {
  it.each([
    [2, 4],
    [4, 8],
    [1, 4],
    [3, 16],
  ])('%i:%i matches dense x W^T, f32 and f16 values', (n, m) => {
    fc.assert(
      fc.property(
        denseCase({ rowMultiple: 1, colMultiple: m, nm: [n, m] }),
        fc.integer({ min: 1, max: 4 }),
        ({ rows, cols, values }, batch) => {
          const x = new Rng(rows * 31 + cols).normalArray(batch * cols);
          const expected = denseMatmul(x, transposeDense(values, rows, cols), batch, cols, rows);
          const w = fromDense(new Tensor('f32', [rows, cols], values), 'nm', { n, m }) as NmMatrix;
          expect(nmLinear(x, batch, w)).toAllClose(expected, TOL);
          const w16 = fromDense(new Tensor('f32', [rows, cols], values), 'nm', {
            n,
            m,
            dtype: 'f16',
          }) as NmMatrix;
          expect(nmLinear(x, batch, w16)).toAllClose(expected, { atol: 1e-2, rtol: 2e-3 });
        },
      ),
      FC_OPTIONS,
    );
  });
});

describe('kernel edge cases', () => {
  it('handles all-zero, fully dense and empty matrices', () => {
    const zero = fromDense(new Tensor('f32', [3, 4], new Float32Array(12)), 'csr');
    expect(Array.from(spmv(zero, Float32Array.of(1, 2, 3, 4)))).toEqual([0, 0, 0]);
    const full = Float32Array.from({ length: 12 }, (_, i) => i + 1);
    const a = fromDense(new Tensor('f32', [3, 4], full), 'bitmask');
    expect(spmv(a, Float32Array.of(1, 1, 1, 1))).toAllClose([10, 26, 42]);
    const empty = fromDense(new Tensor('f32', [0, 4], new Float32Array(0)), 'csr');
    expect(spmm(empty, new Float32Array(8), 2).length).toBe(0);
  });

  it('rejects operands of the wrong shape and reuses an output buffer', () => {
    const a = fromDense(new Tensor('f32', [2, 2], Float32Array.of(1, 0, 0, 1)), 'csr');
    expect(() => spmv(a, new Float32Array(3))).toThrow(ShapeMismatchError);
    expect(() => spmm(a, new Float32Array(3), 2)).toThrow(ShapeMismatchError);
    expect(() => linear(new Float32Array(3), 2, a)).toThrow(ShapeMismatchError);
    expect(() => linear(new Float32Array(4), 2, a, { bias: new Float32Array(3) })).toThrow(
      ShapeMismatchError,
    );
    const out = Float32Array.of(9, 9);
    expect(spmv(a, Float32Array.of(3, 4), out)).toBe(out);
    expect(Array.from(out)).toEqual([3, 4]);
  });
});
