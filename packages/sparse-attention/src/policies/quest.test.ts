import { readFileSync } from 'node:fs';
import { f16BitsToF32, InvalidArgumentError, Rng } from '@sparsekit/core';
import { createWasmBackend } from '@sparsekit/sparse-formats';
import { fixturePath } from '@sparsekit/test-utils';
import { describe, expect, it } from 'vitest';
import { LaneDriver, laneOf, queryOf, randomArray } from './lanes.test-util.js';
import { attentionRecall } from './probabilities.js';
import { halfToward, quest, questPageMetadata, questPageScores } from './quest.js';

interface QuestCase {
  q: number[];
  K: number[][];
  page: number;
  topk_pages: number;
  page_scores: number[];
  selected: number[];
}
const fixture = JSON.parse(readFileSync(fixturePath(import.meta.url, 'reference-seed5.json'), 'utf8')) as {
  quest: QuestCase;
};

describe('Quest', () => {
  it('matches the reference case: page scores (rel 1e-5) and the top 3 pages exactly', () => {
    const c = fixture.quest;
    const dim = c.q.length;
    const keys = Float32Array.from(c.K.flat());
    const length = c.K.length;
    const scores = questPageScores(Float32Array.from(c.q), keys, length, dim, c.page);
    expect(scores).toAllClose(c.page_scores, { rtol: 1e-5, atol: 0 });
    // Budget 3 pages (the minimum) on a lane of 100 entries in pages of 16, the last one partial.
    const policy = quest({ budget: c.topk_pages * c.page, pageSize: c.page });
    const lane = laneOf(keys, new Float32Array(keys.length), length, dim, { pageSize: c.page });
    const chosen = policy.select(lane, queryOf(Float32Array.from(c.q), 1, 1));
    expect(chosen).toBeDefined();
    const pages = [...new Set(Array.from(chosen!, (e) => Math.floor(e / c.page)))];
    expect(pages).toEqual(c.selected);
    expect(Array.from(chosen!)).toEqual(
      c.selected.flatMap((p) => Array.from({ length: 16 }, (_, i) => p * 16 + i)),
    );
  });

  it('scores pages on a backend (metadata in its memory) and picks the same pages as the loop', async () => {
    const backend = await createWasmBackend({ threads: 2, minParallelWork: 0 });
    try {
      const rng = new Rng(12);
      const [dim, heads] = [32, 4];
      const plain = quest({ budget: 64 });
      const onWasm = quest({ budget: 64, backend, boundsDtype: 'f32' });
      const a = new LaneDriver(dim, 700);
      const b = new LaneDriver(dim, 700);
      const prefill = [
        randomArray(rng, 600 * dim),
        randomArray(rng, 600 * dim),
        randomArray(rng, heads * 600 * dim),
      ] as const;
      a.step(plain, ...prefill, heads);
      b.step(onWasm, ...prefill, heads);
      for (let t = 0; t < 40; t++) {
        const step = [
          randomArray(rng, dim),
          randomArray(rng, dim),
          randomArray(rng, heads * dim, 3),
        ] as const;
        const want = a.step(plain, ...step, heads).read;
        expect(Array.from(b.step(onWasm, ...step, heads).read)).toEqual(Array.from(want));
        expect(want.length).toBeLessThanOrEqual(64);
      }
      expect(onWasm.metadata(2, 0, 0)).toAllClose(plain.metadata(2, 0, 0)!, { atol: 0, rtol: 0 });
      onWasm.reset();
    } finally {
      await backend.dispose();
    }
  });

  it('keeps f16 bounds rounded outward on a backend: still upper bounds, nearly the same pages', async () => {
    for (const x of [0, -0, 1e-9, -1e-9, 0.1, -0.1, 2.5, -65000, 70000, 1 / 3])
      for (const dir of [1, -1] as const) {
        const v = f16BitsToF32(halfToward(x, dir));
        expect(dir === 1 ? v >= x : v <= x).toBe(true);
      }
    expect(f16BitsToF32(halfToward(0.1, 1))).toBeCloseTo(0.1, 3);
    const backend = await createWasmBackend({ threads: 2, minParallelWork: 0 });
    try {
      const rng = new Rng(14);
      const [dim, heads, length] = [32, 4, 800];
      const exact = quest({ budget: 96 });
      const half = quest({ budget: 96, backend, boundsDtype: 'f16' });
      const keys = randomArray(rng, length * dim);
      const lane = laneOf(keys, randomArray(rng, length * dim), length, dim);
      let overlap = 0;
      for (let t = 0; t < 10; t++) {
        const query = queryOf(randomArray(rng, heads * dim, 2), heads, 1);
        const a = new Set(exact.select(lane, query));
        const b = half.select(lane, query)!;
        overlap += b.filter((e) => a.has(e)).length / b.length;
      }
      expect(overlap / 10).toBeGreaterThan(0.8);
      // Every f16 bound is at least the f32 one, so every page score is still an upper bound.
      const f32 = exact.metadata(2, 0, 0)!;
      const bits = (half as unknown as { lanes: Map<string, { half: Uint16Array }> }).lanes.get(
        '2/0/0',
      )!.half;
      for (let i = 0; i < f32.length; i++) {
        const d = i % (2 * dim);
        const v = f16BitsToF32(bits[i]!);
        expect(d < dim ? v >= f32[i]! : v <= f32[i]!).toBe(true);
      }
      half.reset();
    } finally {
      await backend.dispose();
    }
  });

  it('keeps page metadata incrementally, equal to a from-scratch recomputation after many steps', () => {
    const rng = new Rng(11);
    const dim = 8;
    const heads = 2;
    const policy = quest({ budget: 32, pageSize: 4 });
    const driver = new LaneDriver(dim, 200, { pageSize: 4 });
    driver.step(
      policy,
      randomArray(rng, 9 * dim),
      randomArray(rng, 9 * dim),
      randomArray(rng, heads * 9 * dim),
      heads,
    );
    for (let t = 0; t < 90; t++) {
      const { read } = driver.step(
        policy,
        randomArray(rng, dim),
        randomArray(rng, dim),
        randomArray(rng, heads * dim),
        heads,
      );
      // Read sets are whole pages (the last one maybe partial), sorted, at most k pages.
      expect(read.length).toBeLessThanOrEqual(Math.max(32, 12));
      for (let i = 1; i < read.length; i++) expect(read[i]!).toBeGreaterThan(read[i - 1]!);
    }
    const fresh = questPageMetadata(driver.keys, driver.length, dim, 4);
    expect(policy.metadata(2, 0, 0)).toEqual(fresh);
    expect(fresh.length).toBe(Math.ceil(99 / 4) * 2 * dim);
  });

  it('GQA: the pages of a group are ranked by the sum of its heads scores', () => {
    const rng = new Rng(3);
    const dim = 6;
    const length = 80;
    const keys = randomArray(rng, length * dim);
    const q = randomArray(rng, 3 * dim);
    const lane = laneOf(keys, new Float32Array(keys.length), length, dim, { pageSize: 8 });
    const chosen = quest({ budget: 24, pageSize: 8 }).select(lane, queryOf(q, 3, 1))!;
    const summed = new Float64Array(10);
    for (let h = 0; h < 3; h++)
      questPageScores(q.subarray(h * dim, (h + 1) * dim), keys, length, dim, 8).forEach((s, p) => {
        summed[p] = summed[p]! + s;
      });
    const top = Array.from(summed.keys())
      .sort((a, b) => summed[b]! - summed[a]!)
      .slice(0, 3)
      .sort((a, b) => a - b);
    expect([...new Set(Array.from(chosen, (e) => Math.floor(e / 8)))]).toEqual(top);
  });

  it('reads everything in skipped layers, at prefill, and when the budget covers the lane', () => {
    const rng = new Rng(5);
    const dim = 4;
    const keys = randomArray(rng, 40 * dim);
    const lane = (layer: number) => laneOf(keys, keys, 40, dim, { layer, pageSize: 4 });
    const q = randomArray(rng, dim);
    const policy = quest({ budget: 12, pageSize: 4 });
    expect(policy.select(lane(0), queryOf(q, 1, 1))).toBeUndefined();
    expect(policy.select(lane(1), queryOf(q, 1, 1))).toBeUndefined();
    expect(policy.select(lane(2), queryOf(q, 1, 1))).toHaveLength(12);
    expect(policy.select(lane(2), queryOf(randomArray(rng, 2 * dim), 1, 2))).toBeUndefined();
    expect(quest({ budget: 40, pageSize: 4 }).select(lane(2), queryOf(q, 1, 1))).toBeUndefined();
    expect(quest({ budget: 12, pageSize: 4, skipLayers: 0 }).select(lane(0), queryOf(q, 1, 1))).toHaveLength(
      12,
    );
  });

  it('starts over when a lane shrank or is another one, and after reset()', () => {
    const rng = new Rng(8);
    const dim = 4;
    const policy = quest({ budget: 8, pageSize: 4 });
    const a = randomArray(rng, 30 * dim);
    const b = randomArray(rng, 30 * dim);
    const q = queryOf(randomArray(rng, dim), 1, 1);
    policy.select(laneOf(a, a, 30, dim, { pageSize: 4 }), q);
    policy.select(laneOf(b, b, 30, dim, { pageSize: 4 }), q); // same indices, other keys
    expect(policy.metadata(2, 0, 0)).toEqual(questPageMetadata(b, 30, dim, 4));
    policy.select(laneOf(b, b, 13, dim, { pageSize: 4 }), q); // shrank
    expect(policy.metadata(2, 0, 0)).toEqual(questPageMetadata(b, 13, dim, 4));
    policy.reset();
    expect(policy.metadata(2, 0, 0)).toBeUndefined();
  });

  it('selected pages hold most of the attention: recall in (0, 1), and 1 for every entry', () => {
    const rng = new Rng(21);
    const dim = 16;
    const length = 128;
    const keys = randomArray(rng, length * dim);
    const lane = laneOf(keys, keys, length, dim);
    const query = queryOf(randomArray(rng, 2 * dim, 2), 2, 1);
    const chosen = quest({ budget: 48 }).select(lane, query)!;
    const recall = attentionRecall(lane, query, chosen);
    expect(recall).toBeGreaterThan(0);
    expect(recall).toBeLessThan(1);
    expect(
      attentionRecall(
        lane,
        query,
        Int32Array.from({ length }, (_, i) => i),
      ),
    ).toBeCloseTo(1, 12);
    expect(attentionRecall(lane, query, undefined)).toBe(1);
    expect(() => attentionRecall(lane, query, [length])).toThrow(InvalidArgumentError);
  });

  it('refuses bad options and a page size other than the cache', () => {
    expect(() => quest({ budget: 0 })).toThrow(InvalidArgumentError);
    expect(() => quest({ budget: -16 })).toThrow(InvalidArgumentError);
    expect(() => quest({ budget: Number.NaN })).toThrow(/budget/);
    expect(() => quest({ budget: 64, pageSize: 0 })).toThrow(/pageSize/);
    expect(() => quest({ budget: 64, skipLayers: 1.5 })).toThrow(/skipLayers/);
    const keys = new Float32Array(40 * 4);
    expect(() =>
      quest({ budget: 8, pageSize: 8 }).select(
        laneOf(keys, keys, 40, 4, { pageSize: 16 }),
        queryOf(new Float32Array(4), 1, 1),
      ),
    ).toThrow(/page size \(16\)/);
    expect(() => questPageScores([1], [1], 1, 1, 0)).toThrow(InvalidArgumentError);
  });
});
