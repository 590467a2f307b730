import { InvalidArgumentError, Rng } from '@sparsekit/core';
import { describe, expect, it } from 'vitest';
import { h2o } from './h2o.js';
import { LaneDriver, randomArray } from './lanes.test-util.js';

/** Softmax probabilities of query q [dim] over keys rows [n][dim] (float64). */
function probs(q: Float32Array, keys: Float32Array[], dim: number): number[] {
  const s = keys.map((k) => k.reduce((a, v, i) => a + v * q[i]!, 0) / Math.sqrt(dim));
  const m = Math.max(...s);
  const e = s.map((v) => Math.exp(v - m));
  const z = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / z);
}

/**
 * A plain port of H2OKVCache_LayerWise for one head: keys with positions and scores; each call adds
 * its queries' probabilities (query s sees the keys up to its own), then keeps topk + recent.
 */
class ReferenceH2o {
  held: { key: Float32Array; position: number; score: number }[] = [];
  constructor(
    readonly hh: number,
    readonly recent: number,
    readonly dim: number,
  ) {}

  call(keys: Float32Array[], queries: Float32Array[], first: number): void {
    keys.forEach((key, i) => {
      this.held.push({ key, position: first + i, score: 0 });
    });
    const base = this.held.length - keys.length;
    queries.forEach((q, s) => {
      const visible = this.held.slice(0, base + s + 1);
      probs(
        q,
        visible.map((h) => h.key),
        this.dim,
      ).forEach((p, j) => {
        visible[j]!.score += p;
      });
    });
    const n = this.held.length;
    if (n <= this.hh + this.recent) return;
    const candidates = this.held.slice(0, n - this.recent).map((h, i) => ({ i, score: h.score }));
    candidates.sort((a, b) => b.score - a.score || a.i - b.i);
    const top = new Set(candidates.slice(0, this.hh).map((c) => c.i));
    this.held = this.held.filter((_, i) => top.has(i) || i >= n - this.recent);
  }
}

describe('H2O', () => {
  it('matches a plain port of the reference: the held positions after a prefill and every decode step', () => {
    const rng = new Rng(6);
    const dim = 8;
    const policy = h2o({ heavy: 3, recent: 5 });
    const reference = new ReferenceH2o(3, 5, dim);
    const driver = new LaneDriver(dim, 100);
    const rows = (x: Float32Array) =>
      Array.from({ length: x.length / dim }, (_, i) => x.subarray(i * dim, (i + 1) * dim));
    const prompt = randomArray(rng, 12 * dim);
    const promptQueries = randomArray(rng, 12 * dim, 2);
    reference.call(rows(prompt), rows(promptQueries), 0);
    driver.step(policy, prompt, new Float32Array(prompt.length), promptQueries, 1);
    expect(Array.from(driver.positions.subarray(0, driver.length))).toEqual(
      reference.held.map((h) => h.position),
    );
    for (let t = 0; t < 30; t++) {
      const key = randomArray(rng, dim);
      const q = randomArray(rng, dim, 2);
      reference.call([key], [q], 12 + t);
      driver.step(policy, key, new Float32Array(dim), q, 1);
      expect(Array.from(driver.positions.subarray(0, driver.length)), `step ${t}`).toEqual(
        reference.held.map((h) => h.position),
      );
      expect(driver.length).toBe(8);
      expect(policy.scores(2, 0, 0)).toAllClose(
        reference.held.map((h) => h.score),
        { rtol: 1e-9, atol: 1e-12 },
      );
    }
  });

  it("GQA: a key's score is the sum of its group's heads' probabilities", () => {
    const rng = new Rng(9);
    const dim = 4;
    const policy = h2o({ heavy: 100, recent: 100 });
    const driver = new LaneDriver(dim, 20);
    const keys = randomArray(rng, 6 * dim);
    const q = randomArray(rng, 2 * 6 * dim);
    driver.step(policy, keys, keys, q, 2);
    const rows = Array.from({ length: 6 }, (_, i) => keys.subarray(i * dim, (i + 1) * dim));
    const want = new Float64Array(6);
    for (let h = 0; h < 2; h++)
      for (let s = 0; s < 6; s++)
        probs(q.subarray((h * 6 + s) * dim, (h * 6 + s + 1) * dim), rows.slice(0, s + 1), dim).forEach(
          (p, j) => {
            want[j] = want[j]! + p;
          },
        );
    expect(policy.scores(2, 0, 0)).toAllClose(want, { rtol: 1e-9, atol: 1e-12 });
    // Every query's probabilities sum to 1: the scores add up to heads * queries.
    expect(want.reduce((a, b) => a + b, 0)).toBeCloseTo(12, 9);
  });

  it('keeps lanes bounded over a long generation; budget splits evenly; bad options are refused', () => {
    const rng = new Rng(2);
    const dim = 4;
    const policy = h2o({ budget: 9 });
    expect([policy.heavy, policy.recent]).toEqual([4, 5]);
    const driver = new LaneDriver(dim, 300);
    driver.step(
      policy,
      randomArray(rng, 40 * dim),
      randomArray(rng, 40 * dim),
      randomArray(rng, 40 * dim),
      1,
    );
    for (let t = 0; t < 200; t++) {
      const { read } = driver.step(
        policy,
        randomArray(rng, dim),
        randomArray(rng, dim),
        randomArray(rng, dim),
        1,
      );
      expect(read).toHaveLength(10);
      expect(driver.length).toBe(9);
    }
    // The recent window is the latest five positions.
    expect(Array.from(driver.positions.subarray(4, 9))).toEqual([235, 236, 237, 238, 239]);
    expect(h2o().held).toBe(516);
    expect(() => h2o({ heavy: -1 })).toThrow(InvalidArgumentError);
    expect(() => h2o({ recent: Number.NaN })).toThrow(/recent/);
    expect(() => h2o({ heavy: 0, recent: 0 })).toThrow(InvalidArgumentError);
    expect(() => h2o({ budget: 0 })).toThrow(/budget/);
    expect(() => h2o({ budget: 8, heavy: 2 })).toThrow(/instead/);
    expect(() => h2o({ scale: 0 })).toThrow(/scale/);
  });
});
