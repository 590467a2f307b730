import { f32ArrayToF16 } from '@sparsekit/core';
import type { CsrMatrix, ValueDType } from '../types.js';
import { allocateIndices, allocateValues, type IndexType, valuesF32 } from '../values.js';
import { type CompressedFields, checkCompressed, checkDims, checkValues } from './common.js';

export type CsrFields = CompressedFields;

/** Build a CSR matrix from its arrays, validating every invariant. */
export function csr(fields: CsrFields): CsrMatrix {
  const m: CsrMatrix = { format: 'csr', dtype: fields.dtype ?? 'f32', ...fields };
  validateCsr(m);
  return m;
}

export function validateCsr(m: CsrMatrix): void {
  checkDims('csr', m.rows, m.cols);
  checkCompressed('csr', m.indptr, m.indices, m.rows, m.cols, { outer: 'row', inner: 'column' });
  checkValues('csr', m.values, m.dtype, m.indices.length);
}

/** Calls fn(row, col, value) for every stored nonzero, row by row. */
export function forEachCsr(m: CsrMatrix, fn: (row: number, col: number, value: number) => void): void {
  const values = valuesF32(m.values, m.dtype);
  for (let i = 0; i < m.rows; i++) {
    for (let k = m.indptr[i]!; k < m.indptr[i + 1]!; k++) {
      const v = values[k]!;
      if (v !== 0) fn(i, m.indices[k]!, v);
    }
  }
}

/**
 * Incremental CSR construction, row by row in order, columns increasing within a row. Used by every
 * conversion into CSR, the hub format.
 */
export class CsrBuilder {
  private indices: Int32Array;
  private values: Float32Array;
  private readonly indptr: Int32Array;
  private count = 0;
  private row = 0;

  constructor(
    readonly rows: number,
    readonly cols: number,
    capacity = 16,
  ) {
    this.indptr = new Int32Array(rows + 1);
    this.indices = new Int32Array(Math.max(1, capacity));
    this.values = new Float32Array(Math.max(1, capacity));
  }

  /** Append (row, col, value); rows must not decrease, and columns must increase within a row. */
  push(row: number, col: number, value: number): void {
    while (this.row < row) this.indptr[++this.row] = this.count;
    if (this.count === this.indices.length) {
      const grown = this.indices.length * 2;
      const indices = new Int32Array(grown);
      indices.set(this.indices);
      this.indices = indices;
      const values = new Float32Array(grown);
      values.set(this.values);
      this.values = values;
    }
    this.indices[this.count] = col;
    this.values[this.count++] = value;
  }

  finish(dtype: ValueDType, indexType: IndexType = 'i32'): CsrMatrix {
    while (this.row < this.rows) this.indptr[++this.row] = this.count;
    const indices = allocateIndices(this.count, this.cols, indexType);
    indices.set(this.indices.subarray(0, this.count));
    const values = allocateValues(this.count, dtype);
    if (dtype === 'f32') values.set(this.values.subarray(0, this.count));
    else f32ArrayToF16(this.values.subarray(0, this.count), values as Uint16Array);
    return { format: 'csr', rows: this.rows, cols: this.cols, dtype, indptr: this.indptr, indices, values };
  }
}

/** CSR with the indices retyped (u16 where the column count allows, or i32). */
export function withCsrIndexType(m: CsrMatrix, indexType: IndexType): CsrMatrix {
  const indices = allocateIndices(m.indices.length, m.cols, indexType);
  if (indices.constructor === m.indices.constructor) return m;
  indices.set(m.indices);
  return { ...m, indices };
}
