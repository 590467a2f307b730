import { InvalidArgumentError, Rng } from '@sparsekit/core';
import { describe, expect, it } from 'vitest';
import { LaneDriver, randomArray } from './lanes.test-util.js';
import { pool1d, snapKv } from './snap-kv.js';

/** torch's max_pool1d / avg_pool1d (stride 1, padding k // 2, count_include_pad) on an explicitly padded row. */
function torchPool(x: number[], kernel: number, pooling: 'max' | 'avg'): number[] {
  const p = Math.floor(kernel / 2);
  const pad = pooling === 'max' ? Number.NEGATIVE_INFINITY : 0;
  const padded = [...Array(p).fill(pad), ...x, ...Array(p).fill(pad)];
  return x.map((_, i) => {
    const win = padded.slice(i, i + kernel);
    return pooling === 'max' ? Math.max(...win) : win.reduce((a, b) => a + b, 0) / kernel;
  });
}

/**
 * A plain port of SnapKVCluster.update_kv for one head: prompt keys [L][dim], queries [L][dim]; returns
 * the kept positions (sorted).
 */
function referenceSnap(
  keys: Float32Array[],
  queries: Float32Array[],
  dim: number,
  o: { capacity: number; window: number; kernel: number; pooling: 'max' | 'avg' },
): number[] {
  const L = keys.length;
  if (L < o.capacity) return keys.map((_, i) => i);
  const votes = new Array(L - o.window).fill(0);
  for (let s = L - o.window; s < L; s++) {
    const scores = keys.map((k, j) =>
      j <= s ? k.reduce((a, v, i) => a + v * queries[s]![i]!, 0) / Math.sqrt(dim) : -1e30,
    );
    const m = Math.max(...scores);
    const e = scores.map((v) => Math.exp(v - m));
    const z = e.reduce((a, b) => a + b, 0);
    for (let j = 0; j < L - o.window; j++) votes[j] += e[j]! / z;
  }
  const pooled = torchPool(votes, o.kernel, o.pooling);
  const order = pooled.map((v, i) => [v, i] as const).sort((a, b) => b[0] - a[0] || a[1] - b[1]);
  const top = order.slice(0, o.capacity - o.window).map(([, i]) => i);
  return [...top.sort((a, b) => a - b), ...Array.from({ length: o.window }, (_, i) => L - o.window + i)];
}

describe('SnapKV', () => {
  it('pools as torch: max over the window (padding ignored), average over the kernel (padding counts)', () => {
    const rng = new Rng(1);
    const x = Array.from(randomArray(rng, 23));
    for (const kernel of [1, 3, 7])
      for (const pooling of ['max', 'avg'] as const)
        expect(pool1d(Float64Array.from(x), 23, kernel, pooling)).toAllClose(torchPool(x, kernel, pooling), {
          rtol: 1e-12,
          atol: 1e-15,
        });
  });

  it('matches a plain port of the reference after a long prefill, then keeps every decoded entry', () => {
    const rng = new Rng(4);
    const dim = 8;
    for (const pooling of ['max', 'avg'] as const) {
      const options = { capacity: 24, window: 6, kernel: 5, pooling };
      const policy = snapKv(options);
      const L = 70;
      const keys = randomArray(rng, L * dim);
      const queries = randomArray(rng, L * dim, 2);
      const driver = new LaneDriver(dim, 200);
      driver.step(policy, keys, keys, queries, 1);
      const rows = (x: Float32Array) =>
        Array.from({ length: L }, (_, i) => x.subarray(i * dim, (i + 1) * dim));
      expect(driver.length).toBe(24);
      expect(Array.from(driver.positions.subarray(0, 24))).toEqual(
        referenceSnap(rows(keys), rows(queries), dim, options),
      );
      for (let t = 0; t < 10; t++)
        driver.step(policy, randomArray(rng, dim), randomArray(rng, dim), randomArray(rng, dim), 1);
      expect(driver.length).toBe(34);
    }
  });

  it('leaves a prompt within capacity as it is; GQA votes add up over the group', () => {
    const rng = new Rng(5);
    const dim = 4;
    const policy = snapKv({ capacity: 16, window: 4, kernel: 3 });
    const short = new LaneDriver(dim, 40);
    short.step(policy, randomArray(rng, 16 * dim), randomArray(rng, 16 * dim), randomArray(rng, 16 * dim), 1);
    expect(short.length).toBe(16);
    const long = new LaneDriver(dim, 40);
    long.step(
      policy,
      randomArray(rng, 30 * dim),
      randomArray(rng, 30 * dim),
      randomArray(rng, 2 * 30 * dim),
      2,
    );
    expect(long.length).toBe(16);
    expect(Array.from(long.positions.subarray(12, 16))).toEqual([26, 27, 28, 29]);
    expect(snapKv().capacity).toBe(1024);
  });

  it('refuses bad options', () => {
    expect(() => snapKv({ capacity: 0 })).toThrow(InvalidArgumentError);
    expect(() => snapKv({ capacity: 32, window: 32 })).toThrow(/window/);
    expect(() => snapKv({ kernel: 4 })).toThrow(/odd/);
    expect(() => snapKv({ kernel: Number.NaN })).toThrow(/kernel/);
    expect(() => snapKv({ pooling: 'min' as 'max' })).toThrow(/pooling/);
  });
});
