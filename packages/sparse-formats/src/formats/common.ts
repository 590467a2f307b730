import { InvalidArgumentError, InvalidFormatError } from '@sparsekit/core';
import type { FormatName, Indices, ValueDType, Values } from '../types.js';

export function checkDims(format: FormatName, rows: number, cols: number): void {
  if (!Number.isSafeInteger(rows) || rows < 0)
    throw new InvalidArgumentError('rows', rows, 'must be a non-negative integer');
  if (!Number.isSafeInteger(cols) || cols < 0)
    throw new InvalidArgumentError('cols', cols, 'must be a non-negative integer');
  if (rows * cols > 2 ** 53) throw new InvalidFormatError(format, `shape [${rows}, ${cols}] is too large`);
}

export function checkValues(format: FormatName, values: Values, dtype: ValueDType, expected: number): void {
  const ok =
    dtype === 'f32'
      ? values instanceof Float32Array
      : dtype === 'f16'
        ? values instanceof Uint16Array
        : false;
  if (!ok) {
    throw new InvalidFormatError(
      format,
      `values must be a ${dtype === 'f16' ? 'Uint16Array (f16 bits)' : 'Float32Array'} for dtype '${dtype}'`,
    );
  }
  if (values.length !== expected) {
    throw new InvalidFormatError(format, `values has length ${values.length}, expected ${expected}`);
  }
}

/**
 * Check a compressed pointer array (CSR indptr, CSC indptr, BSR indptr): length outer+1, starts at 0,
 * monotone, ends at nnz. Then check that each segment's indices are in [0, extent), strictly increasing.
 */
export function checkCompressed(
  format: FormatName,
  indptr: Int32Array,
  indices: ArrayLike<number>,
  outer: number,
  extent: number,
  names: { outer: string; inner: string },
): void {
  if (!(indptr instanceof Int32Array)) throw new InvalidFormatError(format, 'indptr must be an Int32Array');
  if (!(indices instanceof Int32Array || indices instanceof Uint16Array)) {
    throw new InvalidFormatError(format, 'indices must be an Int32Array or a Uint16Array');
  }
  if (indptr.length !== outer + 1) {
    throw new InvalidFormatError(
      format,
      `indptr has length ${indptr.length}, expected ${names.outer} + 1 = ${outer + 1}`,
    );
  }
  if (indptr[0] !== 0) throw new InvalidFormatError(format, `indptr[0] is ${indptr[0]}, expected 0`, 0);
  for (let i = 0; i < outer; i++) {
    if (indptr[i + 1]! < indptr[i]!) {
      throw new InvalidFormatError(
        format,
        `indptr is not monotone: indptr[${i + 1}] = ${indptr[i + 1]} < indptr[${i}] = ${indptr[i]}`,
        i + 1,
      );
    }
  }
  if (indptr[outer] !== indices.length) {
    throw new InvalidFormatError(
      format,
      `indptr[${outer}] = ${indptr[outer]} but there are ${indices.length} indices`,
      outer,
    );
  }
  for (let i = 0; i < outer; i++) {
    let previous = -1;
    for (let k = indptr[i]!; k < indptr[i + 1]!; k++) {
      const j = indices[k]!;
      if (j < 0 || j >= extent) {
        throw new InvalidFormatError(
          format,
          `${names.inner} index ${j} in ${names.outer} ${i} is out of range [0, ${extent})`,
          k,
        );
      }
      if (j <= previous) {
        throw new InvalidFormatError(
          format,
          `${names.inner} indices of ${names.outer} ${i} are not strictly increasing (${previous} then ${j})`,
          k,
        );
      }
      previous = j;
    }
  }
}

/** The arrays of a compressed format (CSR: rows compressed; CSC: columns compressed). */
export interface CompressedFields {
  rows: number;
  cols: number;
  indptr: Int32Array;
  indices: Indices;
  values: Values;
  dtype?: ValueDType;
}
