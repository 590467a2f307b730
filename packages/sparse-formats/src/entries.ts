import { forEachBitmask } from './formats/bitmask.js';
import { forEachBsr } from './formats/bsr.js';
import { forEachCoo } from './formats/coo.js';
import { forEachCsc } from './formats/csc.js';
import { forEachCsr } from './formats/csr.js';
import { forEachDense } from './formats/dense.js';
import { forEachNm } from './formats/nm.js';
import type { SparseMatrix } from './types.js';

export type EntryCallback = (row: number, col: number, value: number) => void;

/**
 * Visit every nonzero (row, col, value) of a matrix by walking its own storage. Order: row-major for
 * every format except CSC (column-major) and BSR (block by block).
 */
export function forEachNonzero(x: SparseMatrix, fn: EntryCallback): void {
  switch (x.format) {
    case 'dense':
      return forEachDense(x, fn);
    case 'coo':
      return forEachCoo(x, fn);
    case 'csr':
      return forEachCsr(x, fn);
    case 'csc':
      return forEachCsc(x, fn);
    case 'bsr':
      return forEachBsr(x, fn);
    case 'nm':
      return forEachNm(x, fn);
    case 'bitmask':
      return forEachBitmask(x, fn);
  }
}
