// Magnitude pruning: one threshold per matrix (sparsegpt's `--gmp`), per output row, or N:M groups.
import { InvalidArgumentError } from '@sparsekit/core';
import { applyMask, checkWeight, magnitudes, matrixMask, nmMask, rowMask } from '../masks.js';
import type { PruneResult } from './sparsegpt.js';

export interface MagnitudeOptions {
  sparsity?: number;
  /** 'layer' (default): one threshold for the matrix; 'row': the same fraction in every output row. */
  scope?: 'layer' | 'row';
  n?: number;
  m?: number;
}

/** Check a magnitude comparison group: 'layer', 'row' or unset. */
export function checkMagnitudeScope(scope: unknown, what = 'scope'): void {
  if (scope !== undefined && scope !== 'layer' && scope !== 'row')
    throw new InvalidArgumentError(what, scope, "must be 'layer' or 'row'");
}

export function magnitude(
  weight: ArrayLike<number>,
  rows: number,
  cols: number,
  options: MagnitudeOptions,
): PruneResult {
  checkWeight(weight, rows, cols);
  checkMagnitudeScope(options.scope);
  const scores = magnitudes(weight);
  let mask: Uint8Array;
  if (options.n !== undefined || options.m !== undefined)
    mask = nmMask(scores, rows, cols, options.n!, options.m!);
  else if (options.scope === 'row') mask = rowMask(scores, rows, cols, options.sparsity ?? Number.NaN);
  else mask = matrixMask(scores, options.sparsity ?? Number.NaN);
  return { weight: applyMask(weight, mask), mask };
}
