import { describe, expect, it } from 'vitest';
import { InvalidArgumentError } from './errors.js';
import { Rng } from './rng.js';

describe('Rng', () => {
  it('is deterministic per seed and differs across seeds', () => {
    const a = new Rng(7);
    const b = new Rng(7);
    const c = new Rng(8);
    const xs = Array.from({ length: 8 }, () => a.nextUint32());
    expect(Array.from({ length: 8 }, () => b.nextUint32())).toEqual(xs);
    expect(Array.from({ length: 8 }, () => c.nextUint32())).not.toEqual(xs);
  });

  it('pins the stream so results stay reproducible across releases', () => {
    const rng = new Rng(0);
    expect(Array.from({ length: 3 }, () => rng.nextUint32())).toMatchInlineSnapshot(`
      [
        3809008728,
        1133695204,
        53579671,
      ]
    `);
  });

  it('draws uniform values in [0,1) with the right mean and variance', () => {
    const rng = new Rng(1);
    const n = 200_000;
    let sum = 0;
    let sq = 0;
    let outside = 0;
    for (let i = 0; i < n; i++) {
      const u = rng.uniform();
      if (!(u >= 0 && u < 1)) outside++;
      sum += u;
      sq += u * u;
    }
    const mean = sum / n;
    expect(outside).toBe(0);
    expect(mean).toBeCloseTo(0.5, 2);
    expect(sq / n - mean * mean).toBeCloseTo(1 / 12, 2);
  });

  it('draws normals with mean 0 and variance 1', () => {
    const rng = new Rng(2);
    const xs = rng.normalArray(200_000);
    let sum = 0;
    let sq = 0;
    for (const x of xs) {
      sum += x;
      sq += x * x;
    }
    expect(sum / xs.length).toBeCloseTo(0, 2);
    expect(sq / xs.length).toBeCloseTo(1, 1);
  });

  it('int(n) is unbiased over a small range', () => {
    const rng = new Rng(3);
    const counts = new Array(6).fill(0);
    for (let i = 0; i < 60_000; i++) counts[rng.int(6)]++;
    for (const count of counts) expect(Math.abs(count - 10_000)).toBeLessThan(400);
    expect(() => rng.int(0)).toThrow(InvalidArgumentError);
  });

  it('permutation holds each index once', () => {
    const p = new Rng(4).permutation(1000);
    expect([...p].sort((a, b) => a - b)).toEqual(Array.from({ length: 1000 }, (_, i) => i));
  });

  it('sample draws distinct indices, dense and sparse cases alike', () => {
    const rng = new Rng(5);
    for (const [n, k] of [
      [10, 10],
      [100, 60],
      [1_000_000, 5],
      [5, 0],
    ] as const) {
      const s = rng.sample(n, k);
      expect(s.length).toBe(k);
      expect(new Set(s).size).toBe(k);
      for (const x of s) expect(x >= 0 && x < n).toBe(true);
    }
    expect(() => rng.sample(3, 4)).toThrow(InvalidArgumentError);
  });

  it('sample is uniform over elements', () => {
    const rng = new Rng(6);
    const counts = new Array(10).fill(0);
    for (let i = 0; i < 20_000; i++) for (const x of rng.sample(10, 2)) counts[x]++;
    for (const count of counts) expect(Math.abs(count - 4000)).toBeLessThan(300);
  });

  it('fork gives an independent but reproducible stream', () => {
    const a = new Rng(9).fork();
    const b = new Rng(9).fork();
    expect(a.nextUint32()).toBe(b.nextUint32());
    expect(() => new Rng(1.5)).toThrow(InvalidArgumentError);
  });
});
