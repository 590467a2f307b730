// Masks from scores, with the reference code's tie-breaking. A mask is a Uint8Array over a
// [rows, cols] row-major weight with 1 = pruned (as the reference fixtures store it).
import {
  assertFinite,
  type BlockwiseLM,
  InvalidArgumentError,
  type LinearLayer,
  NonFiniteError,
  ShapeMismatchError,
} from '@sparsekit/core';
import { kthSmallest, markLowest } from '@sparsekit/sparse-formats';
import { type BlockShape, blockText, isUnitBlock } from './blocks.js';

/** Check an unstructured sparsity target: a fraction in [0, 1). */
export function checkSparsity(sparsity: number): void {
  if (!(sparsity >= 0 && sparsity < 1)) {
    throw new InvalidArgumentError(
      'sparsity',
      sparsity,
      'must be a fraction in [0, 1) (0.5 prunes half the weights)',
    );
  }
}

/** Check an N:M pattern (N kept of every M): integers 1 <= N < M. */
export function checkNmPattern(n: number, m: number, what = 'N:M pattern'): void {
  if (!Number.isInteger(n) || !Number.isInteger(m) || n < 1 || m < 2 || n >= m) {
    throw new InvalidArgumentError(what, `${n}:${m}`, 'needs integers 1 <= N < M (2:4 keeps 2 of every 4)');
  }
}

/** Check an N:M pattern (N kept of every M consecutive inputs) against the input width. */
export function checkNm(n: number, m: number, cols: number): void {
  checkNmPattern(n, m);
  if (cols % m !== 0) {
    throw new InvalidArgumentError(
      'N:M pattern',
      `${n}:${m}`,
      `needs the input width (${cols}) to be a multiple of M`,
    );
  }
}

/** Check a row-major [rows, cols] weight: its length, and that every value is finite. */
export function checkWeight(weight: ArrayLike<number>, rows: number, cols: number, what = 'weight'): void {
  if (weight.length !== rows * cols) throw new ShapeMismatchError([rows, cols], [weight.length], what);
  assertFinite(weight, what);
}

/** Check input statistics (Wanda's `scalerRow`, mean x_j^2 per input): one finite, non-negative value per column. */
export function checkInputNorms(scalerRow: ArrayLike<number>, cols: number): void {
  if (scalerRow.length !== cols) throw new ShapeMismatchError([cols], [scalerRow.length], 'input norms');
  for (let c = 0; c < cols; c++) {
    const v = scalerRow[c]!;
    if (!Number.isFinite(v)) throw new NonFiniteError('input norms', c, v);
    if (v < 0)
      throw new InvalidArgumentError('input norms', v, `must be mean squares (>= 0); entry ${c} is negative`);
  }
}

/** Check every decoder linear layer of `model` (those `filter` keeps), naming the layer in errors. */
export function checkModelWeights(
  model: BlockwiseLM,
  filter: (l: LinearLayer) => boolean = () => true,
): void {
  for (let block = 0; block < model.numBlocks; block++) {
    for (const l of model.blockLinearLayers(block)) {
      if (filter(l)) checkWeight(l.getWeight().data, l.outFeatures, l.inFeatures, `${l.name} weight`);
    }
  }
}

/**
 * Per output row, prune the floor(cols * sparsity) lowest scores (Wanda's `torch.sort(stable=True)`
 * then the first indices).
 */
export function rowMask(scores: ArrayLike<number>, rows: number, cols: number, sparsity: number): Uint8Array {
  checkSparsity(sparsity);
  const mask = new Uint8Array(rows * cols);
  const count = Math.floor(cols * sparsity);
  const row = new Float64Array(cols);
  for (let r = 0; r < rows && count > 0; r++) {
    for (let c = 0; c < cols; c++) row[c] = scores[r * cols + c]!;
    markLowest(row, count, mask, r * cols);
  }
  return mask;
}

/**
 * N:M in the reference convention: in every group of M consecutive inputs of a row, the M - N
 * lowest scores are pruned, so N are kept (2:4 keeps 2 of 4). Ties go to the lower index, like
 * `torch.topk(largest=False)` on these small groups.
 */
export function nmMask(
  scores: ArrayLike<number>,
  rows: number,
  cols: number,
  n: number,
  m: number,
  block?: BlockShape,
): Uint8Array {
  checkNm(n, m, cols);
  if (!isUnitBlock(block))
    throw new InvalidArgumentError(
      'blocks',
      blockText(block!),
      'are for unstructured sparsity, not an N:M pattern',
    );
  const mask = new Uint8Array(rows * cols);
  // Groups never straddle rows (cols is a multiple of m), so walk the flat array group by group,
  // ordering each group's indices by (score, index) with an insertion sort in one reused buffer.
  const order = new Int32Array(m);
  for (let start = 0; start < rows * cols; start += m) {
    for (let i = 0; i < m; i++) {
      const s = scores[start + i]!;
      let j = i;
      for (; j > 0 && scores[start + order[j - 1]!]! > s; j--) order[j] = order[j - 1]!;
      order[j] = i;
    }
    for (let i = 0; i < m - n; i++) mask[start + order[i]!] = 1;
  }
  return mask;
}

/**
 * One threshold for the whole matrix (sparsegpt's `--gmp` baseline): the score at position
 * floor(size * sparsity) of the ascending sort; every score <= it is pruned.
 */
export function matrixMask(scores: ArrayLike<number>, sparsity: number): Uint8Array {
  checkSparsity(sparsity);
  const mask = new Uint8Array(scores.length);
  if (sparsity === 0 || scores.length === 0) return mask;
  const threshold = kthSmallest(scores, Math.floor(scores.length * sparsity));
  for (let i = 0; i < scores.length; i++) mask[i] = scores[i]! <= threshold ? 1 : 0;
  return mask;
}

/**
 * Exactly floor(size * sparsity) of the lowest scores pruned (ties to the lower index): the
 * comparison over whole blocks, where no reference's threshold quirk applies.
 */
export function lowestShareMask(scores: ArrayLike<number>, sparsity: number): Uint8Array {
  checkSparsity(sparsity);
  const mask = new Uint8Array(scores.length);
  markLowest(Float64Array.from(scores), Math.floor(scores.length * sparsity), mask, 0);
  return mask;
}

/** |w| of every weight, in float64. */
export function magnitudes(weight: ArrayLike<number>): Float64Array {
  const out = new Float64Array(weight.length);
  for (let i = 0; i < out.length; i++) out[i] = Math.abs(weight[i]!);
  return out;
}

/** Zero the pruned entries of `weight` (a copy). */
export function applyMask(weight: ArrayLike<number>, mask: Uint8Array): Float32Array {
  const out = new Float32Array(weight.length);
  for (let i = 0; i < out.length; i++) out[i] = mask[i] === 1 ? 0 : weight[i]!;
  return out;
}
