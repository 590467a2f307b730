// Masks from scores, with the reference code's tie-breaking. A mask is a Uint8Array over a
// [rows, cols] row-major weight with 1 = pruned (as the reference fixtures store it).
import { InvalidArgumentError } from '@sparsekit/core';

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

/** Check an N:M pattern (N kept of every M consecutive inputs) against the input width. */
export function checkNm(n: number, m: number, cols: number): void {
  if (!Number.isInteger(n) || !Number.isInteger(m) || n < 1 || m < 2 || n >= m) {
    throw new InvalidArgumentError(
      'N:M pattern',
      `${n}:${m}`,
      'needs integers 1 <= N < M (2:4 keeps 2 of every 4)',
    );
  }
  if (cols % m !== 0) {
    throw new InvalidArgumentError(
      'N:M pattern',
      `${n}:${m}`,
      `needs the input width (${cols}) to be a multiple of M`,
    );
  }
}

/** Ascending order of `scores[start .. start + length)`, ties by index (a stable sort). */
function stableOrder(scores: ArrayLike<number>, start: number, length: number): Int32Array {
  const order = Int32Array.from({ length }, (_, i) => i);
  order.sort((a, b) => scores[start + a]! - scores[start + b]! || a - b);
  return order;
}

/**
 * Per output row, prune the floor(cols * sparsity) lowest scores (Wanda's `torch.sort(stable=True)`
 * then the first indices).
 */
export function rowMask(scores: ArrayLike<number>, rows: number, cols: number, sparsity: number): Uint8Array {
  checkSparsity(sparsity);
  const mask = new Uint8Array(rows * cols);
  const count = Math.floor(cols * sparsity);
  for (let r = 0; r < rows; r++) {
    const order = stableOrder(scores, r * cols, cols);
    for (let i = 0; i < count; i++) mask[r * cols + order[i]!] = 1;
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
): Uint8Array {
  checkNm(n, m, cols);
  const mask = new Uint8Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    for (let g = 0; g < cols; g += m) {
      const order = stableOrder(scores, r * cols + g, m);
      for (let i = 0; i < m - n; i++) mask[r * cols + g + order[i]!] = 1;
    }
  }
  return mask;
}

/**
 * One threshold for the whole matrix (sparsegpt's `--gmp` baseline): the score at position
 * floor(size * sparsity) of the ascending sort; every score <= it is pruned.
 */
export function matrixMask(scores: ArrayLike<number>, sparsity: number): Uint8Array {
  checkSparsity(sparsity);
  const sorted = Float64Array.from(scores).sort();
  const mask = new Uint8Array(scores.length);
  if (sparsity === 0) return mask;
  const threshold = sorted[Math.floor(scores.length * sparsity)]!;
  for (let i = 0; i < scores.length; i++) mask[i] = scores[i]! <= threshold ? 1 : 0;
  return mask;
}

/** Zero the pruned entries of `weight` (a copy). */
export function applyMask(weight: ArrayLike<number>, mask: Uint8Array): Float32Array {
  return Float32Array.from(weight, (v, i) => (mask[i] === 1 ? 0 : v));
}
