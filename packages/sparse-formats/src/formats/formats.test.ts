import { f16BitsToF32, f32ToF16Bits, InvalidArgumentError, Tensor } from '@sparsekit/core';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { denseCase, FC_OPTIONS } from '../arbitraries.test-util.js';
import { convert, fromDense, toDenseArray } from '../convert.js';
import type { FormatName, SparseMatrix } from '../types.js';
import { validate } from '../validate.js';

const round16 = (values: Float32Array) => values.map((v) => f16BitsToF32(f32ToF16Bits(v)));

/** Each format with the divisibility its parameters need. */
const FORMATS: Array<{
  format: FormatName;
  rowMultiple?: number;
  colMultiple?: number;
  nm?: [number, number];
  options?: object;
}> = [
  { format: 'dense' },
  { format: 'coo' },
  { format: 'csr' },
  { format: 'csc' },
  { format: 'bsr', rowMultiple: 2, colMultiple: 3, options: { blockShape: [2, 3] } },
  { format: 'nm', colMultiple: 4, nm: [2, 4], options: { n: 2, m: 4 } },
  { format: 'nm', colMultiple: 8, nm: [3, 8], options: { n: 3, m: 8 } },
  { format: 'nm', colMultiple: 16, nm: [1, 16], options: { n: 1, m: 16 } },
  { format: 'bitmask' },
];

describe.each(FORMATS)('$format $options', ({ format, rowMultiple, colMultiple, nm, options }) => {
  it('packs from dense and unpacks to the same values (f32 exact), and validates', () => {
    fc.assert(
      fc.property(denseCase({ rowMultiple, colMultiple, nm }), ({ rows, cols, values }) => {
        const x = fromDense(new Tensor('f32', [rows, cols], values), format, options);
        expect(x.format).toBe(format);
        validate(x);
        expect(Array.from(toDenseArray(x))).toEqual(Array.from(values));
      }),
      FC_OPTIONS,
    );
  });

  it('stores f16 values (half the value bytes) and unpacks them rounded to f16', () => {
    fc.assert(
      fc.property(denseCase({ rowMultiple, colMultiple, nm }), ({ rows, cols, values }) => {
        const x = fromDense(new Tensor('f32', [rows, cols], values), format, { ...options, dtype: 'f16' });
        expect(x.dtype).toBe('f16');
        expect(x.values).toBeInstanceOf(Uint16Array);
        validate(x);
        expect(Array.from(toDenseArray(x))).toEqual(Array.from(round16(values)));
      }),
      FC_OPTIONS,
    );
    // A value beyond f16's range would become Inf: refused, not stored.
    const big = new Float32Array(8 * 8);
    big[5] = 1e6;
    expect(() => fromDense(new Tensor('f32', [8, 8], big), format, { ...options, dtype: 'f16' })).toThrow(
      /exceeds the f16 range/,
    );
  });
});

describe('conversions', () => {
  const targets: Array<[FormatName, object]> = [
    ['dense', {}],
    ['coo', {}],
    ['csr', {}],
    ['csc', {}],
    ['bsr', { blockShape: [2, 4] }],
    ['nm', { n: 2, m: 4 }],
    ['bitmask', {}],
  ];
  it('converts between every pair of formats without changing a value', () => {
    fc.assert(
      fc.property(denseCase({ rowMultiple: 2, colMultiple: 4, nm: [2, 4] }), ({ rows, cols, values }) => {
        const t = new Tensor('f32', [rows, cols], values);
        for (const [from, fromOptions] of targets) {
          const source: SparseMatrix = fromDense(t, from, fromOptions);
          for (const [to, toOptions] of targets) {
            const out = convert(source, to, toOptions);
            expect(out.format).toBe(to);
            validate(out);
            expect(Array.from(toDenseArray(out)), `${from} -> ${to}`).toEqual(Array.from(values));
          }
        }
      }),
      { ...FC_OPTIONS, numRuns: 25 },
    );
  });
});

describe('declared sizes and malformed options', () => {
  it('refuses, typed, a dense copy larger than a typed array can hold', () => {
    const empty = {
      format: 'coo' as const,
      rows: 8,
      cols: 2147483647,
      dtype: 'f32' as const,
      values: new Float32Array(0),
      rowIndices: new Int32Array(0),
      colIndices: new Int32Array(0),
    };
    expect(() => toDenseArray(empty)).toThrow(InvalidArgumentError);
    expect(() => toDenseArray(empty)).toThrow(/keep the matrix sparse/);
  });

  it('refuses a BSR blockShape that is not [rows, cols]', () => {
    const t = new Tensor('f32', [4, 4], new Float32Array(16).fill(1));
    for (const blockShape of [4, {}, [2], 'x']) {
      expect(() => fromDense(t, 'bsr', { blockShape: blockShape as never })).toThrow(InvalidArgumentError);
    }
  });
});
