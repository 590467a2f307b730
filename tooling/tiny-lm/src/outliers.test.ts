import { calibrationHooks, Tensor } from '@sparsekit/core';
import { loadHfModel, tinyLmPath } from '@sparsekit/models/node';
import { describe, expect, it } from 'vitest';
import { plantOutlierChannels } from './outliers.js';

describe('plantOutlierChannels', () => {
  it('keeps the function and makes a few input channels of every layer 30x larger', async () => {
    const { model } = await loadHfModel(tinyLmPath());
    const ids = new Tensor(
      'i32',
      [1, 32],
      Int32Array.from({ length: 32 }, (_, i) => (i * 37) % 511),
    );
    const norms = () => {
      const sums = new Map<string, Float64Array>();
      model.forward(ids, model.createCache(1), {
        hooks: calibrationHooks((layer, x) => {
          const s = sums.get(layer.name) ?? new Float64Array(layer.inFeatures);
          for (let i = 0; i < x.size; i++) s[i % layer.inFeatures]! += x.data[i]! ** 2;
          sums.set(layer.name, s);
        }),
      });
      return sums;
    };
    const ratio = (s: Float64Array) => {
      const sorted = [...s].sort((a, b) => a - b);
      return Math.sqrt(sorted.at(-1)! / sorted[sorted.length >> 1]!);
    };
    const before = model.logits(ids).data;
    const plain = norms();
    plantOutlierChannels(model);
    expect(model.logits(ids).data).toAllClose(before, { atol: 2e-3, rtol: 1e-3 });
    for (const [name, s] of norms()) {
      const before = plain.get(name)!;
      // Mean squares of the planted channels grow by 30^2; every other channel keeps its value.
      const grown = s.filter((v, j) => Math.abs(v / before[j]! - 900) < 1);
      const kept = s.filter((v, j) => Math.abs(v / before[j]! - 1) < 1e-2);
      expect(grown.length, name).toBeGreaterThanOrEqual(4);
      expect(grown.length + kept.length, name).toBe(s.length);
      expect(ratio(s), name).toBeGreaterThan(Math.max(10, ratio(before)));
    }
  });
});
