// Wanda (Sun et al., 2023), following lib/prune.py `prune_wanda`.
import { InvalidArgumentError, NonFiniteError, ShapeMismatchError } from '@sparsekit/core';
import { applyMask, checkWeight, nmMask, rowMask } from '../masks.js';
import type { PruneResult } from './sparsegpt.js';

export interface WandaOptions {
  sparsity?: number;
  /** N:M: keep n of every m (compared within each group of m inputs). */
  n?: number;
  m?: number;
}

/** Wanda scores |W_ij| * sqrt(scaler_row_j), where scaler_row_j = mean_t x_tj^2. */
export function wandaScores(
  weight: ArrayLike<number>,
  rows: number,
  cols: number,
  scalerRow: Float64Array,
): Float64Array {
  if (scalerRow.length !== cols) throw new ShapeMismatchError([cols], [scalerRow.length], 'input norms');
  for (let c = 0; c < cols; c++) {
    const v = scalerRow[c]!;
    if (!Number.isFinite(v)) throw new NonFiniteError('input norms', c, v);
    if (v < 0)
      throw new InvalidArgumentError('input norms', v, `must be mean squares (>= 0); entry ${c} is negative`);
  }
  const scores = new Float64Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++)
      scores[r * cols + c] = Math.abs(weight[r * cols + c]!) * Math.sqrt(scalerRow[c]!);
  }
  return scores;
}

/** Prune by Wanda scores ranked within each output row (or within each N:M group). */
export function wanda(
  weight: ArrayLike<number>,
  rows: number,
  cols: number,
  scalerRow: Float64Array,
  options: WandaOptions,
): PruneResult {
  checkWeight(weight, rows, cols);
  const scores = wandaScores(weight, rows, cols, scalerRow);
  const mask =
    options.n !== undefined || options.m !== undefined
      ? nmMask(scores, rows, cols, options.n!, options.m!)
      : rowMask(scores, rows, cols, options.sparsity ?? Number.NaN);
  return { weight: applyMask(weight, mask), mask };
}
