import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ActivationStore, ActivationStoreFullError } from './activation-store.js';
import { Hooks } from './hooks.js';
import { diskShards } from './node/disk-shards.js';
import { readSafetensors } from './node/safetensors-file.js';
import { Tensor } from './tensor.js';

const WIDTH = 8;

/** Rows whose every entry is the row's id (so a row read back names itself). */
function rows(from: number, count: number): Float32Array {
  const out = new Float32Array(count * WIDTH);
  for (let r = 0; r < count; r++) out.fill(from + r, r * WIDTH, (r + 1) * WIDTH);
  return out;
}

/** Row ids in the order `batches` gives them, checking each row is whole. */
function idsOf(store: ActivationStore, batchSize: number): number[] {
  const ids: number[] = [];
  for (const batch of store.batches(batchSize)) {
    expect(batch.shape[1]).toBe(WIDTH);
    for (let r = 0; r < batch.shape[0]!; r++) {
      const row = batch.data.subarray(r * WIDTH, (r + 1) * WIDTH);
      expect(row.every((v) => v === row[0])).toBe(true);
      ids.push(row[0]!);
    }
  }
  return ids;
}

describe('activation store', () => {
  it('gives every row back once, shuffled by its seed', () => {
    const make = (seed: number) => {
      const store = new ActivationStore({ width: WIDTH, seed });
      for (let i = 0; i < 10; i++) store.add(rows(i * 100, 100));
      return store;
    };
    const a = idsOf(make(1), 64);
    expect([...a].sort((x, y) => x - y)).toEqual(Array.from({ length: 1000 }, (_, i) => i));
    expect(a).not.toEqual(Array.from({ length: 1000 }, (_, i) => i));
    expect(idsOf(make(1), 64)).toEqual(a);
    expect(idsOf(make(2), 64)).not.toEqual(a);
  });

  it('spills shuffled shards to disk past its budget, and never holds more than the budget', () => {
    const dir = mkdtempSync(join(tmpdir(), 'sparsekit-store-'));
    try {
      const budget = 3 * 50 * WIDTH * 4; // shards of 50 rows
      const store = new ActivationStore({
        width: WIDTH,
        memoryBudgetBytes: budget,
        shards: diskShards(dir),
        seed: 3,
      });
      for (let i = 0; i < 37; i++) store.add(rows(i * 27, 27)); // 999 rows
      expect(store.shards).toBe(19);
      expect(store.rows).toBe(999);
      const ids = idsOf(store, 16);
      expect(() => store.batches(26).next()).toThrow(/half a shard/);
      expect([...ids].sort((x, y) => x - y)).toEqual(Array.from({ length: 999 }, (_, i) => i));
      expect(store.peakBytes).toBeLessThanOrEqual(budget);
      expect(store.peakBytes).toBeGreaterThan(budget / 2);
      // Batches mix shards: the first 200 rows given out come from many stretches of the input.
      expect(new Set(ids.slice(0, 200).map((id) => Math.floor(id / 50))).size).toBeGreaterThan(4);
      const files = readdirSync(dir).filter((f) => f.endsWith('.safetensors'));
      expect(files).toHaveLength(20); // the 49 rows left in memory were written for the pass
      store.clear();
      expect(readdirSync(dir).filter((f) => f.endsWith('.safetensors'))).toHaveLength(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('shards are safetensors files with one activations tensor', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sparsekit-store-'));
    try {
      const store = new ActivationStore({
        width: WIDTH,
        memoryBudgetBytes: 3 * 10 * WIDTH * 4,
        shards: diskShards(dir),
      });
      store.add(rows(0, 10));
      const file = await readSafetensors(join(dir, 'activations-00000.safetensors'));
      expect(file.tensors.activations!.shape).toEqual([10, WIDTH]);
      expect(file.metadata.width).toBe(String(WIDTH));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('keeps a uniform reservoir sample without a sink, or refuses past the budget', () => {
    const budget = 200 * WIDTH * 4;
    const sample = new ActivationStore({
      width: WIDTH,
      memoryBudgetBytes: budget,
      whenFull: 'reservoir',
      seed: 5,
    });
    for (let i = 0; i < 100; i++) sample.add(rows(i * 100, 100));
    expect(sample.rows).toBe(200);
    expect(sample.rowsSeen).toBe(10_000);
    const ids = idsOf(sample, 50);
    const mean = ids.reduce((a, b) => a + b, 0) / ids.length;
    // Uniform over 0..9999: mean 5000, standard error 2887 / sqrt(200) = 204.
    expect(Math.abs(mean - 5000)).toBeLessThan(800);
    expect(new Set(ids).size).toBe(200);
    expect(sample.peakBytes).toBeLessThanOrEqual(budget);
    const strict = new ActivationStore({ width: WIDTH, memoryBudgetBytes: budget });
    expect(() => strict.add(rows(0, 201))).toThrow(ActivationStoreFullError);
  });

  it('collects from a hook site, and refuses rows of another width or non-finite values', () => {
    const store = new ActivationStore({ width: WIDTH });
    const hooks = new Hooks();
    const handle = store.collect(hooks, 'mlp.hidden', { blocks: [1] });
    const context = { site: 'mlp.hidden' as const, batch: 2, seq: 3, position: 0 };
    hooks.run(rows(0, 6), [2, 3, WIDTH], { ...context, block: 1 });
    hooks.run(rows(6, 6), [2, 3, WIDTH], { ...context, block: 0 });
    expect(store.rows).toBe(6);
    handle.remove();
    hooks.run(rows(0, 6), [2, 3, WIDTH], { ...context, block: 1 });
    expect(store.rows).toBe(6);
    expect(() => store.add(new Tensor('f32', [2, 4], new Float32Array(8)))).toThrow(/activation rows/);
    expect(() => store.add(Float32Array.of(1, 2, 3, Number.NaN, 5, 6, 7, 8))).toThrow(/finite/);
    expect(() => new ActivationStore({ width: 1000, memoryBudgetBytes: 100 })).toThrow(/too small/);
  });
});
