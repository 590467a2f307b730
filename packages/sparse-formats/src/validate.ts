import { validateBitmask } from './formats/bitmask.js';
import { validateBsr } from './formats/bsr.js';
import { validateCoo } from './formats/coo.js';
import { validateCsc } from './formats/csc.js';
import { validateCsr } from './formats/csr.js';
import { validateDense } from './formats/dense.js';
import { validateNm } from './formats/nm.js';
import type { SparseMatrix } from './types.js';

/** Check every invariant of a matrix's format; throws InvalidFormatError naming the first bad position. */
export function validate(x: SparseMatrix): void {
  switch (x.format) {
    case 'dense':
      return validateDense(x);
    case 'coo':
      return validateCoo(x);
    case 'csr':
      return validateCsr(x);
    case 'csc':
      return validateCsc(x);
    case 'bsr':
      return validateBsr(x);
    case 'nm':
      return validateNm(x);
    case 'bitmask':
      return validateBitmask(x);
  }
}
