import { readFileSync } from 'node:fs';
import { Tensor } from '@sparsekit/core';
import { describe, expect, it } from 'vitest';
import { loadBalancingLoss, routerZLoss } from './losses.js';
import { loadMetrics } from './metrics.js';
import { routeTopK, softmaxTopK, switchRouter } from './top-k.js';

interface SwitchCase {
  x: number[][];
  Wr: number[][];
  probs: number[][];
  topk: number[][];
  capacity: number;
  assign: number[][];
  gates: number[][];
  load: number[];
  aux_loss: number;
  z_loss: number;
  dropped: number;
}

// Copied from the shared reference fixtures (wave2/reference-seed5.json, plain float64 ports).
const fixtures = JSON.parse(
  readFileSync(new URL('./fixtures/switch-seed5.json', import.meta.url), 'utf8'),
) as Record<string, SwitchCase>;

/** logits = x Wr in float64. */
function logitsOf(c: SwitchCase): Float64Array {
  const [T, H, E] = [c.x.length, c.Wr.length, c.Wr[0]!.length];
  const out = new Float64Array(T * E);
  for (let t = 0; t < T; t++)
    for (let e = 0; e < E; e++) for (let i = 0; i < H; i++) out[t * E + e]! += c.x[t]![i]! * c.Wr[i]![e]!;
  return out;
}

describe.each([
  ['switch_top1_cf1', 1, 1],
  ['switch_top2_cf1.25', 2, 1.25],
])('reference fixture %s', (name, k, factor) => {
  const c = fixtures[name]!;
  const E = c.Wr[0]!.length;
  // The fixtures: raw softmax probabilities as gates, capacity floor(cf T k / E), GShard order.
  const result = routeTopK(logitsOf(c), E, {
    k,
    normalize: 'none',
    capacity: { factor, convention: 'switch' },
  });

  it('matches probs, topk, capacity, assign, gates, load, dropped', () => {
    expect(result.probs).toAllClose(c.probs.flat(), { atol: 1e-12, rtol: 1e-10 });
    expect(Array.from(result.chosen)).toEqual(c.topk.flat());
    expect(result.capacity).toBe(c.capacity);
    expect(Array.from(result.experts)).toEqual(c.assign.flat());
    // Weights are float32 (core's Routing): within 1e-6.
    expect(result.weights).toAllClose(c.gates.flat(), { atol: 1e-6, rtol: 0 });
    const metrics = loadMetrics(result, E);
    expect(Array.from(metrics.tokensPerExpert)).toEqual(c.load);
    expect(result.dropped).toBe(c.dropped);
    expect(metrics.dropped).toBe(c.dropped);
  });

  it('matches aux_loss (top-1 f, alpha 0.01) and z_loss', () => {
    expect(loadBalancingLoss(result, { alpha: 0.01, form: 'switch' })).toBeCloseTo(c.aux_loss, 12);
    expect(routerZLoss(result)).toBeCloseTo(c.z_loss, 10);
  });

  it('the same through the Router interface on float32 inputs (gate weight held by the router)', () => {
    const [T, H] = [c.x.length, c.Wr.length];
    const gateWeight = new Float64Array(E * H);
    for (let e = 0; e < E; e++) for (let i = 0; i < H; i++) gateWeight[e * H + i] = c.Wr[i]![e]!;
    const router =
      k === 1
        ? switchRouter({ numExperts: E, gateWeight, capacity: { factor, convention: 'switch' } })
        : softmaxTopK({
            numExperts: E,
            k,
            normalize: 'none',
            gateWeight,
            capacity: { factor, convention: 'switch' },
          });
    const routed = router.route({
      hidden: new Tensor('f32', [T, H], Float32Array.from(c.x.flat())),
      logits: new Tensor('f32', [T, E], new Float32Array(T * E)),
      block: 0,
    });
    // x is rounded to float32 here: the choices are the same, the values within 1e-6.
    expect(Array.from(routed.experts)).toEqual(c.assign.flat());
    expect(routed.weights).toAllClose(c.gates.flat(), { atol: 1e-6, rtol: 1e-6 });
    expect(routerZLoss(routed)).toBeCloseTo(c.z_loss, 5);
  });
});
