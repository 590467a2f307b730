import { InvalidArgumentError, NonFiniteError, Rng, ShapeMismatchError, Tensor } from '@sparsekit/core';
import { describe, expect, it } from 'vitest';
import { expertChoice, routeExpertChoice } from './expert-choice.js';
import { hashExpert, hashRouter } from './hash.js';
import { reluRms, routeReluRms } from './relu-rms.js';
import { ROUTERS } from './router-table.js';
import { routeTopK, softmaxTopK, switchRouter } from './top-k.js';

const rng = new Rng(7);
const [T, E, H] = [24, 6, 10];
const hidden = rng.normalArray(T * H);
const gateWeight = rng.normalArray(E * H, 0, 0.5);
/** float64 x W^T. */
function project(x: ArrayLike<number>, w: ArrayLike<number>): Float64Array {
  const out = new Float64Array(T * E);
  for (let t = 0; t < T; t++)
    for (let e = 0; e < E; e++) for (let i = 0; i < H; i++) out[t * E + e]! += x[t * H + i]! * w[e * H + i]!;
  return out;
}
const logits64 = project(hidden, gateWeight);
const input = {
  hidden: new Tensor('f32', [T, H], hidden),
  logits: new Tensor('f32', [T, E], Float32Array.from(logits64)),
  block: 0,
};
function softmaxRow(t: number, l: ArrayLike<number> = logits64): number[] {
  const row = Array.from({ length: E }, (_, e) => l[t * E + e]!);
  const m = Math.max(...row);
  const ex = row.map((v) => Math.exp(v - m));
  const s = ex.reduce((a, b) => a + b, 0);
  return ex.map((v) => v / s);
}

describe('softmax top-k', () => {
  it("is Mixtral's router by default: the k most probable, renormalised over the k", () => {
    const r = softmaxTopK({ numExperts: E, k: 2 }).route(input);
    for (let t = 0; t < T; t++) {
      const p = softmaxRow(t);
      const order = [...p.keys()].sort((a, b) => p[b]! - p[a]! || a - b).slice(0, 2);
      const sum = p[order[0]!]! + p[order[1]!]!;
      expect([r.experts[2 * t], r.experts[2 * t + 1]]).toEqual(order);
      expect([r.weights[2 * t]!, r.weights[2 * t + 1]!]).toAllClose(
        order.map((e) => p[e]! / sum),
        { atol: 1e-6, rtol: 1e-6 },
      );
    }
    expect(r.dropped).toBe(0);
    expect(r.capacity).toBeUndefined();
  });

  it("normalize 'kept' renormalises over the slots that survive capacity (DeepSpeed top-2)", () => {
    const r = routeTopK(logits64, E, { k: 2, normalize: 'kept', capacity: { perExpert: 3 } });
    expect(r.dropped).toBeGreaterThan(0);
    for (let t = 0; t < T; t++) {
      const kept = [0, 1].filter((j) => r.experts[2 * t + j]! >= 0);
      if (kept.length > 0) expect(kept.reduce((s, j) => s + r.weights[2 * t + j]!, 0)).toBeCloseTo(1, 6);
    }
  });

  it('noise applies only when training, seeded: same seed same routing', () => {
    const clean = softmaxTopK({ numExperts: E, noise: { kind: 'gaussian', std: 1 } }).route(input);
    const base = routeTopK(Float32Array.from(logits64), E, { k: 2 });
    expect(clean.experts).toEqual(base.experts);
    const a = softmaxTopK({ numExperts: E, noise: { kind: 'gaussian', std: 1 }, training: true, seed: 9 });
    const b = softmaxTopK({ numExperts: E, noise: { kind: 'gaussian', std: 1 }, training: true, seed: 9 });
    const ra = a.route(input);
    expect(b.route(input).experts).toEqual(ra.experts);
    expect(Array.from(ra.experts)).not.toEqual(Array.from(base.experts));
    // Successive calls draw new noise.
    expect(Array.from(a.route(input).logits)).not.toEqual(Array.from(ra.logits));
  });

  it("learned noise: std softplus(x . noiseWeight_e) per expert (Shazeer et al.'s noisy top-k)", () => {
    const noiseWeight = rng.normalArray(E * H, 0, 0.3);
    const r = softmaxTopK({
      numExperts: E,
      noise: { kind: 'gaussian', noiseWeight },
      training: true,
      seed: 4,
    }).route(input);
    const draws = new Rng(4);
    const std = project(hidden, noiseWeight);
    const want = Float64Array.from(
      input.logits.data,
      (v, i) => v + Math.log1p(Math.exp(std[i]!)) * draws.normal(),
    );
    expect(r.logits).toAllClose(want, { atol: 1e-12, rtol: 1e-12 });
  });

  it('gumbel noise (DeepSpeed RSample) changes the choice only: weights are the clean probabilities', () => {
    const r = softmaxTopK({
      numExperts: E,
      k: 1,
      normalize: 'none',
      noise: { kind: 'gumbel' },
      training: true,
    }).route(input);
    for (let t = 0; t < T; t++) expect(r.weights[t]!).toBeCloseTo(softmaxRow(t)[r.experts[t]!]!, 6);
    expect(r.probs).toAllClose(
      Float64Array.from({ length: T * E }, (_, i) => softmaxRow(Math.floor(i / E))[i % E]!),
      {
        atol: 1e-6,
        rtol: 1e-6,
      },
    );
  });
});

describe('Switch top-1', () => {
  it('takes the most probable expert, scaled by its probability, capacity factor 1', () => {
    const r = switchRouter({ numExperts: E }).route(input);
    expect(r.k).toBe(1);
    expect(r.capacity).toBe(Math.floor(T / E));
    for (let t = 0; t < T; t++) {
      const p = softmaxRow(t);
      const best = p.indexOf(Math.max(...p));
      expect(r.chosen[t]).toBe(best);
      if (r.experts[t]! >= 0) expect(r.weights[t]!).toBeCloseTo(p[best]!, 6);
    }
  });

  it('jitter multiplies the inputs by U(1 - eps, 1 + eps) before its own float64 gate (training only)', () => {
    const eval_ = switchRouter({ numExperts: E, gateWeight, capacity: 'dropless' }).route(input);
    expect(eval_.logits).toAllClose(logits64, { atol: 1e-12, rtol: 1e-12 });
    const eps = 0.3;
    const r = switchRouter({
      numExperts: E,
      gateWeight,
      capacity: 'dropless',
      training: true,
      jitterEps: eps,
      seed: 2,
    });
    const jittered = r.route(input).logits;
    // Reference: the same draws (core Rng, seed 2, one per input element in order).
    const draws = new Rng(2);
    const x = Float64Array.from(hidden, (v) => v * draws.uniform(1 - eps, 1 + eps));
    expect(jittered).toAllClose(project(x, gateWeight), { atol: 1e-12, rtol: 1e-12 });
  });

  it('jitter while training without the gate weight is refused', () => {
    expect(() => switchRouter({ numExperts: E, training: true })).toThrow(InvalidArgumentError);
    expect(() => switchRouter({ numExperts: E, training: true, jitterEps: 0 })).not.toThrow();
  });
});

describe('expert choice', () => {
  it('each expert takes its top-capacity tokens by probability (ties: earlier token)', () => {
    const r = expertChoice({ numExperts: E }).route(input);
    const cap = Math.floor((2 * T) / E);
    expect(r.k).toBe(E);
    expect(r.capacity).toBe(cap);
    for (let e = 0; e < E; e++) {
      const scores = Array.from({ length: T }, (_, t) => softmaxRow(t)[e]!);
      const top = [...scores.keys()].sort((a, b) => scores[b]! - scores[a]! || a - b).slice(0, cap);
      const taken = Array.from({ length: T }, (_, t) => t).filter((t) => r.experts[t * E + e] === e);
      expect(taken).toEqual([...top].sort((a, b) => a - b));
      for (const t of taken) expect(r.weights[t * E + e]!).toBeCloseTo(scores[t]!, 6);
      for (let t = 0; t < T; t++) if (!taken.includes(t)) expect(r.experts[t * E + e]).toBe(-1);
    }
  });

  it('capacity never exceeds the tokens; dropless lets every expert take every token', () => {
    expect(routeExpertChoice(logits64, E, { capacity: { factor: 100 } }).capacity).toBe(T);
    const all = routeExpertChoice(logits64, E, { capacity: 'dropless' });
    expect(Array.from(all.experts).every((e, i) => e === i % E)).toBe(true);
  });
});

describe('hash routing', () => {
  it('one expert per token, weight 1, deterministic for a seed', () => {
    const a = hashRouter({ numExperts: E, seed: 1 }).route(input);
    const b = hashRouter({ numExperts: E, seed: 1 }).route(input);
    expect(a.experts).toEqual(b.experts);
    expect(Array.from(a.weights).every((w) => w === 1)).toBe(true);
    expect(Array.from(a.experts).every((e) => e >= 0 && e < E)).toBe(true);
  });

  it('the same hidden state gets the same expert; position and caller keys hash as given', () => {
    const twice = new Float32Array(2 * H);
    twice.set(hidden.subarray(0, H));
    twice.set(hidden.subarray(0, H), H);
    const r = hashRouter({ numExperts: E }).route({
      hidden: new Tensor('f32', [2, H], twice),
      logits: new Tensor('f32', [2, E], new Float32Array(2 * E)),
      block: 0,
    });
    expect(r.experts[0]).toBe(r.experts[1]);
    const pos = hashRouter({ numExperts: E, key: 'position' }).route(input);
    expect(Array.from(pos.experts)).toEqual(Array.from({ length: T }, (_, t) => hashExpert(t, E)));
    const ids = Int32Array.from({ length: T }, (_, t) => 100 + 3 * t);
    const byId = hashRouter({ numExperts: E, key: () => ids, seed: 5 }).route(input);
    expect(Array.from(byId.experts)).toEqual(Array.from(ids, (id) => hashExpert(id, E, 5)));
    expect(() => hashRouter({ numExperts: E, key: () => ids.subarray(1) }).route(input)).toThrow(
      ShapeMismatchError,
    );
  });

  it('spreads distinct keys over the experts', () => {
    const counts = new Array(E).fill(0);
    for (let id = 0; id < 6000; id++) counts[hashExpert(id, E)]++;
    for (const c of counts) expect(Math.abs(c - 1000)).toBeLessThan(150);
  });
});

describe("BlockFFN's ReLU + RMSNorm router", () => {
  it('w = ReLU(l) / sqrt(mean(ReLU(l)^2) + eps); every nonzero expert active', () => {
    const r = reluRms({ numExperts: E }).route(input);
    expect(r.k).toBe(E);
    for (let t = 0; t < T; t++) {
      const relu = Array.from({ length: E }, (_, e) => Math.max(0, input.logits.data[t * E + e]!));
      const rms = Math.sqrt(relu.reduce((s, v) => s + v * v, 0) / E + 1e-6);
      for (let e = 0; e < E; e++) {
        expect(r.weights[t * E + e]!).toBeCloseTo(relu[e]! / rms, 5);
        expect(r.experts[t * E + e]).toBe(relu[e]! > 0 ? e : -1);
      }
    }
  });

  it('a token with every logit <= 0 gets no expert', () => {
    const r = routeReluRms(Float64Array.of(-1, 0, -2, 3, 1, 0), 3);
    expect(Array.from(r.experts)).toEqual([-1, -1, -1, 0, 1, -1]);
  });
});

describe('bad input gives typed errors', () => {
  it('shapes, NaN logits, k, options', () => {
    const nan = Float32Array.from(logits64);
    nan[5] = Number.NaN;
    const withNan = { ...input, logits: new Tensor('f32', [T, E], nan) };
    for (const router of ROUTERS.map((entry) => entry.make({ numExperts: E, width: H })))
      expect(() => router.route(withNan)).toThrow(NonFiniteError);
    const wrong = { ...input, logits: new Tensor('f32', [T, E - 1], new Float32Array(T * (E - 1))) };
    for (const router of ROUTERS.map((entry) => entry.make({ numExperts: E, width: H })))
      expect(() => router.route(wrong)).toThrow(ShapeMismatchError);
    const shortHidden = { ...input, hidden: new Tensor('f32', [T - 1, H], new Float32Array((T - 1) * H)) };
    expect(() => softmaxTopK({ numExperts: E }).route(shortHidden)).toThrow(ShapeMismatchError);
    expect(() => softmaxTopK({ numExperts: E, k: E + 1 })).toThrow(InvalidArgumentError);
    expect(() => softmaxTopK({ numExperts: E, k: 0 })).toThrow(InvalidArgumentError);
    expect(() => softmaxTopK({ numExperts: 0 })).toThrow(InvalidArgumentError);
    expect(() => softmaxTopK({ numExperts: E, capacity: { factor: Number.NaN } })).toThrow(
      InvalidArgumentError,
    );
    expect(() => softmaxTopK({ numExperts: E, normalize: 'sum' as 'none' })).toThrow(InvalidArgumentError);
    expect(() => softmaxTopK({ numExperts: E, noise: { kind: 'gaussian', std: -1 } })).toThrow(
      InvalidArgumentError,
    );
    expect(() => softmaxTopK({ numExperts: E, noise: { kind: 'jitter', eps: 0.1 } })).toThrow(
      InvalidArgumentError,
    );
    expect(() => expertChoice({ numExperts: E, capacity: { factor: -1 } })).toThrow(InvalidArgumentError);
    expect(() => reluRms({ numExperts: E, eps: 0 })).toThrow(InvalidArgumentError);
    expect(() => reluRms({ numExperts: E, normWeight: [1, 2] })).toThrow(ShapeMismatchError);
    expect(() =>
      softmaxTopK({ numExperts: E, gateWeight: new Float32Array(E * (H + 1)) }).route(input),
    ).toThrow(ShapeMismatchError);
    const nanGate = new Float32Array(E * H);
    nanGate[0] = Number.POSITIVE_INFINITY;
    expect(() => softmaxTopK({ numExperts: E, gateWeight: nanGate }).route(input)).toThrow(NonFiniteError);
    expect(() => routeTopK(new Float64Array(7), 3)).toThrow(ShapeMismatchError);
  });
});
