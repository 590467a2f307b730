import { InvalidArgumentError, Rng } from '@sparsekit/core';
import { describe, expect, it } from 'vitest';
import { dropOverCapacity, expertCapacity, neededCapacity } from './capacity.js';
import { routeTopK } from './top-k.js';

describe('capacity conventions', () => {
  const shape = { tokens: 30, numExperts: 8, k: 2, needed: 11 };

  it("'switch' (the fixtures'): floor(cf T k / E)", () => {
    expect(expertCapacity({ factor: 1 }, shape)).toBe(Math.floor((1 * 30 * 2) / 8)); // 7
    expect(expertCapacity({ factor: 1.25, convention: 'switch' }, { ...shape, tokens: 32 })).toBe(10);
    expect(expertCapacity({ factor: 1, convention: 'switch' }, { ...shape, k: 1, tokens: 32 })).toBe(4);
  });

  it("'tutel': cf > 0 is k * int(cf * ceil(T / E)), padded whatever is needed", () => {
    // spe = ceil(30 / 8) = 4.
    expect(expertCapacity({ factor: 1, convention: 'tutel' }, shape)).toBe(2 * 4);
    expect(expertCapacity({ factor: 1.3, convention: 'tutel' }, shape)).toBe(2 * Math.trunc(1.3 * 4)); // 10
    expect(expertCapacity({ factor: 1, convention: 'tutel' }, { ...shape, needed: 1 })).toBe(8);
  });

  it("'tutel': cf = 0 is the most any expert needs (dropless); cf < 0 caps that at k * int(-cf * spe)", () => {
    expect(expertCapacity({ factor: 0, convention: 'tutel' }, shape)).toBe(11);
    expect(expertCapacity({ factor: -1, convention: 'tutel' }, shape)).toBe(Math.min(11, 8));
    expect(expertCapacity({ factor: -2, convention: 'tutel' }, shape)).toBe(Math.min(11, 16));
    expect(expertCapacity({ factor: -2, convention: 'tutel' }, { ...shape, needed: 3 })).toBe(3);
  });

  it("'tutel': alignment rounds up", () => {
    expect(expertCapacity({ factor: 0, convention: 'tutel', alignment: 4 }, shape)).toBe(12);
    expect(expertCapacity({ factor: 1, convention: 'tutel', alignment: 4 }, shape)).toBe(8);
  });

  it("'deepspeed': max(ceil(T / E * cf * k), min_capacity), min_capacity 4 by default", () => {
    expect(expertCapacity({ factor: 1, convention: 'deepspeed' }, { ...shape, k: 1 })).toBe(
      Math.ceil(30 / 8),
    );
    expect(expertCapacity({ factor: 1, convention: 'deepspeed' }, { ...shape, k: 1, tokens: 10 })).toBe(4);
    expect(
      expertCapacity({ factor: 1, convention: 'deepspeed', minCapacity: 0 }, { ...shape, k: 1, tokens: 10 }),
    ).toBe(2);
    expect(expertCapacity({ factor: 1.5, convention: 'deepspeed' }, shape)).toBe(
      Math.ceil((30 / 8) * 1.5 * 2),
    );
    expect(expertCapacity({ factor: 1, minCapacity: 9 }, shape)).toBe(9);
  });

  it("fixed and 'dropless'", () => {
    expect(expertCapacity({ perExpert: 64 }, shape)).toBe(64);
    expect(expertCapacity('dropless', shape)).toBeUndefined();
  });

  it('refuses NaN, infinite and out-of-convention factors, and bad counts, with typed errors', () => {
    for (const bad of [
      { factor: Number.NaN },
      { factor: Number.POSITIVE_INFINITY, convention: 'tutel' as const },
      { factor: 0 },
      { factor: -1, convention: 'deepspeed' as const },
      { factor: 1, minCapacity: -1 },
      { factor: 1, alignment: 0 },
      { factor: 1, convention: 'gshard' as 'switch' },
      { perExpert: 1.5 },
    ])
      expect(() => expertCapacity(bad, shape), JSON.stringify(bad)).toThrow(InvalidArgumentError);
  });
});

describe('dropping in GShard order', () => {
  it('places every first choice before any second choice', () => {
    // Choices: t0 [0, 1], t1 [1, 0], t2 [1, 0], t3 [0, 1]; capacity 2. Token-major order would let
    // t0 and t1 take both experts' slots with their second choices and drop t2 and t3 entirely.
    const chosen = Int32Array.of(0, 1, 1, 0, 1, 0, 0, 1);
    const { experts, weights, dropped } = dropOverCapacity(chosen, new Float32Array(8).fill(0.5), 2, 2, 2);
    expect(Array.from(experts)).toEqual([0, -1, 1, -1, 1, -1, 0, -1]);
    expect(Array.from(weights)).toEqual([0.5, 0, 0.5, 0, 0.5, 0, 0.5, 0]);
    expect(dropped).toBe(4);
  });

  it('random routings: a second choice is kept on an expert only if no first choice on it was dropped', () => {
    const rng = new Rng(3);
    for (let trial = 0; trial < 50; trial++) {
      const [T, E, k] = [5 + rng.int(40), 2 + rng.int(7), 1 + rng.int(2)];
      const logits = Float64Array.from(rng.normalArray(T * E, 0, 2));
      const factor = 0.3 + rng.uniform() * 1.2;
      const r = routeTopK(logits, E, { k, capacity: { factor, convention: 'switch' } });
      const cap = Math.floor((factor * T * k) / E);
      expect(r.capacity).toBe(cap);
      for (let e = 0; e < E; e++) {
        // Plain reference: the priority list of expert e is its choice-0 tokens, then choice-1 tokens.
        const priority: number[] = [];
        for (let j = 0; j < k; j++)
          for (let t = 0; t < T; t++) if (r.chosen[t * k + j] === e) priority.push(t * k + j);
        const kept = priority.filter((slot) => r.experts[slot] === e);
        expect(kept).toEqual(priority.slice(0, cap));
      }
      expect(r.dropped).toBe(Array.from(r.experts).filter((e, i) => e === -1 && r.chosen[i]! >= 0).length);
      for (let i = 0; i < T * k; i++) if (r.experts[i] === -1) expect(r.weights[i]).toBe(0);
    }
  });

  it('Tutel cf = 0 drops nothing; cf < 0 never pads beyond what is needed', () => {
    const rng = new Rng(4);
    const logits = Float64Array.from(rng.normalArray(40 * 4, 0, 3));
    const dropless = routeTopK(logits, 4, { k: 2, capacity: { factor: 0, convention: 'tutel' } });
    expect(dropless.dropped).toBe(0);
    expect(dropless.capacity).toBe(neededCapacity(dropless.chosen, 4));
    const capped = routeTopK(logits, 4, { k: 2, capacity: { factor: -0.5, convention: 'tutel' } });
    expect(capped.capacity).toBe(Math.min(neededCapacity(capped.chosen, 4), 2 * Math.trunc(0.5 * 10)));
  });
});
