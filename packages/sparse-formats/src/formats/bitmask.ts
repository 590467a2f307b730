import { InvalidFormatError } from '@sparsekit/core';
import type { BitmaskMatrix, CsrMatrix, ValueDType, Values } from '../types.js';
import { allocateValues, type IndexType, valuesF32 } from '../values.js';
import { checkDims, checkValues } from './common.js';
import { CsrBuilder } from './csr.js';

export interface BitmaskFields {
  rows: number;
  cols: number;
  bitmask: Uint8Array;
  rowOffsets: Int32Array;
  values: Values;
  dtype?: ValueDType;
}

const POPCOUNT = new Uint8Array(256).map((_, i) => {
  let c = 0;
  for (let x = i; x > 0; x >>= 1) c += x & 1;
  return c;
});

export function bitmask(fields: BitmaskFields): BitmaskMatrix {
  const m: BitmaskMatrix = { format: 'bitmask', dtype: fields.dtype ?? 'f32', ...fields };
  validateBitmask(m);
  return m;
}

/** Bytes per row of the bitmask: ceil(cols / 8). */
export function bitmaskRowBytes(cols: number): number {
  return Math.ceil(cols / 8);
}

export function validateBitmask(m: BitmaskMatrix): void {
  checkDims('bitmask', m.rows, m.cols);
  const rowBytes = bitmaskRowBytes(m.cols);
  if (!(m.bitmask instanceof Uint8Array) || m.bitmask.length !== m.rows * rowBytes) {
    throw new InvalidFormatError(
      'bitmask',
      `bitmask must be a Uint8Array of rows * ceil(cols/8) = ${m.rows * rowBytes} bytes`,
    );
  }
  if (!(m.rowOffsets instanceof Int32Array) || m.rowOffsets.length !== m.rows) {
    throw new InvalidFormatError('bitmask', `rowOffsets must be an Int32Array of length rows = ${m.rows}`);
  }
  const tailBits = m.cols % 8;
  let offset = 0;
  for (let r = 0; r < m.rows; r++) {
    if (m.rowOffsets[r] !== offset) {
      throw new InvalidFormatError(
        'bitmask',
        `rowOffsets[${r}] is ${m.rowOffsets[r]}, but the bits of rows before it count ${offset}`,
        r,
      );
    }
    for (let b = r * rowBytes; b < (r + 1) * rowBytes; b++) offset += POPCOUNT[m.bitmask[b]!]!;
    if (tailBits !== 0 && m.bitmask[(r + 1) * rowBytes - 1]! >>> tailBits !== 0) {
      throw new InvalidFormatError(
        'bitmask',
        `row ${r} sets bits beyond column ${m.cols - 1}`,
        (r + 1) * rowBytes - 1,
      );
    }
  }
  checkValues('bitmask', m.values, m.dtype, offset);
}

export function csrToBitmask(m: CsrMatrix): BitmaskMatrix {
  const rowBytes = bitmaskRowBytes(m.cols);
  const bits = new Uint8Array(m.rows * rowBytes);
  const rowOffsets = new Int32Array(m.rows);
  const source = valuesF32(m.values, m.dtype);
  let count = 0;
  for (let k = 0; k < source.length; k++) if (source[k] !== 0) count++;
  const values = allocateValues(count, m.dtype);
  let out = 0;
  for (let r = 0; r < m.rows; r++) {
    rowOffsets[r] = out;
    for (let k = m.indptr[r]!; k < m.indptr[r + 1]!; k++) {
      if (source[k] === 0) continue;
      const c = m.indices[k]!;
      bits[r * rowBytes + (c >>> 3)]! |= 1 << (c & 7);
      values[out++] = m.values[k]!;
    }
  }
  return { format: 'bitmask', rows: m.rows, cols: m.cols, dtype: m.dtype, bitmask: bits, rowOffsets, values };
}

export function bitmaskToCsr(m: BitmaskMatrix, indexType: IndexType = 'i32'): CsrMatrix {
  const builder = new CsrBuilder(m.rows, m.cols, m.values.length);
  forEachBitmask(m, (r, c, v) => builder.push(r, c, v));
  return builder.finish(m.dtype, indexType);
}

export function forEachBitmask(
  m: BitmaskMatrix,
  fn: (row: number, col: number, value: number) => void,
): void {
  const values = valuesF32(m.values, m.dtype);
  const rowBytes = bitmaskRowBytes(m.cols);
  let k = 0;
  for (let r = 0; r < m.rows; r++) {
    for (let b = 0; b < rowBytes; b++) {
      let byte = m.bitmask[r * rowBytes + b]!;
      while (byte !== 0) {
        const bit = 31 - Math.clz32(byte & -byte);
        byte &= byte - 1;
        const v = values[k++]!;
        if (v !== 0) fn(r, b * 8 + bit, v);
      }
    }
  }
}
