import { validateBitmask } from './formats/bitmask.js';
import { validateBsr } from './formats/bsr.js';
import { validateCoo } from './formats/coo.js';
import { validateCsc } from './formats/csc.js';
import { validateCsr } from './formats/csr.js';
import { validateDense } from './formats/dense.js';
import { validateNm } from './formats/nm.js';
import type { FormatName, MatrixOf, SparseMatrix } from './types.js';

const VALIDATORS: { [F in FormatName]: (x: MatrixOf<F>) => void } = {
  dense: validateDense,
  coo: validateCoo,
  csr: validateCsr,
  csc: validateCsc,
  bsr: validateBsr,
  nm: validateNm,
  bitmask: validateBitmask,
};

/** Check every invariant of a matrix's format; throws InvalidFormatError naming the first bad position. */
export function validate(x: SparseMatrix): void {
  (VALIDATORS[x.format] as (x: SparseMatrix) => void)(x);
}
