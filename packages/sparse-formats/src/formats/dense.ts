import { InvalidArgumentError, InvalidFormatError } from '@sparsekit/core';
import type { CsrMatrix, DenseMatrix, ValueDType, Values } from '../types.js';
import { allocateValues, encodeValues, type IndexType, valuesF32 } from '../values.js';
import { checkDims, checkValues } from './common.js';
import { CsrBuilder } from './csr.js';

export interface DenseFields {
  rows: number;
  cols: number;
  values: Values;
  dtype?: ValueDType;
}

export function dense(fields: DenseFields): DenseMatrix {
  const m: DenseMatrix = { format: 'dense', dtype: fields.dtype ?? 'f32', ...fields };
  validateDense(m);
  return m;
}

export function validateDense(m: DenseMatrix): void {
  checkDims('dense', m.rows, m.cols);
  checkValues('dense', m.values, m.dtype, m.rows * m.cols);
}

/** Which entries of a dense matrix to keep when packing it. */
export interface SelectOptions {
  /** Keep element i where keep[i] is nonzero/true (row-major, rows*cols entries). */
  keep?: ArrayLike<number | boolean>;
  /** Keep elements with |value| > threshold. Ignored when `keep` is given. */
  threshold?: number;
}

/**
 * Pack the selected nonzeros of a dense matrix into CSR. Without options every nonzero is kept.
 * Zeros are never stored, even where `keep` selects them.
 */
export function denseToCsr(
  m: DenseMatrix,
  options: SelectOptions = {},
  indexType: IndexType = 'i32',
): CsrMatrix {
  const { keep, threshold } = options;
  const size = m.rows * m.cols;
  if (keep !== undefined && keep.length !== size) {
    throw new InvalidArgumentError(
      'keep',
      `length ${keep.length}`,
      `must have rows * cols = ${size} entries`,
    );
  }
  if (threshold !== undefined && !(threshold >= 0)) {
    throw new InvalidArgumentError('threshold', threshold, 'must be a non-negative number');
  }
  const values = valuesF32(m.values, m.dtype);
  let count = 0;
  for (let i = 0; i < size; i++) if (values[i] !== 0) count++;
  const builder = new CsrBuilder(m.rows, m.cols, count);
  for (let r = 0; r < m.rows; r++) {
    const base = r * m.cols;
    for (let c = 0; c < m.cols; c++) {
      const v = values[base + c]!;
      if (v === 0) continue;
      if (keep !== undefined ? !keep[base + c] : threshold !== undefined && !(Math.abs(v) > threshold))
        continue;
      builder.push(r, c, v);
    }
  }
  return builder.finish(m.dtype, indexType);
}

export function csrToDense(m: CsrMatrix): DenseMatrix {
  checkDenseSize(m.rows, m.cols);
  const out = new Float32Array(m.rows * m.cols);
  const values = valuesF32(m.values, m.dtype);
  for (let i = 0; i < m.rows; i++) {
    for (let k = m.indptr[i]!; k < m.indptr[i + 1]!; k++) out[i * m.cols + m.indices[k]!] = values[k]!;
  }
  return { format: 'dense', rows: m.rows, cols: m.cols, dtype: m.dtype, values: encodeValues(out, m.dtype) };
}

export function forEachDense(m: DenseMatrix, fn: (row: number, col: number, value: number) => void): void {
  const values = valuesF32(m.values, m.dtype);
  for (let i = 0; i < m.rows; i++) {
    for (let j = 0; j < m.cols; j++) {
      const v = values[i * m.cols + j]!;
      if (v !== 0) fn(i, j, v);
    }
  }
}

/** A zero dense matrix. */
export function zerosDense(rows: number, cols: number, dtype: ValueDType = 'f32'): DenseMatrix {
  checkDims('dense', rows, cols);
  if (rows * cols > 2 ** 31)
    throw new InvalidFormatError('dense', `shape [${rows}, ${cols}] exceeds 2^31 elements`);
  return { format: 'dense', rows, cols, dtype, values: allocateValues(rows * cols, dtype) };
}

/** Largest dense matrix the runtime makes (a JS typed array's length limit, 2^32 - 1 here). */
const MAX_DENSE = 2 ** 32 - 1;

/** Refuse, typed, a dense matrix too large for one typed array (declared sizes are not trusted). */
export function checkDenseSize(rows: number, cols: number): void {
  const size = rows * cols;
  if (!Number.isSafeInteger(size) || size > MAX_DENSE)
    throw new InvalidArgumentError(
      'dense size',
      `${rows} x ${cols}`,
      `exceeds the ${MAX_DENSE} elements one typed array holds; keep the matrix sparse`,
    );
}
