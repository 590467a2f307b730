// SparseGPT (Frantar & Alistarh, 2023), following sparsegpt.py `SparseGPT.fasterprune`.
import { InvalidArgumentError, ShapeMismatchError } from '@sparsekit/core';
import { type Backend, dense, inverseUpperFactor } from '@sparsekit/sparse-formats';
import { type BlockShape, blockText, checkBlockShape, expandBlockMask, isUnitBlock } from '../blocks.js';
import { checkNm, checkSparsity, checkWeight, lowestShareMask, matrixMask, nmMask } from '../masks.js';

/** Check a dampening fraction (of H's mean diagonal): finite and non-negative. */
export function checkPercDamp(percDamp: number): void {
  if (!(Number.isFinite(percDamp) && percDamp >= 0))
    throw new InvalidArgumentError(
      'percDamp',
      percDamp,
      'must be a finite non-negative number (the reference uses 0.01)',
    );
}

export interface SparseGptOptions {
  /** Unstructured target (ignored when `n`/`m` are given). */
  sparsity?: number;
  /** N:M: keep n of every m (2:4). */
  n?: number;
  m?: number;
  /**
   * Prune whole blocks of R rows x C inputs (unstructured sparsity only), scored by the loss of
   * pruning the block with SparseGPT's own update: the sum over its rows of |U_QQ^-T w_Q|^2, U_QQ the
   * block's C x C part of the upper Cholesky factor of H^-1 (w^2 / U_jj^2 when C = 1).
   */
  block?: BlockShape;
  /**
   * Columns per block (default 128; for N:M the largest multiple of M up to 128, and for blocks of C
   * inputs the largest multiple of C).
   */
  blockSize?: number;
  /** Dampening as a fraction of the mean diagonal of H (default 0.01). */
  percDamp?: number;
  /**
   * Runs the matrix products as f32 on this backend (the reference's precision): the trailing updates
   * of the blocked Cholesky factorisation, the triangular inverse, the batched update after each
   * block, W[:, i2:] -= Err1 @ Hinv[i1:i2, i2:], and the same update between sub-blocks of 32
   * columns inside each block. Pass a `WasmBackend` (or any synchronous sparse-formats backend) for speed.
   * Default: float64 loops in plain TypeScript.
   */
  backend?: Backend;
}

/** Columns per sub-block of the within-block sweep when a kernel runs the products. */
const SUB_BLOCK = 32;

/**
 * W[:, c0 : c0 + width] -= E @ Hinv[c0 - k : c0, c0 : c0 + width], where E holds columns e0 .. e0 + k
 * of the block's errors (rows of `stride`), the errors of weight columns c0 - k .. c0. With a kernel
 * the product runs on it in f32 (as x W^T with x = E and W = the Hinv slice transposed).
 */
function subtractErrors(
  W: Float64Array,
  rows: number,
  cols: number,
  err: Float64Array,
  stride: number,
  e0: number,
  k: number,
  Hinv: Float64Array,
  c0: number,
  width: number,
  kernel: Backend | undefined,
): void {
  const h0 = c0 - k; // the updated columns start right after the error columns
  if (kernel !== undefined) {
    const x = new Float32Array(rows * k);
    for (let r = 0; r < rows; r++) for (let i = 0; i < k; i++) x[r * k + i] = err[r * stride + e0 + i]!;
    const hT = new Float32Array(width * k);
    for (let i = 0; i < k; i++) {
      const hRow = (h0 + i) * cols + c0;
      for (let c = 0; c < width; c++) hT[c * k + i] = Hinv[hRow + c]!;
    }
    const update = kernel.linear(x, rows, dense({ rows: width, cols: k, values: hT }));
    for (let r = 0; r < rows; r++) {
      for (let c = 0; c < width; c++) W[r * cols + c0 + c]! -= update[r * width + c]!;
    }
    return;
  }
  for (let r = 0; r < rows; r++) {
    for (let i = 0; i < k; i++) {
      const e = err[r * stride + e0 + i]!;
      if (e === 0) continue;
      const hRow = (h0 + i) * cols + c0;
      for (let c = 0; c < width; c++) W[r * cols + c0 + c]! -= e * Hinv[hRow + c]!;
    }
  }
}

/**
 * The pruning loss of each R x C weight block of columns i1 .. i1 + count, as SparseGPT's column
 * sweep would incur it with the earlier columns fixed: for each row, z solving U_QQ^T z = w_Q (U the
 * upper Cholesky factor of H^-1, Q the block's columns), |z|^2 — the errors the sweep's updates carry
 * one column to the next — summed over the block's rows. [rows / R, count / C], row-major.
 */
export function blockSaliencies(
  W: Float64Array,
  rows: number,
  cols: number,
  Hinv: Float64Array,
  i1: number,
  count: number,
  block: BlockShape,
): Float64Array {
  const C = block.cols;
  const gridCols = count / C;
  const grid = new Float64Array((rows / block.rows) * gridCols);
  const z = new Float64Array(C);
  for (let q = 0; q < gridCols; q++) {
    const c0 = i1 + q * C;
    for (let r = 0; r < rows; r++) {
      let loss = 0;
      for (let a = 0; a < C; a++) {
        // Forward substitution with U_QQ^T (lower triangular): z_a = (w_a - sum_b<a U_ba z_b) / U_aa.
        let v = W[r * cols + c0 + a]!;
        for (let b = 0; b < a; b++) v -= Hinv[(c0 + b) * cols + c0 + a]! * z[b]!;
        z[a] = v / Hinv[(c0 + a) * cols + c0 + a]!;
        loss += z[a]! ** 2;
      }
      grid[Math.floor(r / block.rows) * gridCols + q]! += loss;
    }
  }
  return grid;
}

export interface PruneResult {
  /** The pruned (and, for SparseGPT, updated) weight [rows, cols]. */
  weight: Float32Array;
  /** 1 = pruned. */
  mask: Uint8Array;
}

/**
 * Prune W [rows, cols] (y = x W^T) given the Hessian H = (2/n) X^T X [cols, cols]: dead inputs
 * (zero diagonal) are zeroed, H is dampened, the upper Cholesky factor of H^-1 drives blocks of
 * `blockSize` columns: one mask threshold per block for unstructured sparsity (sparsity 0 prunes
 * nothing, where the reference's `<=` would still take each block's smallest score), the M - N smallest
 * scores w^2 / [H^-1]_jj^2 per group for N:M; each pruned column's error is propagated within the
 * block, and the block's errors update the later columns in one batched step.
 */
export function sparseGpt(
  weight: ArrayLike<number>,
  rows: number,
  cols: number,
  hessian: Float64Array,
  options: SparseGptOptions,
): PruneResult {
  checkWeight(weight, rows, cols);
  if (hessian.length !== cols * cols) throw new ShapeMismatchError([cols, cols], [hessian.length], 'Hessian');
  const nm = options.n !== undefined || options.m !== undefined;
  const n = options.n ?? 0;
  const m = options.m ?? 0;
  const shape = isUnitBlock(options.block) ? undefined : options.block!;
  if (nm) {
    checkNm(n, m, cols);
    if (shape !== undefined)
      throw new InvalidArgumentError(
        'blocks',
        blockText(shape),
        'are for unstructured sparsity, not an N:M pattern',
      );
  } else checkSparsity(options.sparsity ?? Number.NaN);
  if (shape !== undefined) checkBlockShape(shape, rows, cols);
  const sparsity = options.sparsity ?? 0;
  // 128 columns per block, as the reference; for N:M (or blocks of C inputs), the largest multiple
  // of M (C) up to 128, so that no group straddles two blocks (M = 3: 126).
  const group = nm ? m : (shape?.cols ?? 1);
  const blockSize = options.blockSize ?? group * Math.max(1, Math.floor(128 / group));
  if (!Number.isInteger(blockSize) || blockSize < 1 || blockSize % group !== 0) {
    throw new InvalidArgumentError(
      'blockSize',
      blockSize,
      'must be a positive integer (a multiple of M for N:M, of the block width for blocks)',
    );
  }
  const percDamp = options.percDamp ?? 0.01;
  checkPercDamp(percDamp);
  const W = Float64Array.from(weight);
  const H = new Float64Array(hessian);
  for (let j = 0; j < cols; j++) {
    if (H[j * cols + j] === 0) {
      H[j * cols + j] = 1;
      for (let r = 0; r < rows; r++) W[r * cols + j] = 0;
    }
  }
  let meanDiagonal = 0;
  for (let j = 0; j < cols; j++) meanDiagonal += H[j * cols + j]!;
  const damp = percDamp * (meanDiagonal / cols);
  for (let j = 0; j < cols; j++) H[j * cols + j]! += damp;
  const k = options.backend;
  const Hinv = inverseUpperFactor(H, cols, 'Hessian', k);
  const mask = new Uint8Array(rows * cols);
  const Q = new Float64Array(rows * cols);
  for (let i1 = 0; i1 < cols; i1 += blockSize) {
    const i2 = Math.min(i1 + blockSize, cols);
    const count = i2 - i1;
    const err = new Float64Array(rows * count);
    if (!nm && shape !== undefined) {
      // The column block's weight blocks with the smallest pruning loss, floor(count * sparsity) of them.
      const grid = blockSaliencies(W, rows, cols, Hinv, i1, count, shape);
      const blockMask = expandBlockMask(lowestShareMask(grid, sparsity), rows, count, shape);
      for (let r = 0; r < rows; r++) mask.set(blockMask.subarray(r * count, (r + 1) * count), r * cols + i1);
    } else if (!nm) {
      // One threshold for the block: W^2 / diag(Hinv)^2, the floor(numel * sparsity)-th smallest.
      const scores = new Float64Array(rows * count);
      for (let r = 0; r < rows; r++) {
        for (let c = 0; c < count; c++) {
          const d = Hinv[(i1 + c) * cols + i1 + c]!;
          scores[r * count + c] = W[r * cols + i1 + c]! ** 2 / d ** 2;
        }
      }
      const blockMask = matrixMask(scores, sparsity);
      for (let r = 0; r < rows; r++) mask.set(blockMask.subarray(r * count, (r + 1) * count), r * cols + i1);
    }
    // With a kernel the block is swept in sub-blocks: the column loop propagates each error only to
    // the end of its sub-block, and one product carries the sub-block's errors to the rest of the
    // block (the same nesting as the blocks themselves, so nearly all the O(rows cols B) work runs
    // on the kernel). Without one, the loop covers the whole block, as the reference's does.
    const sub = k === undefined ? count : nm ? m * Math.max(1, Math.floor(SUB_BLOCK / m)) : SUB_BLOCK;
    for (let j1 = 0; j1 < count; j1 += sub) {
      const j2 = Math.min(j1 + sub, count);
      for (let i = j1; i < j2; i++) {
        const col = i1 + i;
        const d = Hinv[col * cols + col]!;
        if (nm && i % m === 0) {
          // The group's scores on the weights as updated so far; the M - N smallest of each row go.
          const scores = new Float64Array(rows * m);
          for (let r = 0; r < rows; r++) {
            for (let g = 0; g < m; g++) {
              const dg = Hinv[(col + g) * cols + col + g]!;
              scores[r * m + g] = W[r * cols + col + g]! ** 2 / dg ** 2;
            }
          }
          const groupMask = nmMask(scores, rows, m, n, m);
          for (let r = 0; r < rows; r++) mask.set(groupMask.subarray(r * m, (r + 1) * m), r * cols + col);
        }
        for (let r = 0; r < rows; r++) {
          const w = W[r * cols + col]!;
          const q = mask[r * cols + col] === 1 ? 0 : w;
          Q[r * cols + col] = q;
          const e = (w - q) / d;
          err[r * count + i] = e;
          if (e === 0) continue;
          // W1[:, i:] -= err1 * Hinv1[i, i:] (to the end of the sub-block)
          for (let c = i; c < j2; c++) W[r * cols + i1 + c]! -= e * Hinv[col * cols + i1 + c]!;
        }
      }
      if (j2 < count) subtractErrors(W, rows, cols, err, count, j1, j2 - j1, Hinv, i1 + j2, count - j2, k);
    }
    // W[:, i2:] -= Err1 @ Hinv[i1:i2, i2:]
    if (i2 < cols) subtractErrors(W, rows, cols, err, count, 0, count, Hinv, i2, cols - i2, k);
  }
  return { weight: Float32Array.from(Q), mask };
}
