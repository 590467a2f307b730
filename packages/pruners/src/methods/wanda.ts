// Wanda (Sun et al., 2023), following lib/prune.py `prune_wanda`.
import { type BlockShape, blockMaskOf } from '../blocks.js';
import { applyMask, checkInputNorms, checkWeight, nmMask, rowMask } from '../masks.js';
import type { PruneResult } from './sparsegpt.js';

export interface WandaOptions {
  sparsity?: number;
  /** N:M: keep n of every m (compared within each group of m inputs). */
  n?: number;
  m?: number;
  /**
   * Prune whole blocks (R rows x C inputs) by the sum of their scores, compared within each row of
   * blocks (unstructured sparsity only).
   */
  block?: BlockShape;
}

/** Wanda scores |W_ij| * sqrt(scaler_row_j), where scaler_row_j = mean_t x_tj^2. */
export function wandaScores(
  weight: ArrayLike<number>,
  rows: number,
  cols: number,
  scalerRow: Float64Array,
): Float64Array {
  checkInputNorms(scalerRow, cols);
  const scores = new Float64Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++)
      scores[r * cols + c] = Math.abs(weight[r * cols + c]!) * Math.sqrt(scalerRow[c]!);
  }
  return scores;
}

/** Prune by Wanda scores ranked within each output row (each row of blocks; or within each N:M group). */
export function wanda(
  weight: ArrayLike<number>,
  rows: number,
  cols: number,
  scalerRow: Float64Array,
  options: WandaOptions,
): PruneResult {
  checkWeight(weight, rows, cols);
  const scores = wandaScores(weight, rows, cols, scalerRow);
  const sparsity = options.sparsity ?? Number.NaN;
  const mask =
    options.n !== undefined || options.m !== undefined
      ? nmMask(scores, rows, cols, options.n!, options.m!, options.block)
      : blockMaskOf(scores, rows, cols, options.block, (s, r, c) => rowMask(s, r, c, sparsity));
  return { weight: applyMask(weight, mask), mask };
}
