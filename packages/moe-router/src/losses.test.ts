import { InvalidArgumentError, Rng } from '@sparsekit/core';
import { describe, expect, it } from 'vitest';
import { routeExpertChoice } from './expert-choice.js';
import { concatenatedBalancingLoss, loadBalancingLoss, meanOverLayers, routerZLoss } from './losses.js';
import { expertSparsity, loadMetrics } from './metrics.js';
import { routeReluRms } from './relu-rms.js';
import { routeTopK } from './top-k.js';

const rng = new Rng(8);
const [T, E] = [40, 8];
const logits = Float64Array.from(rng.normalArray(T * E, 0, 1.5));

/** Plain references: softmax, top-k index lists. */
function probsOf(l: Float64Array, tokens: number): number[][] {
  return Array.from({ length: tokens }, (_, t) => {
    const row = Array.from(l.subarray(t * E, (t + 1) * E));
    const m = Math.max(...row);
    const ex = row.map((v) => Math.exp(v - m));
    const s = ex.reduce((a, b) => a + b, 0);
    return ex.map((v) => v / s);
  });
}
function topOf(p: number[], k: number): number[] {
  return [...p.keys()].sort((a, b) => p[b]! - p[a]! || a - b).slice(0, k);
}

describe('load-balancing loss', () => {
  const p = probsOf(logits, T);
  const P = Array.from({ length: E }, (_, e) => p.reduce((s, row) => s + row[e]!, 0) / T);

  it("Switch form: alpha E sum f_i P_i with f the top-1 shares (= HF Switch's mean(f P) E^2)", () => {
    const f = new Array(E).fill(0);
    for (const row of p) f[topOf(row, 1)[0]!] += 1 / T;
    const want = 0.01 * E * f.reduce((s, v, e) => s + v * P[e]!, 0);
    const r = routeTopK(logits, E, { k: 1, normalize: 'none', capacity: { factor: 1 } });
    expect(loadBalancingLoss(r)).toBeCloseTo(want, 14);
    // HF's expression of the same thing.
    const hf = (f.reduce((s, v, e) => s + v * P[e]!, 0) / E) * E * E;
    expect(loadBalancingLoss(r, { alpha: 1 })).toBeCloseTo(hf, 14);
    // f counts the choices before dropping: the same loss whatever the capacity.
    expect(loadBalancingLoss(routeTopK(logits, E, { k: 1, capacity: { perExpert: 1 } }))).toBeCloseTo(
      want,
      14,
    );
  });

  it("Mixtral form (top-k one-hot summed over choices), and Megablocks' per-choice mean", () => {
    const f = new Array(E).fill(0);
    for (const row of p) for (const e of topOf(row, 2)) f[e] += 1 / T;
    const want = 0.001 * E * f.reduce((s, v, e) => s + v * P[e]!, 0);
    const r = routeTopK(logits, E, { k: 2 });
    expect(loadBalancingLoss(r, { alpha: 0.001 })).toBeCloseTo(want, 14);
    expect(loadBalancingLoss(r, { alpha: 0.001, form: 'megablocks' })).toBeCloseTo(want / 2, 14);
  });

  it('is k at perfect balance (Mixtral form, alpha 1)', () => {
    const uniform = routeTopK(new Float64Array(E * E), E, { k: 2 });
    // Equal logits: ties go to the lower ids, so this is not balanced; build a balanced one instead.
    const chosen = Int32Array.from({ length: E * 2 }, (_, i) => (Math.floor(i / 2) + (i % 2) * 4) % E);
    const balanced = { ...uniform, chosen, experts: chosen };
    expect(loadBalancingLoss(balanced, { alpha: 1 })).toBeCloseTo(2, 12);
  });

  it('per layer, averaged; the concatenated (HF) form differs when layers differ', () => {
    const l1 = routeTopK(logits, E, { k: 2 });
    const skewed = Float64Array.from(logits, (v, i) => v + (i % E === 0 ? 3 : 0));
    const l2 = routeTopK(skewed, E, { k: 2 });
    const mean = meanOverLayers([l1, l2], (r) => loadBalancingLoss(r));
    expect(mean).toBeCloseTo((loadBalancingLoss(l1) + loadBalancingLoss(l2)) / 2, 14);
    const concat = concatenatedBalancingLoss([l1, l2]);
    expect(concat).not.toBeCloseTo(mean, 6);
    expect(concatenatedBalancingLoss([l1, l1])).toBeCloseTo(loadBalancingLoss(l1), 14);
  });

  it('refuses per-expert layouts and bad coefficients', () => {
    expect(() => loadBalancingLoss(routeExpertChoice(logits, E))).toThrow(InvalidArgumentError);
    expect(() => loadBalancingLoss(routeTopK(logits, E), { alpha: Number.NaN })).toThrow(
      InvalidArgumentError,
    );
  });
});

describe('router z-loss', () => {
  it('mean over tokens of logsumexp(logits)^2, times the coefficient', () => {
    let want = 0;
    for (let t = 0; t < T; t++) {
      let s = 0;
      for (let e = 0; e < E; e++) s += Math.exp(logits[t * E + e]!);
      want += Math.log(s) ** 2 / T;
    }
    const r = routeTopK(logits, E);
    expect(routerZLoss(r)).toBeCloseTo(want, 12);
    expect(routerZLoss(r, 0.001)).toBeCloseTo(want * 0.001, 14);
  });
});

describe('metrics', () => {
  it('tokens per expert, CV, max/mean, drop rate', () => {
    const r = routeTopK(logits, E, { k: 2, capacity: { factor: 1 } });
    const m = loadMetrics(r, E);
    const counts = new Array(E).fill(0);
    for (const e of r.experts) if (e >= 0) counts[e]++;
    expect(Array.from(m.tokensPerExpert)).toEqual(counts);
    const mean = counts.reduce((a, b) => a + b, 0) / E;
    const std = Math.sqrt(counts.reduce((s, c) => s + (c - mean) ** 2, 0) / E);
    expect(m.loadCv).toBeCloseTo(std / mean, 12);
    expect(m.maxMeanLoad).toBeCloseTo(Math.max(...counts) / mean, 12);
    expect(m.kept + m.dropped).toBe(T * 2);
    expect(m.dropRate).toBeCloseTo(r.dropped / (T * 2), 12);
  });

  it('TLS and CLS of a ReLU router over chunks of 8 (a partial last chunk included)', () => {
    const tokens = 20;
    const l = Float64Array.from(rng.normalArray(tokens * E, -0.8, 1));
    const r = routeReluRms(l, E);
    const s = expertSparsity(r, E, 8);
    const active = (t: number, e: number) => l[t * E + e]! > 0;
    let off = 0;
    for (let t = 0; t < tokens; t++) for (let e = 0; e < E; e++) off += active(t, e) ? 0 : 1;
    expect(s.tls).toBeCloseTo(off / (tokens * E), 12);
    let chunkOff = 0;
    for (const [a, b] of [
      [0, 8],
      [8, 16],
      [16, 20],
    ])
      for (let e = 0; e < E; e++) {
        let any = false;
        for (let t = a!; t < b!; t++) any ||= active(t, e);
        chunkOff += any ? 0 : 1;
      }
    expect(s.cls).toBeCloseTo(chunkOff / (3 * E), 12);
    expect(s.cls).toBeLessThanOrEqual(s.tls);
    expect(expertSparsity(routeTopK(logits, E, { k: 2 }), E, 1).tls).toBeCloseTo(1 - 2 / E, 12);
    expect(() => expertSparsity(r, E, 0)).toThrow(InvalidArgumentError);
  });
});
