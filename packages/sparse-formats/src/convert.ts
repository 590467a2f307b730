import { InvalidArgumentError, ShapeMismatchError, type Tensor } from '@sparsekit/core';
import { bitmaskToCsr, csrToBitmask } from './formats/bitmask.js';
import { bsrToCsr, csrToBsr } from './formats/bsr.js';
import { cooToCsr, csrToCoo } from './formats/coo.js';
import { cscToCsr, csrToCsc, transposeCompressed } from './formats/csc.js';
import { CsrBuilder, forEachCsr, withCsrIndexType } from './formats/csr.js';
import { csrToDense, denseToCsr, type SelectOptions } from './formats/dense.js';
import { csrToNm, nmToCsr } from './formats/nm.js';
import type { CsrMatrix, DenseMatrix, FormatName, MatrixOf, SparseMatrix, ValueDType } from './types.js';
import { assertValueDType, encodeValues, type IndexType, valuesF32 } from './values.js';

/** Parameters of the target format. */
export interface FormatOptions {
  /** BSR block shape [blockRows, blockCols]; both must divide the matrix shape. */
  blockShape?: readonly [number, number];
  /** N:M pattern: keep at most n of every m consecutive elements of a row. */
  n?: number;
  m?: number;
  /** Index width for CSR/CSC/BSR: 'i32' (default), 'u16', or 'auto' (u16 when the dimension fits). */
  indexType?: IndexType;
  /** Value storage of the result (default: the source's). */
  dtype?: ValueDType;
}

/** Any matrix as CSR holding only its nonzeros (explicit zeros are dropped). */
export function toCsr(x: SparseMatrix, indexType: IndexType = 'i32'): CsrMatrix {
  switch (x.format) {
    case 'csr': {
      const values = valuesF32(x.values, x.dtype);
      if (values.every((v) => v !== 0)) return withCsrIndexType(x, indexType);
      const builder = new CsrBuilder(x.rows, x.cols, x.indices.length);
      forEachCsr(x, (r, c, v) => builder.push(r, c, v));
      return builder.finish(x.dtype, indexType);
    }
    case 'dense':
      return denseToCsr(x, {}, indexType);
    case 'coo':
      return cooToCsr(x, indexType);
    case 'csc':
      return dropCsrZeros(cscToCsr(x, indexType), indexType);
    case 'bsr':
      return bsrToCsr(x, indexType);
    case 'nm':
      return nmToCsr(x, indexType);
    case 'bitmask':
      return bitmaskToCsr(x, indexType);
  }
}

function dropCsrZeros(x: CsrMatrix, indexType: IndexType): CsrMatrix {
  return x.format === 'csr' && valuesF32(x.values, x.dtype).includes(0) ? toCsr(x, indexType) : x;
}

/** CSR into any format. */
export function fromCsr<F extends FormatName>(
  x: CsrMatrix,
  format: F,
  options: FormatOptions = {},
): MatrixOf<F> {
  const indexType = options.indexType ?? 'i32';
  const source = options.dtype !== undefined && options.dtype !== x.dtype ? withDType(x, options.dtype) : x;
  let out: SparseMatrix;
  switch (format) {
    case 'csr':
      out = withCsrIndexType(source, indexType);
      break;
    case 'dense':
      out = csrToDense(source);
      break;
    case 'coo':
      out = csrToCoo(source);
      break;
    case 'csc':
      out = csrToCsc(source, indexType);
      break;
    case 'bsr': {
      if (options.blockShape === undefined) {
        throw new InvalidArgumentError('blockShape', undefined, "is required for format 'bsr', e.g. [4, 4]");
      }
      out = csrToBsr(source, options.blockShape, indexType);
      break;
    }
    case 'nm': {
      if (options.n === undefined || options.m === undefined) {
        throw new InvalidArgumentError(
          'n, m',
          [options.n, options.m],
          "are required for format 'nm', e.g. n: 2, m: 4",
        );
      }
      out = csrToNm(source, options.n, options.m);
      break;
    }
    case 'bitmask':
      out = csrToBitmask(source);
      break;
    default:
      throw new InvalidArgumentError(
        'format',
        format,
        `must be one of dense, coo, csr, csc, bsr, nm, bitmask`,
      );
  }
  return out as MatrixOf<F>;
}

/**
 * Convert between any two formats. Every nonzero is kept; explicit zeros are dropped (except the
 * padding N:M and BSR blocks need). For N:M the source must already satisfy the pattern.
 */
export function convert<F extends FormatName>(
  x: SparseMatrix,
  format: F,
  options: FormatOptions = {},
): MatrixOf<F> {
  if (format === 'bsr' && options.blockShape === undefined && x.format === 'bsr') {
    options = { ...options, blockShape: [x.blockRows, x.blockCols] };
  }
  if (format === 'nm' && options.n === undefined && x.format === 'nm')
    options = { ...options, n: x.n, m: x.m };
  return fromCsr(toCsr(x), format, options);
}

/** A dense matrix from a rank-2 f32 or f16 tensor (no copy). */
export function denseFromTensor(t: Tensor): DenseMatrix {
  if (t.rank !== 2) throw new ShapeMismatchError([-1, -1], t.shape, 'a matrix (rank-2 tensor)');
  if (t.dtype !== 'f32' && t.dtype !== 'f16') assertValueDType(t.dtype);
  return {
    format: 'dense',
    rows: t.shape[0]!,
    cols: t.shape[1]!,
    dtype: t.dtype as ValueDType,
    values: t.data as Float32Array | Uint16Array,
  };
}

/**
 * Pack a dense matrix (a rank-2 tensor or a DenseMatrix) into `format`, keeping the entries selected
 * by `keep` (a mask, 1 = keep) or `threshold` (|x| > threshold), or every nonzero.
 */
export function fromDense<F extends FormatName>(
  source: Tensor | DenseMatrix,
  format: F,
  options: FormatOptions & SelectOptions = {},
): MatrixOf<F> {
  const d = 'format' in source ? source : denseFromTensor(source);
  return fromCsr(denseToCsr(d, options), format, options);
}

/** Dense f32 values of any matrix, row-major. */
export function toDenseArray(x: SparseMatrix): Float32Array {
  if (x.format === 'dense') return valuesF32(x.values, x.dtype).slice();
  return valuesF32(csrToDense(toCsr(x)).values, x.dtype);
}

/** The same matrix with values stored in another dtype. */
export function withDType<X extends SparseMatrix>(x: X, dtype: ValueDType): X {
  assertValueDType(dtype);
  if (x.dtype === dtype) return x;
  return { ...x, dtype, values: encodeValues(valuesF32(x.values, x.dtype), dtype) };
}

/** The transpose, in the same format (BSR blocks transpose too; N:M throws unless the transpose fits n:m). */
export function transpose<X extends SparseMatrix>(x: X): X {
  switch (x.format) {
    case 'dense': {
      const v = x.values;
      const out = v instanceof Float32Array ? new Float32Array(v.length) : new Uint16Array(v.length);
      for (let i = 0; i < x.rows; i++)
        for (let j = 0; j < x.cols; j++) out[j * x.rows + i] = v[i * x.cols + j]!;
      return { ...x, rows: x.cols, cols: x.rows, values: out };
    }
    case 'csr':
    case 'csc': {
      const indexType = x.indices instanceof Uint16Array ? 'auto' : 'i32';
      const outer = x.format === 'csr' ? x.rows : x.cols;
      const inner = x.format === 'csr' ? x.cols : x.rows;
      const t = transposeCompressed(outer, inner, x.indptr, x.indices, x.values, indexType);
      return { ...x, rows: x.cols, cols: x.rows, ...t };
    }
    default: {
      const csr = toCsr(x);
      const t = transposeCompressed(csr.rows, csr.cols, csr.indptr, csr.indices, csr.values, 'i32');
      const flipped: CsrMatrix = { ...csr, rows: csr.cols, cols: csr.rows, ...t };
      const options: FormatOptions =
        x.format === 'bsr'
          ? { blockShape: [x.blockCols, x.blockRows] }
          : x.format === 'nm'
            ? { n: x.n, m: x.m }
            : {};
      return fromCsr(flipped, x.format, options) as X;
    }
  }
}
