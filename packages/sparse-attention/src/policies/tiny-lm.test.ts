// The policies inside a real model: tiny-lm (Llama-style, 4 layers, 4 query heads sharing 2 key/value
// heads, head dim 32, 128 positions) through @sparsekit/models' paged KV cache.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { type KvLane, type KvPolicy, type KvQuery, Tensor } from '@sparsekit/core';
import type { KvCache, TransformerLM } from '@sparsekit/models';
import { loadHfModel, tinyLmPath } from '@sparsekit/models/node';
import { describe, expect, it } from 'vitest';
import { doubleSparsity, type LabelChannels } from './double-sparsity.js';
import { calibrateDoubleSparsity, labelChannels } from './double-sparsity-calibrate.js';
import { h2o } from './h2o.js';
import { attentionRecall } from './probabilities.js';
import { quest } from './quest.js';
import { snapKv } from './snap-kv.js';
import { streamingLlm } from './streaming-llm.js';

const { model, tokenizer } = await loadHfModel(tinyLmPath());
const text = readFileSync(join(tinyLmPath(), 'test.txt'), 'utf8');
const ids = tokenizer!.encode(text.slice(0, 4000));
const prompt = ids.slice(0, 60);
const continuation = ids.slice(60, 76);

/** Logits of the prefill's last token and of each decode step of `tokens`, with the cache. */
function decode(
  lm: TransformerLM,
  tokens: readonly number[],
  policy?: KvPolicy,
  cacheOptions: Parameters<TransformerLM['createCache']>[1] = {},
  first: readonly number[] = prompt,
): { logits: Float32Array[]; cache: KvCache } {
  const cache = lm.createCache(1, cacheOptions);
  const options = policy === undefined ? {} : { kvPolicy: policy };
  const v = lm.vocabSize;
  const pre = lm.forward(new Tensor('i32', [1, first.length], Int32Array.from(first)), cache, options).data;
  const logits: Float32Array[] = [pre.slice(pre.length - v)];
  for (const t of tokens)
    logits.push(lm.forward(new Tensor('i32', [1, 1], Int32Array.of(t)), cache, options).data);
  return { logits, cache };
}

const dense = decode(model, continuation).logits;

const calibrationIds = tokenizer!.encode(
  readFileSync(join(tinyLmPath(), 'calibration.txt'), 'utf8').slice(0, 6000),
);
const calibrationBatches = Array.from(
  { length: 4 },
  (_, i) => new Tensor('i32', [1, 64], Int32Array.from(calibrationIds.slice(i * 64, (i + 1) * 64))),
);
const importance = await calibrateDoubleSparsity(model, calibrationBatches);
const channels = labelChannels(importance);

/** A policy that records what `inner` selected (and the lane and query it saw) at each decode call. */
function recording(inner: KvPolicy) {
  const seen: { lane: KvLane; query: KvQuery; chosen: Int32Array | undefined; recall: number }[] = [];
  const policy: KvPolicy = {
    select: (lane, query) => {
      const chosen = inner.select?.(lane, query);
      seen.push({ lane: { ...lane }, query, chosen, recall: attentionRecall(lane, query, chosen) });
      return chosen;
    },
    ...(inner.evict === undefined ? {} : { evict: (lane, query) => inner.evict!(lane, query) }),
  };
  return { policy, seen };
}

const expectSameLogits = (got: Float32Array[]) => {
  expect(got).toHaveLength(dense.length);
  for (const [i, row] of got.entries())
    expect(row, `step ${i}`).toAllClose(dense[i]!, { atol: 1e-5, rtol: 1e-5 });
};

describe('KV policies in tiny-lm', () => {
  it('at a budget covering the context, every policy is dense attention', () => {
    expectSameLogits(decode(model, continuation, quest({ budget: 1024 })).logits);
    expectSameLogits(decode(model, continuation, streamingLlm({ sinks: 4, recent: 512 })).logits);
    expectSameLogits(decode(model, continuation, doubleSparsity({ channels })).logits);
    expectSameLogits(decode(model, continuation, h2o()).logits);
    expectSameLogits(decode(model, continuation, snapKv()).logits);
    expectSameLogits(decode(model, continuation, h2o({ heavy: 40, recent: 40 })).logits);
    expectSameLogits(decode(model, continuation, snapKv({ capacity: 60, window: 8 })).logits);
  });

  it('Quest at a small budget reads whole pages of the cache, within budget, and keeps every entry', () => {
    const { policy, seen } = recording(quest({ budget: 32 }));
    const { logits, cache } = decode(model, continuation, policy);
    expect(logits.every((row) => row.every(Number.isFinite))).toBe(true);
    const sparse = seen.filter((s) => s.chosen !== undefined);
    // Layers 2 and 3, both key/value heads, every decode step.
    expect(sparse).toHaveLength(continuation.length * 2 * 2);
    expect(seen.filter((s) => s.lane.layer < 2).every((s) => s.chosen === undefined)).toBe(true);
    for (const { chosen, lane } of sparse) {
      expect(chosen!.length).toBeLessThanOrEqual(3 * 16);
      const pages = new Set(Array.from(chosen!, (e) => Math.floor(e / 16)));
      expect(pages.size).toBe(3);
      for (const p of pages)
        expect(chosen!.filter((e) => Math.floor(e / 16) === p)).toHaveLength(
          Math.min(16, lane.length - p * 16),
        );
    }
    const recall = sparse.reduce((a, s) => a + s.recall, 0) / sparse.length;
    expect(recall).toBeGreaterThan(0.5);
    expect(recall).toBeLessThan(1);
    expect(cache.laneLength(3, 0, 1)).toBe(prompt.length + continuation.length);
    expect(Math.max(...logits.map((row, i) => maxAbsDiff(row, dense[i]!)))).toBeGreaterThan(0);
  });

  it('StreamingLLM at a small window holds sinks + recent - 1 entries, in both position modes', () => {
    const policy = streamingLlm({ sinks: 2, recent: 8 });
    for (const positions of ['original', 'shifted'] as const) {
      const { logits, cache } = decode(model, continuation, policy, { positions });
      expect(logits.every((row) => row.every(Number.isFinite))).toBe(true);
      const total = prompt.length + continuation.length;
      for (let layer = 0; layer < model.numBlocks; layer++)
        for (let h = 0; h < 2; h++) {
          const lane = cache.lane(layer, 0, h);
          expect(Array.from(lane.positions)).toEqual([
            0,
            1,
            ...Array.from({ length: 7 }, (_, i) => total - 7 + i),
          ]);
        }
    }
  });
});

describe('eviction policies in tiny-lm', () => {
  it('H2O at a small budget holds heavy + recent entries per lane, the recent ones the latest', () => {
    const policy = h2o({ heavy: 6, recent: 10 });
    const { logits, cache } = decode(model, continuation, policy);
    expect(logits.every((r) => r.every(Number.isFinite))).toBe(true);
    const total = prompt.length + continuation.length;
    for (let layer = 0; layer < model.numBlocks; layer++)
      for (let h = 0; h < 2; h++) {
        const lane = cache.lane(layer, 0, h);
        expect(lane.length).toBe(16);
        expect(Array.from(lane.positions.subarray(6))).toEqual(
          Array.from({ length: 10 }, (_, i) => total - 10 + i),
        );
        expect(policy.scores(layer, 0, h)).toHaveLength(16);
      }
    // Heavy hitters differ between lanes (each lane keeps its own).
    const heavy = (layer: number, h: number) =>
      Array.from(cache.lane(layer, 0, h).positions.subarray(0, 6)).join();
    expect(new Set([0, 1, 2, 3].flatMap((l) => [heavy(l, 0), heavy(l, 1)])).size).toBeGreaterThan(1);
  });

  it('SnapKV after a long prompt holds exactly capacity entries, then grows by one per decode step', () => {
    const long = ids.slice(0, 100);
    const policy = snapKv({ capacity: 32, window: 8, kernel: 5 });
    const { logits, cache } = decode(model, ids.slice(100, 110), policy, {}, long);
    expect(logits.every((r) => r.every(Number.isFinite))).toBe(true);
    for (let layer = 0; layer < model.numBlocks; layer++)
      for (let h = 0; h < 2; h++) {
        const lane = cache.lane(layer, 0, h);
        expect(lane.length).toBe(32 + 10);
        expect(Array.from(lane.positions.subarray(24))).toEqual(Array.from({ length: 18 }, (_, i) => 92 + i));
      }
    // Right after the prefill: capacity entries.
    const after = model.createCache(1);
    model.forward(new Tensor('i32', [1, 100], Int32Array.from(long)), after, { kvPolicy: policy });
    expect(after.laneLength(3, 0, 1)).toBe(32);
  });
});

describe('Double Sparsity in tiny-lm', () => {
  it('calibrates every layer and head through the rotated q and k hook sites', () => {
    expect(importance.tokens).toBe(4 * 64);
    expect(importance.layers).toHaveLength(model.numBlocks);
    const { heads, kvHeads, headDim } = model.blockShape;
    expect([importance.heads, importance.kvHeads, importance.headDim]).toEqual([heads, kvHeads, headDim]);
    for (const layer of importance.layers) {
      expect(layer.qk).toHaveLength(heads * headDim);
      expect(layer.k).toHaveLength(kvHeads * headDim);
      expect(layer.qk.every((v) => v > 0 && Number.isFinite(v))).toBe(true);
    }
    // The hooks are gone afterwards.
    expect(model.hooks.has()).toBe(false);
    const row = channels.layers[2]![0]!;
    expect(new Set(row).size).toBe(headDim);
  });

  it('the qk statistic is the mean |q ⊙ k| of rotated q and k, a query head with its group key', async () => {
    const { heads, kvHeads, headDim: d } = model.blockShape;
    const batch = calibrationBatches[0]!;
    const one = await calibrateDoubleSparsity(model, [batch]);
    const captured: Record<string, Float32Array> = {};
    const handle = model.hooks.add(
      ['attention.q.rotated', 'attention.k.rotated', 'attention.q'],
      (t, c) => {
        captured[c.site] = t.data.slice();
      },
      { blocks: [2] },
    );
    model.logits(batch);
    handle.remove();
    const q = captured['attention.q.rotated']!;
    const k = captured['attention.k.rotated']!;
    const raw = captured['attention.q']!;
    const h = 3;
    const g = Math.floor(h / (heads / kvHeads));
    const qk = new Float64Array(d);
    const qAbs = new Float64Array(d);
    for (let t = 0; t < 64; t++)
      for (let c = 0; c < d; c++) {
        qk[c] = qk[c]! + Math.abs(q[t * heads * d + h * d + c]! * k[t * kvHeads * d + g * d + c]!) / 64;
        qAbs[c] = qAbs[c]! + Math.abs(raw[t * heads * d + h * d + c]!) / 64;
      }
    expect(one.layers[2]!.qk.subarray(h * d, (h + 1) * d)).toAllClose(qk, { rtol: 1e-9, atol: 0 });
    expect(one.layers[2]!.q.subarray(h * d, (h + 1) * d)).toAllClose(qAbs, { rtol: 1e-9, atol: 0 });
  });

  it('at a small heavyConst reads heavyConst entries, with most of the attention mass', () => {
    const { policy, seen } = recording(doubleSparsity({ channels, heavyConst: 24, groupFactor: 4 }));
    const { logits, cache } = decode(model, continuation, policy);
    expect(logits.every((r) => r.every(Number.isFinite))).toBe(true);
    const sparse = seen.filter((s) => s.chosen !== undefined);
    expect(sparse).toHaveLength(continuation.length * 2 * 2);
    for (const s of sparse) expect(s.chosen).toHaveLength(24);
    const recall = sparse.reduce((a, s) => a + s.recall, 0) / sparse.length;
    // The calibrated channels beat the least important ones at the same label width.
    const reversed: LabelChannels = {
      ...channels,
      layers: channels.layers.map((rows) => rows!.map((r) => r.slice().reverse())),
    };
    const worst = recording(doubleSparsity({ channels: reversed, heavyConst: 24, groupFactor: 4 }));
    decode(model, continuation, worst.policy);
    const worstSparse = worst.seen.filter((s) => s.chosen !== undefined);
    const worstRecall = worstSparse.reduce((a, s) => a + s.recall, 0) / worstSparse.length;
    expect(recall).toBeGreaterThan(worstRecall);
    expect(recall).toBeGreaterThan(0.5);
    expect(cache.laneLength(2, 0, 0)).toBe(prompt.length + continuation.length);
  });
});

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}
