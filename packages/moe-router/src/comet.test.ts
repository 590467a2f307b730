import { InvalidArgumentError, Rng, ShapeMismatchError, Tensor } from '@sparsekit/core';
import { describe, expect, it } from 'vitest';
import { cometEntropy, cometRouter, smoothStep } from './comet.js';

const H = 3;
function input(x: Float32Array, E: number) {
  const T = x.length / H;
  return {
    hidden: new Tensor('f32', [T, H], x),
    logits: new Tensor('f32', [T, E], new Float32Array(T * E)),
    block: 0,
  };
}

/** Plain reference for E = 4 (depth 2): leaves in order node1-left, node1-right, node2-left, node2-right. */
function referenceGate(
  x: number[],
  p: ReturnType<typeof cometRouter>['params'],
  k: number,
  gamma: number,
): number[] {
  const E = 4;
  const lin = (w: ArrayLike<number>, b: ArrayLike<number>, row: number) =>
    x.reduce((s, v, i) => s + v * w[row * H + i]!, 0) + b[row]!;
  const scores: number[] = [];
  for (let j = 0; j < k; j++) {
    const s = [0, 1, 2].map((n) => smoothStep(lin(p.nodeWeight, p.nodeBias, n * k + j), gamma));
    const probs = [s[0]! * s[1]!, s[0]! * (1 - s[1]!), (1 - s[0]!) * s[2]!, (1 - s[0]!) * (1 - s[2]!)];
    for (let e = 0; e < E; e++)
      scores.push(
        probs[e]! <= 0
          ? Number.NEGATIVE_INFINITY
          : lin(p.leafWeight, p.leafBias, e * k + j) + Math.log(probs[e]! + 1e-8),
      );
  }
  const m = Math.max(...scores);
  const ex = scores.map((v) => Math.exp(v - m));
  const z = ex.reduce((a, b) => a + b, 0);
  return [0, 1, 2, 3].map((e) =>
    Array.from({ length: k }, (_, j) => ex[j * E + e]! / z).reduce((a, b) => a + b, 0),
  );
}

describe("COMET's tree gate", () => {
  it('smooth-step is exactly 0 / 1 outside [-gamma/2, gamma/2] and continuous at the ends', () => {
    expect(smoothStep(-0.6)).toBe(0);
    expect(smoothStep(0.5)).toBe(1);
    expect(smoothStep(0)).toBe(0.5);
    expect(smoothStep(0.4999999)).toBeCloseTo(1, 5);
    expect(smoothStep(-1, 4)).toBeCloseTo((-2 / 64) * -1 + (3 / 8) * -1 + 0.5, 12);
  });

  it('matches a plain reference of two depth-2 trees over 4 experts', () => {
    const rng = new Rng(5);
    const k = 2;
    const params = {
      nodeWeight: Float64Array.from(rng.normalArray(3 * k * H, 0, 0.6)),
      nodeBias: Float64Array.from(rng.normalArray(3 * k, 0, 0.2)),
      leafWeight: Float64Array.from(rng.normalArray(4 * k * H)),
      leafBias: Float64Array.from(rng.normalArray(4 * k)),
    };
    const router = cometRouter({ numExperts: 4, k, width: H, gamma: 1, params });
    const x = rng.normalArray(10 * H);
    const r = router.route(input(x, 4));
    for (let t = 0; t < 10; t++) {
      const want = referenceGate(Array.from(x.subarray(t * H, (t + 1) * H)), params, k, 1);
      expect(Array.from(r.probs.subarray(t * 4, (t + 1) * 4))).toAllClose(want, { atol: 1e-12, rtol: 1e-10 });
      expect(want.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 12);
      for (let e = 0; e < 4; e++) expect(r.experts[t * 4 + e]).toBe(want[e]! > 0 ? e : -1);
    }
  });

  it('sharp trees give at most k experts per token; entropy is 0 then', () => {
    const rng = new Rng(6);
    const k = 2;
    // Split biases far outside [-gamma/2, gamma/2]: every smooth-step saturates, each tree reaches one leaf.
    const params = {
      nodeWeight: Float64Array.from(rng.normalArray(7 * k * H, 0, 0.1)),
      nodeBias: Float64Array.from({ length: 7 * k }, () => (rng.uniform() < 0.5 ? -10 : 10)),
      leafWeight: Float64Array.from(rng.normalArray(8 * k * H)),
      leafBias: new Float64Array(8 * k),
    };
    const router = cometRouter({ numExperts: 8, k, width: H, params });
    const r = router.route(input(rng.normalArray(50 * H), 8));
    for (let t = 0; t < 50; t++) {
      const active = Array.from(r.experts.subarray(t * 8, (t + 1) * 8)).filter((e) => e >= 0).length;
      expect(active).toBeGreaterThanOrEqual(1);
      expect(active).toBeLessThanOrEqual(k);
    }
    // -p log(p + 1e-6) at p = 1 is -1e-6 per tree: 0 up to the reference's epsilon.
    expect(Math.abs(cometEntropy(router.last!.leafProbs, 50, k, 8))).toBeLessThan(1e-5);
  });

  it('a non-power-of-two expert count uses every leaf once; the default init routes densely', () => {
    const router = cometRouter({ numExperts: 3, k: 1, width: H, seed: 1 });
    const r = router.route(input(new Rng(2).normalArray(4 * H), 3));
    for (let t = 0; t < 4; t++) {
      expect(Array.from(r.experts.subarray(t * 3, (t + 1) * 3))).toEqual([0, 1, 2]);
      expect(r.probs.subarray(t * 3, (t + 1) * 3).reduce((a, b) => a + b, 0)).toBeCloseTo(1, 12);
    }
    expect(cometEntropy(router.last!.leafProbs, 4, 1, 3)).toBeGreaterThan(0.5);
  });

  it('bad options and shapes are typed errors', () => {
    expect(() => cometRouter({ numExperts: 1, width: H })).toThrow(InvalidArgumentError);
    expect(() => cometRouter({ numExperts: 4, width: H, gamma: 0 })).toThrow(InvalidArgumentError);
    const router = cometRouter({ numExperts: 4, width: H });
    expect(() =>
      cometRouter({ numExperts: 4, width: H, params: { ...router.params, leafBias: new Float64Array(3) } }),
    ).toThrow(ShapeMismatchError);
    const wide = {
      hidden: new Tensor('f32', [2, H + 1], new Float32Array(2 * (H + 1))),
      logits: new Tensor('f32', [2, 4], new Float32Array(8)),
      block: 0,
    };
    expect(() => router.route(wide)).toThrow(ShapeMismatchError);
  });
});
