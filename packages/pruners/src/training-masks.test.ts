import { InvalidArgumentError, Rng } from '@sparsekit/core';
import { describe, expect, it } from 'vitest';
import { globalMagnitudeKeep, magnitudeKeepMask, nmKeepMask, thresholdKeep } from './training-masks.js';

describe('TFMOT magnitude masks', () => {
  it("match TFMOT's worked example and its edge rules", () => {
    // pruning_impl_test.py: w = 1..10 at 0.2 keeps 8, threshold 3.
    const r = thresholdKeep(
      Float32Array.from({ length: 10 }, (_, i) => i + 1),
      0.2,
    );
    expect(Array.from(r.keep)).toEqual([0, 0, 1, 1, 1, 1, 1, 1, 1, 1]);
    expect(r.threshold).toBe(3);
    // At least one weight survives (testExtremelySparseMask: 0.9999 on 100 weights).
    expect(
      thresholdKeep(
        Float32Array.from({ length: 100 }, (_, i) => i),
        0.9999,
      ).keep.reduce((a, b) => a + b),
    ).toBe(1);
    // Ties at the threshold are all kept; sparsity 0 keeps everything.
    expect(Array.from(thresholdKeep([1, 2, 2, 2, 3], 0.6).keep)).toEqual([0, 1, 1, 1, 1]);
    expect(Array.from(thresholdKeep([5, 1, 3], 0).keep)).toEqual([1, 1, 1]);
    // Round half to even: 10 x (1 - 0.25) = 7.5 -> 8 kept; 10 x 0.85 = 8.5 -> 8 kept.
    expect(
      thresholdKeep(
        Float32Array.from({ length: 10 }, (_, i) => i),
        0.25,
      ).keep.reduce((a, b) => a + b),
    ).toBe(8);
    expect(
      thresholdKeep(
        Float32Array.from({ length: 10 }, (_, i) => i),
        0.15,
      ).keep.reduce((a, b) => a + b),
    ).toBe(8);
  });

  it('agree with a plain sort reference on random weights', () => {
    const rng = new Rng(7);
    for (const [n, s] of [
      [1000, 0.5],
      [777, 0.9],
      [64, 0.3],
    ] as const) {
      const w = rng.normalArray(n);
      const { keep } = magnitudeKeepMask(w, [n], s);
      const k = Math.max(Math.round(n * (1 - s)), 1);
      const sorted = Array.from(w, Math.abs).sort((a, b) => b - a);
      const threshold = sorted[k - 1]!;
      for (let i = 0; i < n; i++) expect(keep[i]).toBe(Math.abs(w[i]!) >= threshold ? 1 : 0);
      expect(keep.reduce((a, b) => a + b)).toBe(k);
    }
  });

  it("pools blocks first (TFMOT's 4x4, 2x2-block case), avg and max", () => {
    const w = Float32Array.from([
      0.1, 0.1, 0.2, 0.2, 0.1, 0.1, 0.2, 0.2, 0.3, 0.3, 0.4, 0.4, 0.3, 0.3, 0.4, 0.4,
    ]);
    for (const blockPooling of ['avg', 'max'] as const) {
      const { keep } = magnitudeKeepMask(w, [4, 4], 0.5, { blockSize: [2, 2], blockPooling });
      expect(Array.from(keep)).toEqual([0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1]);
    }
    // avg and max differ: one large entry in an otherwise small block ([2, 4], 2x2 blocks -> [1, 2]):
    // max pools 4 vs 1 and keeps the left block; avg pools 1 vs 1, a tie, and keeps both.
    const u = Float32Array.from([4, 0, 1, 1, 0, 0, 1, 1]);
    expect(
      Array.from(magnitudeKeepMask(u, [2, 4], 0.5, { blockSize: [2, 2], blockPooling: 'max' }).keep),
    ).toEqual([1, 1, 0, 0, 1, 1, 0, 0]);
    expect(
      Array.from(magnitudeKeepMask(u, [2, 4], 0.5, { blockSize: [2, 2], blockPooling: 'avg' }).keep),
    ).toEqual([1, 1, 1, 1, 1, 1, 1, 1]);
    expect(() => magnitudeKeepMask(new Float32Array(8), [2, 2, 2], 0.5, { blockSize: [2, 2] })).toThrow(
      InvalidArgumentError,
    );
    expect(() => magnitudeKeepMask([1, Number.NaN], [2], 0.5)).toThrow();
    expect(() => magnitudeKeepMask([1, 2], [3], 0.5)).toThrow(InvalidArgumentError);
    expect(() => magnitudeKeepMask([1, 2], [2], 1)).toThrow(InvalidArgumentError);
  });

  it('N:M keeps n of every m inputs of each output (Dense [in, out], Conv2D [h, w, in, out])', () => {
    // TFMOT's m_by_n test case: its (2, 4) zeros 2 of 4, which is 2:4 here; [in 4, out 2].
    const w = [0.74, 0.68, -0.89, -0.45, -1.68, 1.24, 0.31, -0.6];
    expect(Array.from(nmKeepMask(w, [4, 2], 2, 4))).toEqual([0, 1, 1, 0, 1, 1, 0, 0]);
    const rng = new Rng(3);
    const conv = rng.normalArray(3 * 3 * 8 * 5);
    const keep = nmKeepMask(conv, [3, 3, 8, 5], 1, 4);
    for (let p = 0; p < 9; p++)
      for (let o = 0; o < 5; o++)
        for (let g = 0; g < 8; g += 4) {
          const idx = [0, 1, 2, 3].map((i) => p * 40 + (g + i) * 5 + o);
          const best = idx.reduce((a, b) => (Math.abs(conv[b]!) > Math.abs(conv[a]!) ? b : a));
          for (const i of idx) expect(keep[i]).toBe(i === best ? 1 : 0);
        }
    // A short last group keeps min(n, its length), as TFMOT's padded groups: inputs 6 = 4 + 2.
    const short = nmKeepMask([1, 5, 2, 4, 3, 6], [6, 1], 1, 4);
    expect(Array.from(short)).toEqual([0, 1, 0, 0, 0, 1]);
    expect(Array.from(nmKeepMask([1, 5, 2], [3, 1], 2, 4))).toEqual([0, 1, 1]);
    expect(() => nmKeepMask(new Float32Array(6), [3, 2], 4, 4)).toThrow(InvalidArgumentError);
    expect(() => nmKeepMask(new Float32Array(5), [3, 2], 2, 4)).toThrow(InvalidArgumentError);
  });
});

describe('global magnitude pruning (IMP rounds)', () => {
  it('prunes the fraction of the remaining weights with the smallest |w| across tensors', () => {
    const a = [0.1, -5, 0.3, 2];
    const b = [-0.2, 4, 0.05, 1, 3, -0.4];
    const first = globalMagnitudeKeep([a, b], 0.2); // ceil(0.2 x 10) = 2: 0.05 and 0.1
    expect(first.map((k) => Array.from(k))).toEqual([
      [0, 1, 1, 1],
      [1, 1, 0, 1, 1, 1],
    ]);
    const second = globalMagnitudeKeep([a, b], 0.25, first); // ceil(0.25 x 8) = 2 more: 0.2, 0.3
    expect(second.map((k) => Array.from(k))).toEqual([
      [0, 1, 0, 1],
      [0, 1, 0, 1, 1, 1],
    ]);
    // 20% per round leaves 0.8^r of the weights.
    const rng = new Rng(4);
    const w = [rng.normalArray(600), rng.normalArray(400)];
    let keeps: Float32Array[] | undefined;
    for (let r = 1; r <= 3; r++) {
      keeps = globalMagnitudeKeep(w, 0.2, keeps);
      const kept = keeps.reduce((n, k) => n + k.reduce((x, y) => x + y, 0), 0);
      expect(kept).toBe(Math.floor(1000 * 0.8 ** r + 1e-9));
    }
    expect(() => globalMagnitudeKeep([a], 1)).toThrow(InvalidArgumentError);
    expect(() => globalMagnitudeKeep([a], 0.2, [[1]])).toThrow(InvalidArgumentError);
  });
});
