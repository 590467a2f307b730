import { InvalidArgumentError, Rng } from '@sparsekit/core';
import { describe, expect, it } from 'vitest';
import {
  blockffnBalanceLoss,
  chunkSparsificationLoss,
  localityLoss,
  scaledScores,
} from './blockffn-losses.js';
import { routeReluRms } from './relu-rms.js';

const rng = new Rng(12);
const [T, E] = [16, 6];
const logits = Float64Array.from(rng.normalArray(T * E, -0.3, 1));
const r = routeReluRms(logits, E);

describe("BlockFFN's chunk-level losses", () => {
  it('chunk sparsification: mean over (chunk, expert) of 1 - prod(1 - p), p the sum-scaled weights', () => {
    const p: number[][] = [];
    for (let t = 0; t < T; t++) {
      const relu = Array.from({ length: E }, (_, e) => Math.max(0, logits[t * E + e]!));
      const rms = Math.sqrt(relu.reduce((s, v) => s + v * v, 0) / E + 1e-6);
      const w = relu.map((v) => v / rms);
      const sum = w.reduce((a, b) => a + b, 0);
      p.push(w.map((v) => v / (sum + 1e-5)));
    }
    for (const chunk of [1, 4, 8]) {
      let mean = 0;
      for (let c = 0; c < T / chunk; c++)
        for (let e = 0; e < E; e++) {
          let prod = 1;
          for (let t = c * chunk; t < (c + 1) * chunk; t++) prod *= 1 - p[t]![e]! + 1e-5;
          mean += (1 - prod) / ((T / chunk) * E);
        }
      expect(chunkSparsificationLoss(r, chunk)).toBeCloseTo(mean, 12);
    }
    // Longer chunks: more of each chunk's experts are likely active.
    expect(chunkSparsificationLoss(r, 8)).toBeGreaterThan(chunkSparsificationLoss(r, 1));
    expect(() => chunkSparsificationLoss(r, 0)).toThrow(InvalidArgumentError);
  });

  it('locality: BCE of steep * l[t-1] against sigmoid(steep * l[t]); 0-ish when consecutive logits agree', () => {
    const steep = 5;
    let want = 0;
    for (let t = 1; t < T; t++)
      for (let e = 0; e < E; e++) {
        const x = steep * logits[(t - 1) * E + e]!;
        const y = 1 / (1 + Math.exp(-steep * logits[t * E + e]!));
        const s = 1 / (1 + Math.exp(-x));
        want += -(y * Math.log(s) + (1 - y) * Math.log(1 - s)) / ((T - 1) * E);
      }
    expect(localityLoss(r, { steep, lambda: 0.5 })).toBeCloseTo(0.5 * want, 10);
    // Repeating one token's logits: the loss is the binary entropy of the target only (its minimum).
    const same = Float64Array.from({ length: T * E }, (_, i) => 10 * (logits[i % E]! > 0 ? 1 : -1));
    expect(localityLoss(routeReluRms(same, E))).toBeLessThan(1e-6);
    expect(() => localityLoss(r, { steep: 0 })).toThrow(InvalidArgumentError);
  });

  it('balance: E sum importance * load share; about 1 when experts are used evenly', () => {
    const p = scaledScores(r);
    let active = 0;
    const load = new Array(E).fill(0);
    const importance = new Array(E).fill(0);
    for (let t = 0; t < T; t++)
      for (let e = 0; e < E; e++) {
        importance[e] += p[t * E + e]! / T;
        if (p[t * E + e]! > 0) {
          load[e]++;
          active++;
        }
      }
    const want = E * importance.reduce((s, v, e) => s + v * (load[e] / (active + 1e-5)), 0);
    expect(blockffnBalanceLoss(r)).toBeCloseTo(want, 12);
    const even = routeReluRms(new Float64Array(T * E).fill(1), E);
    expect(blockffnBalanceLoss(even)).toBeCloseTo(1, 4);
  });
});
