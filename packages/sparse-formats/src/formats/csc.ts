import type { CscMatrix, CsrMatrix, Indices, Values } from '../types.js';
import { allocateIndices, type IndexType, valuesF32 } from '../values.js';
import { type CompressedFields, checkCompressed, checkDims, checkValues } from './common.js';

export type CscFields = CompressedFields;

export function csc(fields: CscFields): CscMatrix {
  const m: CscMatrix = { format: 'csc', dtype: fields.dtype ?? 'f32', ...fields };
  validateCsc(m);
  return m;
}

export function validateCsc(m: CscMatrix): void {
  checkDims('csc', m.rows, m.cols);
  checkCompressed('csc', m.indptr, m.indices, m.cols, m.rows, { outer: 'column', inner: 'row' });
  checkValues('csc', m.values, m.dtype, m.indices.length);
}

/**
 * Transpose compressed storage (counting sort): turns CSR arrays of an [outer, inner] matrix into CSR
 * arrays of its [inner, outer] transpose. The same routine converts CSR -> CSC and CSC -> CSR.
 */
export function transposeCompressed(
  outer: number,
  inner: number,
  indptr: Int32Array,
  indices: Indices,
  values: Values,
  indexType: IndexType,
): { indptr: Int32Array; indices: Indices; values: Values } {
  const nnz = indices.length;
  const outPtr = new Int32Array(inner + 1);
  for (let k = 0; k < nnz; k++) outPtr[indices[k]! + 1]!++;
  for (let j = 0; j < inner; j++) outPtr[j + 1]! += outPtr[j]!;
  const cursor = outPtr.slice(0, inner);
  const outIndices = allocateIndices(nnz, outer, indexType);
  const outValues = values instanceof Float32Array ? new Float32Array(nnz) : new Uint16Array(nnz);
  for (let i = 0; i < outer; i++) {
    for (let k = indptr[i]!; k < indptr[i + 1]!; k++) {
      const dest = cursor[indices[k]!]!++;
      outIndices[dest] = i;
      outValues[dest] = values[k]!;
    }
  }
  return { indptr: outPtr, indices: outIndices, values: outValues };
}

export function csrToCsc(m: CsrMatrix, indexType: IndexType = 'i32'): CscMatrix {
  const t = transposeCompressed(m.rows, m.cols, m.indptr, m.indices, m.values, indexType);
  return { format: 'csc', rows: m.rows, cols: m.cols, dtype: m.dtype, ...t };
}

export function cscToCsr(m: CscMatrix, indexType: IndexType = 'i32'): CsrMatrix {
  const t = transposeCompressed(m.cols, m.rows, m.indptr, m.indices, m.values, indexType);
  return { format: 'csr', rows: m.rows, cols: m.cols, dtype: m.dtype, ...t };
}

/** Calls fn(row, col, value) for every stored nonzero, column by column. */
export function forEachCsc(m: CscMatrix, fn: (row: number, col: number, value: number) => void): void {
  const values = valuesF32(m.values, m.dtype);
  for (let j = 0; j < m.cols; j++) {
    for (let k = m.indptr[j]!; k < m.indptr[j + 1]!; k++) {
      const v = values[k]!;
      if (v !== 0) fn(m.indices[k]!, j, v);
    }
  }
}
