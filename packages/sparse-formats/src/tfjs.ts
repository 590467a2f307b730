// @sparsekit/sparse-formats/tfjs: sparse matrices and TensorFlow.js. Conversions to and from
// tf.Tensor and TensorFlow's SparseTensor triple, and a sparse x dense matMul op that runs on the
// sparse kernels with gradients, the op tfjs lacks (tfjs#906, tfjs#4681). tfjs-core is an optional
// peer, passed in as `tf` (the same instance the caller's tensors belong to).
import { InvalidArgumentError, ShapeMismatchError, Tensor } from '@sparsekit/core';
import type * as TF from '@tensorflow/tfjs-core';
import type { AnyBackend } from './backend/contract.js';
import { type FormatOptions, fromDense, toCsr, toDenseArray, transpose } from './convert.js';
import { cooFromTriplets } from './formats/coo.js';
import { sddmm, spmm } from './kernels/reference.js';
import type { CooMatrix, CsrMatrix, FormatName, MatrixOf, SparseMatrix } from './types.js';
import { valuesF32 } from './values.js';

type Tfjs = typeof TF;

/** The dense tf.Tensor2D of a matrix of any format. */
export function toTensor(tf: Tfjs, matrix: SparseMatrix): TF.Tensor2D {
  return tf.tensor2d(toDenseArray(matrix), [matrix.rows, matrix.cols], 'float32');
}

/** A 2-D tf.Tensor as a matrix of `format` (its zeros dropped; `options` as `fromDense`). */
export function fromTensor<F extends FormatName>(
  tensor: TF.Tensor,
  format: F,
  options?: FormatOptions,
): MatrixOf<F> {
  if (tensor.rank !== 2) throw new ShapeMismatchError([-1, -1], tensor.shape, 'tensor (2-D)');
  const values = Float32Array.from(tensor.dataSync() as ArrayLike<number>);
  return fromDense(new Tensor('f32', tensor.shape as [number, number], values), format, options);
}

/**
 * TensorFlow's SparseTensor: `indices` [nnz, 2] (row, col) in row-major order, `values` [nnz],
 * `denseShape` [rows, cols]. TensorFlow's indices are int64; tfjs has int32, which is used here.
 */
export interface SparseTensorTriple {
  indices: TF.Tensor2D;
  values: TF.Tensor1D;
  denseShape: [number, number];
}

/** A matrix as a SparseTensor triple (tf.sparseToDense(indices, values, denseShape) rebuilds it). */
export function toSparseTensor(tf: Tfjs, matrix: SparseMatrix): SparseTensorTriple {
  const csr = toCsr(matrix);
  const nnz = csr.values.length;
  const indices = new Int32Array(nnz * 2);
  for (let r = 0; r < csr.rows; r++)
    for (let e = csr.indptr[r]!; e < csr.indptr[r + 1]!; e++) {
      indices[2 * e] = r;
      indices[2 * e + 1] = csr.indices[e]!;
    }
  return {
    indices: tf.tensor2d(indices, [nnz, 2], 'int32'),
    values: tf.tensor1d(valuesF32(csr.values, csr.dtype), 'float32'),
    denseShape: [csr.rows, csr.cols],
  };
}

/** A SparseTensor triple as COO: indices checked in range, sorted; duplicates refused. */
export function fromSparseTensor(triple: {
  indices: TF.Tensor | ArrayLike<number>;
  values: TF.Tensor | ArrayLike<number>;
  denseShape: readonly number[];
}): CooMatrix {
  const read = (t: TF.Tensor | ArrayLike<number>) =>
    (typeof (t as TF.Tensor).dataSync === 'function' ? (t as TF.Tensor).dataSync() : t) as ArrayLike<number>;
  const [rows, cols] = triple.denseShape;
  if (triple.denseShape.length !== 2 || rows === undefined || cols === undefined)
    throw new ShapeMismatchError([-1, -1], triple.denseShape, 'SparseTensor denseShape (2-D)');
  const idx = read(triple.indices);
  const vals = read(triple.values);
  if (idx.length !== 2 * vals.length)
    throw new ShapeMismatchError([vals.length, 2], [idx.length / 2, 2], 'SparseTensor indices');
  const r = Int32Array.from({ length: vals.length }, (_, k) => idx[2 * k]!);
  const c = Int32Array.from({ length: vals.length }, (_, k) => idx[2 * k + 1]!);
  return cooFromTriplets(rows, cols, r, c, vals, { duplicates: 'error' });
}

export interface SparseDenseMatMulOptions {
  /**
   * The nonzeros' values as a tf.Tensor1D (in the matrix's CSR order: row-major), to differentiate
   * with respect to them; default: the matrix's own values, a constant.
   */
  values?: TF.Tensor1D;
  /** Kernels for the forward product and the gradients (default: the reference kernels). */
  backend?: AnyBackend;
}

/**
 * y [M, N] = A [M, K] (sparse, any format) x B [K, N] (a dense tf.Tensor2D), computed by the sparse
 * kernels over A's nonzeros only. Gradients: dB = A^T dY (a sparse product again) and, when
 * `values` is given, dValues = (dY B^T) sampled at A's nonzeros (SDDMM).
 */
export function sparseDenseMatMul(
  tf: Tfjs,
  sparse: SparseMatrix,
  dense: TF.Tensor2D,
  options: SparseDenseMatMulOptions = {},
): TF.Tensor2D {
  if (dense.rank !== 2 || dense.shape[0] !== sparse.cols)
    throw new ShapeMismatchError([sparse.cols, -1], dense.shape, 'dense operand of sparseDenseMatMul');
  const csr: CsrMatrix = toCsr(sparse);
  const nnz = csr.values.length;
  const values = options.values ?? tf.tensor1d(valuesF32(csr.values, csr.dtype));
  if (values.rank !== 1 || values.shape[0] !== nnz)
    throw new ShapeMismatchError(
      [nnz],
      values.shape,
      "sparseDenseMatMul values (one per nonzero of A's CSR form)",
    );
  const n = dense.shape[1];
  const backend = options.backend;
  const product = (a: SparseMatrix, b: Float32Array, width: number): Float32Array => {
    if (backend === undefined) return spmm(a, b, width);
    const out = backend.spmm(a, b, width);
    if (out instanceof Promise)
      throw new InvalidArgumentError('backend', 'async', 'sparseDenseMatMul needs a synchronous backend');
    return out;
  };
  const withValues = (v: Float32Array): CsrMatrix => ({ ...csr, dtype: 'f32', values: v });
  const op = tf.customGrad((...args: (TF.Tensor | TF.GradSaveFunc)[]) => {
    const [vals, b, save] = args as [TF.Tensor1D, TF.Tensor2D, TF.GradSaveFunc];
    save([vals, b]);
    const a = withValues(Float32Array.from(vals.dataSync() as Float32Array));
    const y = product(a, Float32Array.from(b.dataSync() as Float32Array), n);
    return {
      value: tf.tensor2d(y, [csr.rows, n]),
      gradFunc: (dy, saved) => {
        const [sv, sb] = saved as [TF.Tensor1D, TF.Tensor2D];
        const dyValues = Float32Array.from(dy.dataSync() as Float32Array);
        const at = transpose(withValues(Float32Array.from(sv.dataSync() as Float32Array)));
        const dB = product(at, dyValues, n);
        // dValues_(i,k) = sum_j dY_ij B_kj: SDDMM of dY [M, N] and B^T [N, K] on A's pattern.
        const bT = tf.tidy(() => tf.transpose(sb).dataSync() as Float32Array);
        const dValues = sddmm(csr, dyValues, Float32Array.from(bT), n).values as Float32Array;
        return [tf.tensor1d(dValues), tf.tensor2d(dB, [csr.cols, n])];
      },
    };
  });
  return op(values, dense) as TF.Tensor2D;
}
export {
  decodeSparseModel,
  encodeSparseModel,
  SPARSE_SHARD_NAME,
  type SparseModelJson,
  type SparseModelOptions,
  type SparseWeightReport,
  sparseModelHandler,
} from './io/tfjs-model.js';
