import { forEachBitmask } from './formats/bitmask.js';
import { forEachBsr } from './formats/bsr.js';
import { forEachCoo } from './formats/coo.js';
import { forEachCsc } from './formats/csc.js';
import { forEachCsr } from './formats/csr.js';
import { forEachDense } from './formats/dense.js';
import { forEachNm } from './formats/nm.js';
import type { FormatName, MatrixOf, SparseMatrix } from './types.js';

export type EntryCallback = (row: number, col: number, value: number) => void;

const VISITORS: { [F in FormatName]: (x: MatrixOf<F>, fn: EntryCallback) => void } = {
  dense: forEachDense,
  coo: forEachCoo,
  csr: forEachCsr,
  csc: forEachCsc,
  bsr: forEachBsr,
  nm: forEachNm,
  bitmask: forEachBitmask,
};

/**
 * Visit every nonzero (row, col, value) of a matrix by walking its own storage. Order: row-major for
 * every format except CSC (column-major) and BSR (block by block).
 */
export function forEachNonzero(x: SparseMatrix, fn: EntryCallback): void {
  (VISITORS[x.format] as (x: SparseMatrix, fn: EntryCallback) => void)(x, fn);
}
