import { Tensor } from '@sparsekit/core';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { denseCase, FC_OPTIONS } from './arbitraries.test-util.js';
import { convert, fromDense, toDenseArray, transpose, withDType } from './convert.js';
import { csr } from './formats/csr.js';
import { blockNnz, byteSize, equals, histogram, nnz, rowNnz, sparsity, storedCount } from './stats.js';
import type { FormatName, SparseMatrix } from './types.js';

const M = new Tensor('f32', [2, 8], Float32Array.of(1, 0, 0, 2, 0, 0, 3, 0, 0, 0, 0, 0, 4, 5, 0, 0));

describe('stats', () => {
  it('counts nonzeros from the data and reports sparsity and bytes per format', () => {
    const expectedBytes: Record<FormatName, number> = {
      dense: 16 * 4,
      coo: 5 * 4 * 3,
      csr: 3 * 4 + 5 * 4 + 5 * 4,
      csc: 9 * 4 + 5 * 4 + 5 * 4,
      bsr: 0, // checked separately below
      nm: 2 * 2 * 2 * 4 + Math.ceil((2 * 2 * 2 * 2) / 8), // rows x groups x n slots of f32, 2-bit positions
      bitmask: 5 * 4 + 2 + 2 * 4,
    };
    for (const format of ['dense', 'coo', 'csr', 'csc', 'nm', 'bitmask'] as const) {
      const x = fromDense(M, format, { n: 2, m: 4 });
      expect(nnz(x), format).toBe(5);
      expect(sparsity(x), format).toBeCloseTo(11 / 16);
      expect(byteSize(x), format).toBe(expectedBytes[format]);
    }
    const b = fromDense(M, 'bsr', { blockShape: [2, 2] });
    // 2x2 block columns holding nonzeros: 0 (1), 1 (2), 3 (3), 2 (4 and 5) -> 4 blocks of 4 values.
    expect(storedCount(b)).toBe(16);
    expect(nnz(b)).toBe(5);
    expect(byteSize(b)).toBe(2 * 4 + 4 * 4 + 16 * 4);
    expect(storedCount(fromDense(M, 'nm', { n: 2, m: 4 }))).toBe(8);
  });

  it('explicit zeros do not count as nonzeros', () => {
    const x = csr({
      rows: 1,
      cols: 3,
      indptr: Int32Array.of(0, 2),
      indices: Int32Array.of(0, 2),
      values: Float32Array.of(0, 7),
    });
    expect(nnz(x)).toBe(1);
    expect(storedCount(x)).toBe(2);
    expect(toDenseArray(convert(x, 'coo'))).toEqual(Float32Array.of(0, 0, 7));
  });

  it('gives per-row and per-block counts and histograms', () => {
    const x = fromDense(M, 'csr');
    expect(Array.from(rowNnz(x))).toEqual([3, 2]);
    expect(Array.from(blockNnz(x, [2, 4]))).toEqual([2, 3]);
    expect(Array.from(histogram(rowNnz(x), 8))).toEqual([0, 0, 1, 1, 0, 0, 0, 0, 0]);
    expect(() => histogram([9], 8)).toThrow(/must be an integer in \[0, 8\]/);
    expect(() => blockNnz(x, [3, 4])).toThrow(/does not divide/);
  });

  it('compares content across formats', () => {
    const a = fromDense(M, 'csr');
    expect(equals(a, fromDense(M, 'bitmask'))).toBe(true);
    expect(equals(a, fromDense(M, 'bsr', { blockShape: [1, 4] }))).toBe(true);
    const changed = M.toFloat32Array(true);
    changed[5] = 1e-3;
    const b = fromDense(new Tensor('f32', [2, 8], changed), 'coo');
    expect(equals(a, b)).toBe(false);
    expect(equals(a, b, 1e-2)).toBe(true);
    expect(equals(a, fromDense(new Tensor('f32', [8, 2], M.toFloat32Array()), 'csr'))).toBe(false);
    expect(equals(withDType(a, 'f16'), a)).toBe(true);
  });

  it('transposes every format (property)', () => {
    const formats: Array<[FormatName, object]> = [
      ['dense', {}],
      ['coo', {}],
      ['csr', {}],
      ['csc', {}],
      ['bsr', { blockShape: [2, 4] }],
      ['bitmask', {}],
    ];
    fc.assert(
      fc.property(denseCase({ rowMultiple: 2, colMultiple: 4 }), ({ rows, cols, values }) => {
        const t = new Tensor('f32', [rows, cols], values);
        const expected = new Float32Array(rows * cols);
        for (let i = 0; i < rows; i++)
          for (let j = 0; j < cols; j++) expected[j * rows + i] = values[i * cols + j]!;
        for (const [format, options] of formats) {
          const x: SparseMatrix = fromDense(t, format, options);
          const tx = transpose(x);
          expect(tx.format).toBe(format);
          expect([tx.rows, tx.cols]).toEqual([cols, rows]);
          expect(Array.from(toDenseArray(tx)), format).toEqual(Array.from(expected));
        }
      }),
      FC_OPTIONS,
    );
  });

  it('transposing N:M works when the transpose fits the pattern and says why when not', () => {
    const diag = new Tensor('f32', [4, 4], Float32Array.of(1, 0, 0, 0, 0, 2, 0, 0, 0, 0, 3, 0, 0, 0, 0, 4));
    expect(toDenseArray(transpose(fromDense(diag, 'nm', { n: 1, m: 4 })))).toEqual(diag.toFloat32Array());
    const column = new Tensor('f32', [4, 4], Float32Array.of(1, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0));
    expect(() => transpose(fromDense(column, 'nm', { n: 2, m: 4 }))).toThrow(/holds more than n = 2/);
  });

  it('keeps selected entries by mask or threshold, and u16 indices on request', () => {
    const x = fromDense(M, 'csr', { threshold: 2.5 });
    expect(Array.from(toDenseArray(x)).filter((v) => v !== 0)).toEqual([3, 4, 5]);
    const keep = new Uint8Array(16);
    keep[0] = 1;
    keep[1] = 1;
    expect(nnz(fromDense(M, 'coo', { keep }))).toBe(1);
    const small = fromDense(M, 'csr', { indexType: 'auto' });
    expect(small.indices).toBeInstanceOf(Uint16Array);
    expect(toDenseArray(small)).toEqual(M.toFloat32Array());
  });
});
