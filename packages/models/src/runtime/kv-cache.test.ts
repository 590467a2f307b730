import { Hooks, InvalidArgumentError, type KvLane, type KvPolicy, Tensor } from '@sparsekit/core';
import { describe, expect, it } from 'vitest';
import { loadHfModel, tinyLmPath } from '../node.js';
import { generate } from './generate.js';
import { KvCache } from './kv-cache.js';

const entry = (v: number) => Float32Array.of(v, v + 0.5);

describe('paged KV cache', () => {
  it('keeps entries in pages with their original positions, and compacts on eviction', () => {
    const cache = new KvCache(1, 1, 2, 16, 2, { pageSize: 4 });
    for (let p = 0; p < 10; p++) {
      cache.append(0, 0, 0, entry(p), entry(-p), p);
      if (p % 2 === 0) cache.append(0, 0, 1, entry(p), entry(-p), p);
    }
    expect(cache.laneLength(0, 0, 0)).toBe(10);
    expect(cache.laneLength(0, 0, 1)).toBe(5);
    // Entries 1..3 and page 2 (entries 8, 9) of lane 0 go; the rest move down in order.
    expect(new KvCache(1, 1, 1, 4, 2).pageSize).toBe(16); // vLLM's and Quest's default
    expect(cache.evict(0, 0, 0, [3, 1, 2])).toBe(7);
    expect(Array.from(cache.lane(0, 0, 0).positions)).toEqual([0, 4, 5, 6, 7, 8, 9]);
    expect(cache.evictPages(0, 0, 0, [1])).toBe(4);
    const lane = cache.lane(0, 0, 0);
    expect(Array.from(lane.positions)).toEqual([0, 4, 5, 6]);
    expect(Array.from(lane.keys)).toEqual([0, 0.5, 4, 4.5, 5, 5.5, 6, 6.5]);
    expect(Array.from(lane.values)).toEqual([-0, 0.5, -4, -3.5, -5, -4.5, -6, -5.5]);
    // The other lane is untouched.
    expect(Array.from(cache.lane(0, 0, 1).positions)).toEqual([0, 2, 4, 6, 8]);
    expect(cache.complete).toBe(false);
    expect(() => cache.evict(0, 0, 0, [4])).toThrow(InvalidArgumentError);
    expect(() => cache.evict(0, 0, 0, [1, 1])).toThrow(/unique/);
    expect(() => cache.evictPages(0, 0, 0, [1])).toThrow(/page/);
    expect(() => new KvCache(1, 1, 1, 4, 2, { pageSize: 0 })).toThrow(/pageSize/);
  });
});

/** StreamingLLM: keep `sinks` first entries and the `window - 1` latest (the new token makes `window`). */
function streaming(sinks: number, window: number): KvPolicy {
  return {
    evict: (lane: KvLane) => {
      const excess = lane.length - (sinks + window - 1);
      return excess > 0 ? Int32Array.from({ length: excess }, (_, i) => sinks + i) : undefined;
    },
  };
}

describe('KV policies in the model', async () => {
  const { model, tokenizer } = await loadHfModel(tinyLmPath());
  const prompt = tokenizer!.encode('It was the best of');
  const options = { maxNewTokens: 40, stopTokens: [] };

  /** Logits of every decode step of `tokens` after the prompt, under `kvPolicy`. */
  const decodeLogits = (tokens: readonly number[], kvPolicy?: KvPolicy): Float32Array[] => {
    const cache = model.createCache(1);
    const out = [model.forward(new Tensor('i32', [1, prompt.length], Int32Array.from(prompt)), cache).data];
    for (const t of tokens)
      out.push(
        model.forward(
          new Tensor('i32', [1, 1], Int32Array.of(t)),
          cache,
          kvPolicy === undefined ? {} : { kvPolicy },
        ).data,
      );
    return out;
  };

  it('an empty policy, or one that selects every entry, is exact attention bit for bit', () => {
    const plain = generate(model, prompt, options).tokens;
    expect(generate(model, prompt, { ...options, kvPolicy: {} }).tokens).toEqual(plain);
    const all: KvPolicy = { select: (lane) => Int32Array.from({ length: lane.length }, (_, i) => i) };
    expect(decodeLogits(plain, all)).toEqual(decodeLogits(plain));
  });

  it('a selection is what the queries read: selecting entry 0 alone returns its value row', () => {
    const first: KvPolicy = { select: () => Int32Array.of(0) };
    const cache = model.createCache(1);
    model.forward(new Tensor('i32', [1, prompt.length], Int32Array.from(prompt)), cache);
    const outputs: Float32Array[] = [];
    const hooks = new Hooks();
    hooks.add('attention.output', (x) => {
      outputs.push(x.data.slice());
    });
    model.forward(new Tensor('i32', [1, 1], Int32Array.of(7)), cache, { kvPolicy: first, hooks });
    const { numHeads, numKvHeads, headDim } = model.config;
    outputs.forEach((o, layer) => {
      for (let h = 0; h < numHeads; h++) {
        const lane = cache.lane(layer, 0, Math.floor(h / (numHeads / numKvHeads)));
        expect(o.subarray(h * headDim, (h + 1) * headDim)).toAllClose(lane.values.subarray(0, headDim), {
          atol: 1e-6,
        });
      }
    });
  });

  it('StreamingLLM eviction (sinks + window) equals the sinks + window mask, bit for bit', () => {
    const [sinks, window] = [4, 8];
    const tokens = generate(model, prompt, options).tokens;
    const evicting = decodeLogits(tokens, streaming(sinks, window));
    const cache = model.createCache(1);
    const mask = { kind: 'causal' as const, window, sinks };
    const masked = [
      model.forward(new Tensor('i32', [1, prompt.length], Int32Array.from(prompt)), cache, { mask }).data,
    ];
    for (const t of tokens)
      masked.push(model.forward(new Tensor('i32', [1, 1], Int32Array.of(t)), cache, { mask }).data);
    // The prompt (6 tokens) is shorter than sinks + window, so prefill reads the same keys in both.
    expect(prompt.length).toBeLessThan(sinks + window);
    expect(evicting).toEqual(masked);
  });

  it("shifted positions with eviction generate past the model's positions (StreamingLLM), original ones refuse", () => {
    const long = { maxNewTokens: model.maxSequenceLength + 40, stopTokens: [], kvPolicy: streaming(4, 60) };
    const out = generate(model, prompt, { ...long, cache: { positions: 'shifted' } });
    expect(out.tokens).toHaveLength(model.maxSequenceLength + 40);
    expect(() => generate(model, prompt, long)).toThrow(InvalidArgumentError);
    // Without eviction the shifted cache fills up and says so.
    expect(() =>
      generate(model, prompt, {
        maxNewTokens: model.maxSequenceLength,
        stopTokens: [],
        cache: { positions: 'shifted' },
      }),
    ).toThrow(/evict/);
  });
});

describe('a failed call leaves the cache as it was', async () => {
  const { model } = await loadHfModel(tinyLmPath());
  it('rolls back what it appended, and refuses a cache it cannot restore', () => {
    const cache = model.createCache(1);
    const prompt = new Tensor('i32', [1, 5], Int32Array.of(3, 4, 5, 6, 7));
    model.forward(prompt, cache);
    const failing = new Hooks();
    failing.add('attention.v', () => new Float32Array(1), { blocks: [2] });
    const next = new Tensor('i32', [1, 1], Int32Array.of(9));
    expect(() => model.forward(next, cache, { hooks: failing })).toThrow(/replacement/);
    expect(cache.length).toBe(5);
    for (let layer = 0; layer < model.numBlocks; layer++) expect(cache.laneLength(layer, 0, 0)).toBe(5);
    // The same step then gives what a fresh cache gives.
    const fresh = model.createCache(1);
    model.forward(prompt, fresh);
    expect(model.forward(next, cache).data).toEqual(model.forward(next, fresh).data);
    // A call that evicted before failing cannot be undone.
    const evictFirst: KvPolicy = { evict: (lane) => (lane.layer === 0 ? Int32Array.of(0) : undefined) };
    expect(() => model.forward(next, cache, { hooks: failing, kvPolicy: evictFirst })).toThrow(/replacement/);
    expect(() => model.forward(next, cache)).toThrow(/new cache/);
  });
});

describe('memory on demand', () => {
  it('a cache grows by doubling as entries arrive, keeping every lane intact', () => {
    const cache = new KvCache(1, 2, 2, 1000, 2, { initialEntries: 4 });
    expect(cache.allocated).toBe(4);
    for (let p = 0; p < 20; p++)
      for (let b = 0; b < 2; b++)
        for (let h = 0; h < 2; h++) cache.append(0, b, h, entry(100 * b + 10 * h + p), entry(-p), p);
    expect(cache.allocated).toBe(32);
    const lane = cache.lane(0, 1, 1);
    expect(lane.length).toBe(20);
    expect(lane.keys[2 * 19]).toBe(100 + 10 + 19);
    expect(Array.from(lane.positions)).toEqual(Array.from({ length: 20 }, (_, i) => i));
  });

  it('a model declaring a huge context allocates only what it runs', async () => {
    const { model } = await loadHfModel(tinyLmPath());
    const big = new (model.constructor as typeof import('./model.js').TransformerLM)(
      { ...model.config, maxPositions: 50_000_000 },
      model.params,
      { current: model.backend },
    );
    const cache = big.createCache(1);
    expect(cache.allocated).toBe(256);
    const ids = new Tensor('i32', [1, 6], Int32Array.of(1, 2, 3, 4, 5, 6));
    expect(big.forward(ids, cache).data).toEqual(model.forward(ids, model.createCache(1)).data);
  });
});
