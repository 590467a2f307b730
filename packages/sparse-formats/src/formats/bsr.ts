import { InvalidArgumentError, InvalidFormatError } from '@sparsekit/core';
import type { BsrMatrix, CsrMatrix, Indices, ValueDType, Values } from '../types.js';
import { allocateIndices, encodeValues, type IndexType, valuesF32 } from '../values.js';
import { checkCompressed, checkDims, checkValues } from './common.js';
import { CsrBuilder } from './csr.js';

export interface BsrFields {
  rows: number;
  cols: number;
  blockRows: number;
  blockCols: number;
  indptr: Int32Array;
  indices: Indices;
  values: Values;
  dtype?: ValueDType;
}

export function bsr(fields: BsrFields): BsrMatrix {
  const m: BsrMatrix = { format: 'bsr', dtype: fields.dtype ?? 'f32', ...fields };
  validateBsr(m);
  return m;
}

export function checkBlockShape(rows: number, cols: number, blockRows: number, blockCols: number): void {
  for (const [name, size, dim, dimName] of [
    ['blockRows', blockRows, rows, 'rows'],
    ['blockCols', blockCols, cols, 'cols'],
  ] as const) {
    if (!Number.isInteger(size) || size < 1)
      throw new InvalidArgumentError(name, size, 'must be a positive integer');
    if (dim % size !== 0) {
      throw new InvalidFormatError('bsr', `${name} = ${size} does not divide ${dimName} = ${dim}`);
    }
  }
}

export function validateBsr(m: BsrMatrix): void {
  checkDims('bsr', m.rows, m.cols);
  checkBlockShape(m.rows, m.cols, m.blockRows, m.blockCols);
  checkCompressed('bsr', m.indptr, m.indices, m.rows / m.blockRows, m.cols / m.blockCols, {
    outer: 'block row',
    inner: 'block column',
  });
  checkValues('bsr', m.values, m.dtype, m.indices.length * m.blockRows * m.blockCols);
}

/** Pack CSR into blocks: every block holding at least one nonzero is stored whole. */
export function csrToBsr(
  m: CsrMatrix,
  blockShape: readonly [number, number],
  indexType: IndexType = 'i32',
): BsrMatrix {
  if (!Array.isArray(blockShape) || blockShape.length !== 2)
    throw new InvalidArgumentError('blockShape', blockShape, 'must be [rows, cols], e.g. [4, 4]');
  const [R, C] = blockShape;
  checkBlockShape(m.rows, m.cols, R, C);
  const blockRowCount = m.rows / R;
  const blockColCount = m.cols / C;
  const source = valuesF32(m.values, m.dtype);
  const indptr = new Int32Array(blockRowCount + 1);
  const blockCols: number[] = [];
  const slot = new Int32Array(blockColCount).fill(-1);
  let blocks: Float32Array = new Float32Array(R * C * 16);
  let count = 0;
  for (let b = 0; b < blockRowCount; b++) {
    const rowBlocks: number[] = [];
    for (let r = b * R; r < (b + 1) * R; r++) {
      for (let k = m.indptr[r]!; k < m.indptr[r + 1]!; k++) {
        const bc = Math.floor(m.indices[k]! / C);
        if (source[k] !== 0 && slot[bc] === -1) {
          slot[bc] = 0;
          rowBlocks.push(bc);
        }
      }
    }
    rowBlocks.sort((x, y) => x - y);
    for (const bc of rowBlocks) {
      slot[bc] = count++;
      blockCols.push(bc);
    }
    if (count * R * C > blocks.length) {
      const grown = new Float32Array(Math.max(count * R * C, blocks.length * 2));
      grown.set(blocks);
      blocks = grown;
    }
    for (let r = b * R; r < (b + 1) * R; r++) {
      for (let k = m.indptr[r]!; k < m.indptr[r + 1]!; k++) {
        const c = m.indices[k]!;
        const s = slot[Math.floor(c / C)]!;
        if (source[k] !== 0) blocks[s * R * C + (r - b * R) * C + (c % C)] = source[k]!;
      }
    }
    for (const bc of rowBlocks) slot[bc] = -1;
    indptr[b + 1] = count;
  }
  const indices = allocateIndices(count, blockColCount, indexType);
  indices.set(blockCols);
  const values = encodeValues(blocks.slice(0, count * R * C), m.dtype);
  return {
    format: 'bsr',
    rows: m.rows,
    cols: m.cols,
    blockRows: R,
    blockCols: C,
    dtype: m.dtype,
    indptr,
    indices,
    values,
  };
}

export function bsrToCsr(m: BsrMatrix, indexType: IndexType = 'i32'): CsrMatrix {
  const R = m.blockRows;
  const C = m.blockCols;
  const values = valuesF32(m.values, m.dtype);
  const builder = new CsrBuilder(m.rows, m.cols, values.length);
  for (let b = 0; b < m.rows / R; b++) {
    for (let r = 0; r < R; r++) {
      for (let k = m.indptr[b]!; k < m.indptr[b + 1]!; k++) {
        const base = k * R * C + r * C;
        const col0 = m.indices[k]! * C;
        for (let c = 0; c < C; c++) {
          const v = values[base + c]!;
          if (v !== 0) builder.push(b * R + r, col0 + c, v);
        }
      }
    }
  }
  return builder.finish(m.dtype, indexType);
}

export function forEachBsr(m: BsrMatrix, fn: (row: number, col: number, value: number) => void): void {
  const R = m.blockRows;
  const C = m.blockCols;
  const values = valuesF32(m.values, m.dtype);
  for (let b = 0; b < m.rows / R; b++) {
    for (let k = m.indptr[b]!; k < m.indptr[b + 1]!; k++) {
      for (let r = 0; r < R; r++) {
        for (let c = 0; c < C; c++) {
          const v = values[k * R * C + r * C + c]!;
          if (v !== 0) fn(b * R + r, m.indices[k]! * C + c, v);
        }
      }
    }
  }
}
