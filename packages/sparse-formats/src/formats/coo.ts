import { InvalidFormatError } from '@sparsekit/core';
import type { CooMatrix, CsrMatrix, ValueDType, Values } from '../types.js';
import { allocateValues, encodeValues, type IndexType, valuesF32 } from '../values.js';
import { checkDims, checkValues } from './common.js';
import { CsrBuilder } from './csr.js';

export interface CooFields {
  rows: number;
  cols: number;
  rowIndices: Int32Array;
  colIndices: Int32Array;
  values: Values;
  dtype?: ValueDType;
}

/** Build a canonical COO matrix (sorted by row then column, no duplicates), validating it. */
export function coo(fields: CooFields): CooMatrix {
  const m: CooMatrix = { format: 'coo', dtype: fields.dtype ?? 'f32', ...fields };
  validateCoo(m);
  return m;
}

export function validateCoo(m: CooMatrix): void {
  checkDims('coo', m.rows, m.cols);
  if (!(m.rowIndices instanceof Int32Array) || !(m.colIndices instanceof Int32Array)) {
    throw new InvalidFormatError('coo', 'rowIndices and colIndices must be Int32Arrays');
  }
  if (m.rowIndices.length !== m.colIndices.length) {
    throw new InvalidFormatError(
      'coo',
      `rowIndices (${m.rowIndices.length}) and colIndices (${m.colIndices.length}) differ in length`,
    );
  }
  checkValues('coo', m.values, m.dtype, m.rowIndices.length);
  let previousRow = -1;
  let previousCol = -1;
  for (let k = 0; k < m.rowIndices.length; k++) {
    const r = m.rowIndices[k]!;
    const c = m.colIndices[k]!;
    if (r < 0 || r >= m.rows)
      throw new InvalidFormatError('coo', `row index ${r} is out of range [0, ${m.rows})`, k);
    if (c < 0 || c >= m.cols)
      throw new InvalidFormatError('coo', `column index ${c} is out of range [0, ${m.cols})`, k);
    if (r < previousRow || (r === previousRow && c <= previousCol)) {
      throw new InvalidFormatError(
        'coo',
        `entry (${r}, ${c}) is out of order or duplicated after (${previousRow}, ${previousCol}); use cooFromTriplets to sort and merge`,
        k,
      );
    }
    previousRow = r;
    previousCol = c;
  }
}

/**
 * COO from unsorted triplets: sorts them and sums duplicates (as scipy does), or rejects duplicates
 * when `duplicates: 'error'`. Indices are checked for range first.
 */
export function cooFromTriplets(
  rows: number,
  cols: number,
  rowIndices: ArrayLike<number>,
  colIndices: ArrayLike<number>,
  values: ArrayLike<number>,
  options: { dtype?: ValueDType; duplicates?: 'sum' | 'error' } = {},
): CooMatrix {
  checkDims('coo', rows, cols);
  const count = rowIndices.length;
  if (colIndices.length !== count || values.length !== count) {
    throw new InvalidFormatError(
      'coo',
      `triplet arrays differ in length (${count}, ${colIndices.length}, ${values.length})`,
    );
  }
  for (let k = 0; k < count; k++) {
    const r = rowIndices[k]!;
    const c = colIndices[k]!;
    if (!Number.isInteger(r) || r < 0 || r >= rows)
      throw new InvalidFormatError('coo', `row index ${r} is out of range [0, ${rows})`, k);
    if (!Number.isInteger(c) || c < 0 || c >= cols)
      throw new InvalidFormatError('coo', `column index ${c} is out of range [0, ${cols})`, k);
  }
  const order = Array.from({ length: count }, (_, k) => k).sort(
    (a, b) => rowIndices[a]! - rowIndices[b]! || colIndices[a]! - colIndices[b]!,
  );
  const outRows: number[] = [];
  const outCols: number[] = [];
  const outValues: number[] = [];
  for (const k of order) {
    const last = outRows.length - 1;
    if (last >= 0 && outRows[last] === rowIndices[k] && outCols[last] === colIndices[k]) {
      if (options.duplicates === 'error') {
        throw new InvalidFormatError('coo', `duplicate entry (${rowIndices[k]}, ${colIndices[k]})`, k);
      }
      outValues[last]! += values[k]!;
      continue;
    }
    outRows.push(rowIndices[k]!);
    outCols.push(colIndices[k]!);
    outValues.push(values[k]!);
  }
  const dtype = options.dtype ?? 'f32';
  return {
    format: 'coo',
    rows,
    cols,
    dtype,
    rowIndices: Int32Array.from(outRows),
    colIndices: Int32Array.from(outCols),
    values: encodeValues(Float32Array.from(outValues), dtype),
  };
}

export function cooToCsr(m: CooMatrix, indexType: IndexType = 'i32'): CsrMatrix {
  const values = valuesF32(m.values, m.dtype);
  const builder = new CsrBuilder(m.rows, m.cols, values.length);
  for (let k = 0; k < values.length; k++) {
    if (values[k] !== 0) builder.push(m.rowIndices[k]!, m.colIndices[k]!, values[k]!);
  }
  return builder.finish(m.dtype, indexType);
}

export function csrToCoo(m: CsrMatrix): CooMatrix {
  const nnz = m.indices.length;
  const rowIndices = new Int32Array(nnz);
  for (let i = 0; i < m.rows; i++) rowIndices.fill(i, m.indptr[i]!, m.indptr[i + 1]!);
  const values = allocateValues(nnz, m.dtype);
  values.set(m.values);
  return {
    format: 'coo',
    rows: m.rows,
    cols: m.cols,
    dtype: m.dtype,
    rowIndices,
    colIndices: Int32Array.from(m.indices),
    values,
  };
}

export function forEachCoo(m: CooMatrix, fn: (row: number, col: number, value: number) => void): void {
  const values = valuesF32(m.values, m.dtype);
  for (let k = 0; k < values.length; k++)
    if (values[k] !== 0) fn(m.rowIndices[k]!, m.colIndices[k]!, values[k]!);
}
