import { InvalidArgumentError } from '@sparsekit/core';
import { forEachNonzero } from './entries.js';
import { checkBlockShape } from './formats/bsr.js';
import type { SparseMatrix } from './types.js';
import { valuesF32 } from './values.js';

/** Nonzero values actually present, counted from the data (padding and explicit zeros excluded). */
export function nnz(x: SparseMatrix): number {
  const values = valuesF32(x.values, x.dtype);
  let count = 0;
  for (let i = 0; i < values.length; i++) if (values[i] !== 0) count++;
  return count;
}

/** Fraction of zero elements, measured: 1 - nnz / (rows * cols). An empty matrix has sparsity 0. */
export function sparsity(x: SparseMatrix): number {
  const size = x.rows * x.cols;
  return size === 0 ? 0 : 1 - nnz(x) / size;
}

/** Number of value slots stored (including explicit zeros, N:M padding and zeros inside BSR blocks). */
export function storedCount(x: SparseMatrix): number {
  return x.values.length;
}

/** Bytes of every array the matrix holds (values, indices, pointers, masks). */
export function byteSize(x: SparseMatrix): number {
  let bytes = x.values.byteLength;
  switch (x.format) {
    case 'dense':
      break;
    case 'coo':
      bytes += x.rowIndices.byteLength + x.colIndices.byteLength;
      break;
    case 'csr':
    case 'csc':
    case 'bsr':
      bytes += x.indptr.byteLength + x.indices.byteLength;
      break;
    case 'nm':
      bytes += x.indices.byteLength;
      break;
    case 'bitmask':
      bytes += x.bitmask.byteLength + x.rowOffsets.byteLength;
      break;
  }
  return bytes;
}

/** Nonzeros per row. */
export function rowNnz(x: SparseMatrix): Int32Array {
  const counts = new Int32Array(x.rows);
  forEachNonzero(x, (r) => {
    counts[r]!++;
  });
  return counts;
}

/** Nonzeros per [blockRows x blockCols] block, row-major over the block grid. */
export function blockNnz(x: SparseMatrix, blockShape: readonly [number, number]): Int32Array {
  const [R, C] = blockShape;
  checkBlockShape(x.rows, x.cols, R, C);
  const gridCols = x.cols / C;
  const counts = new Int32Array((x.rows / R) * gridCols);
  forEachNonzero(x, (r, c) => {
    counts[Math.floor(r / R) * gridCols + Math.floor(c / C)]!++;
  });
  return counts;
}

/**
 * Histogram of counts: out[k] = how many entries of `counts` equal k, for k in 0..max (the largest
 * possible count, e.g. cols for rowNnz or R*C for blockNnz).
 */
export function histogram(counts: ArrayLike<number>, max: number): Int32Array {
  if (!Number.isInteger(max) || max < 0)
    throw new InvalidArgumentError('max', max, 'must be a non-negative integer');
  const out = new Int32Array(max + 1);
  for (let i = 0; i < counts.length; i++) {
    const c = counts[i]!;
    if (c < 0 || c > max || !Number.isInteger(c)) {
      throw new InvalidArgumentError(`counts[${i}]`, c, `must be an integer in [0, ${max}]`);
    }
    out[c]!++;
  }
  return out;
}

/**
 * Whether two matrices hold the same values at the same positions, whatever their formats (an
 * explicit zero equals an absent entry). `tolerance` is an absolute bound per element.
 */
export function equals(a: SparseMatrix, b: SparseMatrix, tolerance = 0): boolean {
  if (a.rows !== b.rows || a.cols !== b.cols) return false;
  const rowsA = collectRows(a);
  const rowsB = collectRows(b);
  for (let r = 0; r < a.rows; r++) {
    const ra = rowsA[r]!;
    const rb = rowsB[r]!;
    for (const [c, v] of ra) if (!(Math.abs(v - (rb.get(c) ?? 0)) <= tolerance)) return false;
    for (const [c, v] of rb) if (!ra.has(c) && !(Math.abs(v) <= tolerance)) return false;
  }
  return true;
}

function collectRows(x: SparseMatrix): Map<number, number>[] {
  const rows = Array.from({ length: x.rows }, () => new Map<number, number>());
  forEachNonzero(x, (r, c, v) => {
    rows[r]!.set(c, v);
  });
  return rows;
}
