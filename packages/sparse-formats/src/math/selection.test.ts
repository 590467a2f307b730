import { Rng } from '@sparsekit/core';
import { describe, expect, it } from 'vitest';
import { highestIndices, kthSmallest, lowestIndices } from './selection.js';

// Scores with many ties: small integers, as real scores tie after rounding or at zero.
const tiedScores = (rng: Rng, length: number, levels: number) =>
  Float64Array.from({ length }, () => Math.floor(rng.uniform() * levels));

describe('selection', () => {
  it('kthSmallest gives sort()[k] for every k, with ties, negatives and signed zeros', () => {
    const rng = new Rng(7);
    for (const [length, levels] of [
      [1, 3],
      [2, 2],
      [17, 4],
      [64, 1000],
      [301, 5],
    ] as const) {
      const values = Float64Array.from(tiedScores(rng, length, levels), (v, i) =>
        i % 5 === 0 ? -v : i % 7 === 0 ? -0 : v,
      );
      const copy = values.slice();
      const sorted = Float64Array.from(values).sort();
      // === rather than toBe: -0 and 0 are the same threshold.
      for (let k = 0; k < length; k++) expect(kthSmallest(values, k) === sorted[k]).toBe(true);
      expect(values).toEqual(copy); // the input is not reordered
    }
    const big = new Rng(8).normalArray(100_003);
    const sorted = Float64Array.from(big).sort();
    for (const k of [0, 1, 50_001, 99_999, 100_002]) expect(kthSmallest(big, k)).toBe(sorted[k]);
    expect(() => kthSmallest(big, 100_003)).toThrow(/index/);
  });

  it('lowestIndices breaks ties to the lower index', () => {
    expect(lowestIndices([3, 1, 2, 1, 0], 3)).toEqual([1, 3, 4]);
    expect(lowestIndices([5, 5, 5], 2)).toEqual([0, 1]);
  });

  it('highestIndices is the first k of a stable descending sort (NaN lowest), ascending', () => {
    expect(Array.from(highestIndices([3, 1, 2, 3, 0], 2))).toEqual([0, 3]);
    expect(Array.from(highestIndices([1, 1, 1, 1], 2))).toEqual([0, 1]);
    expect(Array.from(highestIndices([Number.NaN, 0, -1], 2))).toEqual([1, 2]);
    expect(Array.from(highestIndices([5, 4], 7))).toEqual([0, 1]);
    expect(Array.from(highestIndices([5, 4], 0))).toEqual([]);
    const rng = new Rng(9);
    for (let trial = 0; trial < 50; trial++) {
      const n = 1 + rng.int(trial % 2 === 0 ? 300 : 20000);
      const levels = trial % 3 === 0 ? 20 : 1e6;
      const scores = Array.from(
        { length: n },
        () => rng.int(levels) - levels / 2 + (rng.uniform() < 0.05 ? Number.NaN : 0),
      );
      const k = trial % 2 === 0 ? rng.int(n + 1) : rng.int(Math.ceil(n / 8) + 1);
      const value = (i: number) => (Number.isNaN(scores[i]!) ? Number.NEGATIVE_INFINITY : scores[i]!);
      const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => value(b) - value(a) || a - b);
      expect(Array.from(highestIndices(scores, k))).toEqual(order.slice(0, k).sort((a, b) => a - b));
    }
  });
});
