import { InvalidArgumentError, InvalidFormatError, Tensor } from '@sparsekit/core';
import { describe, expect, it } from 'vitest';
import { fromDense } from './convert.js';
import { bitmask } from './formats/bitmask.js';
import { bsr } from './formats/bsr.js';
import { coo, cooFromTriplets } from './formats/coo.js';
import { csc } from './formats/csc.js';
import { csr } from './formats/csr.js';
import { dense } from './formats/dense.js';
import { nm } from './formats/nm.js';

function expectFormatError(fn: () => unknown, format: string, message: RegExp, position?: number): void {
  let caught: unknown;
  try {
    fn();
  } catch (error) {
    caught = error;
  }
  expect(caught, 'expected an InvalidFormatError').toBeInstanceOf(InvalidFormatError);
  const e = caught as InvalidFormatError;
  expect(e.format).toBe(format);
  expect(e.code).toBe('core/invalid-format');
  expect(e.message).toMatch(message);
  if (position !== undefined) expect(e.position).toBe(position);
}

const f32 = (...v: number[]) => Float32Array.from(v);
const i32 = (...v: number[]) => Int32Array.from(v);

describe('validation', () => {
  it('accepts valid matrices of every format', () => {
    const csrOk = csr({
      rows: 2,
      cols: 3,
      indptr: i32(0, 1, 3),
      indices: i32(2, 0, 1),
      values: f32(1, 2, 3),
    });
    expect(csrOk.format).toBe('csr');
    expect(
      csr({ rows: 2, cols: 3, indptr: i32(0, 1, 1), indices: Uint16Array.of(2), values: f32(1) }).rows,
    ).toBe(2);
  });

  it('dense: wrong value length or storage type', () => {
    expectFormatError(
      () => dense({ rows: 2, cols: 2, values: f32(1, 2, 3) }),
      'dense',
      /length 3, expected 4/,
    );
    expectFormatError(
      () => dense({ rows: 1, cols: 1, values: f32(1), dtype: 'f16' }),
      'dense',
      /Uint16Array/,
    );
  });

  it('csr: indptr length, start, monotonicity, end, index range, order and duplicates', () => {
    const base = { rows: 2, cols: 3, values: f32(1, 2, 3) };
    expectFormatError(
      () => csr({ ...base, indptr: i32(0, 3), indices: i32(0, 1, 2) }),
      'csr',
      /indptr has length 2, expected row \+ 1 = 3/,
    );
    expectFormatError(
      () => csr({ ...base, indptr: i32(1, 1, 3), indices: i32(0, 1, 2) }),
      'csr',
      /indptr\[0\] is 1/,
      0,
    );
    expectFormatError(
      () => csr({ ...base, indptr: i32(0, 2, 1), indices: i32(0, 1, 2) }),
      'csr',
      /not monotone/,
      2,
    );
    expectFormatError(
      () => csr({ ...base, indptr: i32(0, 1, 2), indices: i32(0, 1, 2) }),
      'csr',
      /indptr\[2\] = 2 but there are 3 indices/,
      2,
    );
    expectFormatError(
      () => csr({ ...base, indptr: i32(0, 1, 3), indices: i32(0, 1, 3) }),
      'csr',
      /column index 3 in row 1 is out of range \[0, 3\)/,
      2,
    );
    expectFormatError(
      () => csr({ ...base, indptr: i32(0, 1, 3), indices: i32(0, -1, 2) }),
      'csr',
      /out of range/,
      1,
    );
    expectFormatError(
      () => csr({ ...base, indptr: i32(0, 1, 3), indices: i32(0, 2, 1) }),
      'csr',
      /not strictly increasing \(2 then 1\)/,
      2,
    );
    expectFormatError(
      () => csr({ ...base, indptr: i32(0, 1, 3), indices: i32(0, 1, 1) }),
      'csr',
      /not strictly increasing/,
      2,
    );
    expectFormatError(
      () => csr({ ...base, indptr: i32(0, 1, 3), indices: i32(0, 1, 2), values: f32(1) }),
      'csr',
      /values has length 1, expected 3/,
    );
    expect(() => csr({ ...base, rows: -1, indptr: i32(0), indices: i32(), values: f32() })).toThrow(
      InvalidArgumentError,
    );
  });

  it('csc: checks row indices per column', () => {
    expectFormatError(
      () => csc({ rows: 2, cols: 2, indptr: i32(0, 1, 2), indices: i32(0, 2), values: f32(1, 2) }),
      'csc',
      /row index 2 in column 1 is out of range \[0, 2\)/,
      1,
    );
  });

  it('coo: range, order, duplicates, lengths; cooFromTriplets sorts and sums', () => {
    expectFormatError(
      () => coo({ rows: 2, cols: 2, rowIndices: i32(0, 1), colIndices: i32(0), values: f32(1, 2) }),
      'coo',
      /differ in length/,
    );
    expectFormatError(
      () => coo({ rows: 2, cols: 2, rowIndices: i32(0, 2), colIndices: i32(0, 0), values: f32(1, 2) }),
      'coo',
      /row index 2/,
      1,
    );
    expectFormatError(
      () => coo({ rows: 2, cols: 2, rowIndices: i32(1, 0), colIndices: i32(0, 0), values: f32(1, 2) }),
      'coo',
      /out of order/,
      1,
    );
    expectFormatError(
      () => coo({ rows: 2, cols: 2, rowIndices: i32(0, 0), colIndices: i32(1, 1), values: f32(1, 2) }),
      'coo',
      /duplicated/,
      1,
    );
    const merged = cooFromTriplets(2, 2, [1, 0, 1], [0, 1, 0], [1, 2, 3]);
    expect(Array.from(merged.rowIndices)).toEqual([0, 1]);
    expect(Array.from(merged.values)).toEqual([2, 4]);
    expectFormatError(
      () => cooFromTriplets(2, 2, [0, 0], [1, 1], [1, 1], { duplicates: 'error' }),
      'coo',
      /duplicate entry \(0, 1\)/,
    );
    expectFormatError(() => cooFromTriplets(2, 2, [0], [5], [1]), 'coo', /column index 5/, 0);
  });

  it('bsr: block shape must divide the shape; block indices checked', () => {
    const ok = {
      rows: 4,
      cols: 4,
      blockRows: 2,
      blockCols: 2,
      indptr: i32(0, 1, 1),
      indices: i32(1),
      values: new Float32Array(4),
    };
    expect(bsr(ok).format).toBe('bsr');
    expectFormatError(() => bsr({ ...ok, blockCols: 3 }), 'bsr', /blockCols = 3 does not divide cols = 4/);
    expectFormatError(
      () => bsr({ ...ok, indices: i32(2) }),
      'bsr',
      /block column index 2 in block row 0 is out of range \[0, 2\)/,
      0,
    );
    expectFormatError(
      () => bsr({ ...ok, values: new Float32Array(3) }),
      'bsr',
      /values has length 3, expected 4/,
    );
    expect(() => bsr({ ...ok, blockRows: 0 })).toThrow(InvalidArgumentError);
  });

  it('nm: pattern parameters, divisibility, too many nonzeros per group, positions', () => {
    expect(() => fromDense(new Tensor('f32', [1, 4], f32(1, 2, 3, 0)), 'nm', { n: 4, m: 4 })).toThrow(
      InvalidArgumentError,
    );
    expect(() => fromDense(new Tensor('f32', [1, 4], f32(1, 2, 3, 0)), 'nm', { n: 0, m: 4 })).toThrow(
      InvalidArgumentError,
    );
    expectFormatError(
      () => fromDense(new Tensor('f32', [1, 6], new Float32Array(6)), 'nm', { n: 2, m: 4 }),
      'nm',
      /m = 4 does not divide cols = 6/,
    );
    expectFormatError(
      () => fromDense(new Tensor('f32', [2, 4], f32(1, 0, 0, 1, 1, 1, 1, 0)), 'nm', { n: 2, m: 4 }),
      'nm',
      /row 1, group 0 \(columns 0..3\) holds more than n = 2 nonzeros/,
      6,
    );
    // Positions 3 then 1 (2 bits each, little-endian): 0b01_11 = 0x07.
    expectFormatError(
      () => nm({ rows: 1, cols: 4, n: 2, m: 4, indices: Uint8Array.of(0x07), values: f32(1, 2) }),
      'nm',
      /strictly increasing and below m = 4 \(got 3 then 1\)/,
      1,
    );
    expectFormatError(
      () => nm({ rows: 1, cols: 4, n: 2, m: 4, indices: Uint8Array.of(), values: f32(1, 2) }),
      'nm',
      /Uint8Array of 1 bytes/,
    );
  });

  it('bitmask: sizes, row offsets matching the bits, padding bits clear', () => {
    const ok = {
      rows: 2,
      cols: 3,
      bitmask: Uint8Array.of(0b101, 0b010),
      rowOffsets: i32(0, 2),
      values: f32(1, 2, 3),
    };
    expect(bitmask(ok).format).toBe('bitmask');
    expectFormatError(
      () => bitmask({ ...ok, rowOffsets: i32(0, 1) }),
      'bitmask',
      /rowOffsets\[1\] is 1, but the bits of rows before it count 2/,
      1,
    );
    expectFormatError(
      () => bitmask({ ...ok, bitmask: Uint8Array.of(0b1101, 0b010) }),
      'bitmask',
      /row 0 sets bits beyond column 2/,
      0,
    );
    expectFormatError(
      () => bitmask({ ...ok, values: f32(1, 2) }),
      'bitmask',
      /values has length 2, expected 3/,
    );
    expectFormatError(() => bitmask({ ...ok, bitmask: Uint8Array.of(1) }), 'bitmask', /2 bytes/);
  });

  it('fromDense rejects a keep mask of the wrong size and a negative threshold', () => {
    const t = new Tensor('f32', [2, 2], f32(1, 2, 3, 4));
    expect(() => fromDense(t, 'csr', { keep: [1, 0, 1] })).toThrow(InvalidArgumentError);
    expect(() => fromDense(t, 'csr', { threshold: -1 })).toThrow(InvalidArgumentError);
    expect(() => fromDense(t, 'bsr')).toThrow(/blockShape/);
    expect(() => fromDense(t, 'nm')).toThrow(/n, m/);
  });
});
