import { NonFiniteError, Rng, ShapeMismatchError } from '@sparsekit/core';
import { describe, expect, it } from 'vitest';
import { checkWeight, matrixMask, nmMask, rowMask } from './masks.js';

// Scores with many ties: small integers, as real scores tie after rounding or at zero.
const tiedScores = (rng: Rng, length: number, levels: number) =>
  Float64Array.from({ length }, () => Math.floor(rng.uniform() * levels));

/** The stable-sort definition: ascending by (score, index), the first `count` pruned. */
function sortedPrefixMask(
  scores: ArrayLike<number>,
  start: number,
  length: number,
  count: number,
  mask: Uint8Array,
) {
  const order = Array.from({ length }, (_, i) => i).sort(
    (a, b) => scores[start + a]! - scores[start + b]! || a - b,
  );
  for (let i = 0; i < count; i++) mask[start + order[i]!] = 1;
}

describe('masks', () => {
  it('rowMask prunes the same entries as a stable sort of each row (Wanda)', () => {
    const rng = new Rng(9);
    for (const [rows, cols, levels, sparsity] of [
      [5, 16, 3, 0.5],
      [7, 33, 8, 0.3],
      [3, 40, 1000, 0.75],
      [4, 8, 1, 0.5],
      [2, 10, 4, 0.05],
    ] as const) {
      const scores = tiedScores(rng, rows * cols, levels);
      const expected = new Uint8Array(rows * cols);
      for (let r = 0; r < rows; r++)
        sortedPrefixMask(scores, r * cols, cols, Math.floor(cols * sparsity), expected);
      expect(rowMask(scores, rows, cols, sparsity)).toEqual(expected);
    }
  });

  it('nmMask prunes the M - N lowest of each group, ties to the lower index', () => {
    const rng = new Rng(10);
    for (const [n, m] of [
      [2, 4],
      [4, 8],
      [1, 4],
      [3, 16],
    ] as const) {
      const rows = 6;
      const cols = 4 * m;
      const scores = tiedScores(rng, rows * cols, 3);
      const expected = new Uint8Array(rows * cols);
      for (let g = 0; g < rows * cols; g += m) sortedPrefixMask(scores, g, m, m - n, expected);
      expect(nmMask(scores, rows, cols, n, m)).toEqual(expected);
    }
  });

  it('matrixMask prunes every score up to the floor(size * sparsity)-th smallest, and nothing at 0', () => {
    const scores = Float64Array.of(3, 1, 2, 2, 5, 0);
    expect([...matrixMask(scores, 0.5)]).toEqual([0, 1, 1, 1, 0, 1]); // threshold sort()[3] = 2
    expect([...matrixMask(scores, 0)]).toEqual([0, 0, 0, 0, 0, 0]);
  });

  it('checkWeight rejects a wrong length and non-finite values', () => {
    expect(() => checkWeight(new Float32Array(5), 2, 3)).toThrow(ShapeMismatchError);
    const w = new Float32Array(6);
    w[4] = Number.POSITIVE_INFINITY;
    expect(() => checkWeight(w, 2, 3, 'q_proj weight')).toThrow(NonFiniteError);
    expect(() => checkWeight(w, 2, 3, 'q_proj weight')).toThrow(/q_proj weight .*index 4/);
  });
});
