// Magnitude pruning: one threshold per matrix (sparsegpt's `--gmp`), per output row, or N:M groups.
import { InvalidArgumentError } from '@sparsekit/core';
import { type BlockShape, blockMaskOf, isUnitBlock } from '../blocks.js';
import {
  applyMask,
  checkWeight,
  lowestShareMask,
  magnitudes,
  matrixMask,
  nmMask,
  rowMask,
} from '../masks.js';
import type { PruneResult } from './sparsegpt.js';

export interface MagnitudeOptions {
  sparsity?: number;
  /** 'layer' (default): one threshold for the matrix; 'row': the same fraction in every output row. */
  scope?: 'layer' | 'row';
  n?: number;
  m?: number;
  /** Prune whole blocks (R rows x C inputs) by the sum of their |w| (unstructured sparsity only). */
  block?: BlockShape;
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
  const nm = options.n !== undefined || options.m !== undefined;
  const sparsity = options.sparsity ?? Number.NaN;
  // One threshold per matrix is the references' gmp (which prunes every score <= the threshold);
  // blocks are counted exactly.
  const layerMask = isUnitBlock(options.block) ? matrixMask : lowestShareMask;
  const select = (s: ArrayLike<number>, r: number, c: number) =>
    options.scope === 'row' ? rowMask(s, r, c, sparsity) : layerMask(s, sparsity);
  let mask: Uint8Array;
  if (nm) mask = nmMask(scores, rows, cols, options.n!, options.m!, options.block);
  else mask = blockMaskOf(scores, rows, cols, options.block, select);
  return { weight: applyMask(weight, mask), mask };
}
