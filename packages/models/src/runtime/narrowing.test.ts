import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { InvalidArgumentError, Tensor } from '@sparsekit/core';
import { describe, expect, it } from 'vitest';
import { UnsupportedModelError } from '../errors.js';
import { hfTinyDir, hfTinyExpected } from '../hf/hf-tiny.test-util.js';
import { loadHfModel } from '../hf/load.js';
import { saveModel } from '../hf/save.js';
import type { Linear } from './linear.js';
import type { DenseMlp, GatedMlp } from './mlp.js';
import type { TransformerLM } from './model.js';

const tokensOf = (family: 'gpt2' | 'opt' | 'llama') => {
  const t = hfTinyExpected(family).tokens;
  return new Tensor('i32', [1, t.length], Int32Array.from(t));
};

/** Zero rows (outputs) or columns (inputs) of a layer: the simulate path of removing them. */
function zero(layer: Linear, rows: number[], cols: number[]): void {
  const w = Float32Array.from(layer.getWeight().data);
  const n = layer.inFeatures;
  for (const r of rows) w.fill(0, r * n, (r + 1) * n);
  for (const c of cols) for (let r = 0; r < layer.outFeatures; r++) w[r * n + c] = 0;
  layer.setWeight(new Tensor('f32', [layer.outFeatures, n], w));
}

const dims = (heads: number[], hd: number) =>
  heads.flatMap((h) => Array.from({ length: hd }, (_, d) => h * hd + d));

/** Zero MLP channels and query heads (by their o columns) the way structured pruning does. */
function zeroStructures(model: TransformerLM, channels: number[][], heads: number[][]): void {
  const hd = model.blockShape.headDim;
  model.params.blocks.forEach((b, i) => {
    const m = b.mlp as DenseMlp | GatedMlp;
    zero(m.up, channels[i]!, []);
    if (m.kind === 'gated') zero(m.gate, channels[i]!, []);
    zero(m.down, [], channels[i]!);
    zero(b.o, [], dims(heads[i]!, hd));
  });
}

describe.each(['gpt2', 'opt', 'llama'] as const)('%s: deleting MLP channels and heads', (family) => {
  it('gives the logits of the model with those structures zeroed (1e-5), in narrower layers', async () => {
    const { model } = await loadHfModel(hfTinyDir(family));
    const shape = model.blockShape;
    const before = model.parameterCount();
    const channels = [
      [0, 5, 9, shape.mlpChannels - 1],
      [1, 2, 3, 4],
    ];
    // Llama's fixture has 4 heads in 2 KV groups: one query head per group; the others lose whole heads.
    const heads =
      family === 'llama'
        ? [
            [0, 3],
            [1, 2],
          ]
        : [
            [0, 3],
            [2, 1],
          ];
    zeroStructures(model, channels, heads);
    const ids = tokensOf(family);
    const zeroed = model.logits(ids).data;
    model.removeMlpChannels(channels);
    model.removeHeads(heads);
    expect(model.logits(ids).data).toAllClose(zeroed, { atol: 1e-5, rtol: 0 });
    expect(model.blockShape).toEqual({
      mlpChannels: shape.mlpChannels - 4,
      heads: shape.heads - 2,
      kvHeads: family === 'llama' ? shape.kvHeads : shape.kvHeads - 2,
      headDim: shape.headDim,
    });
    const b = model.params.blocks[1]!;
    const m = b.mlp as DenseMlp;
    expect([m.up.outFeatures, m.down.inFeatures, b.q.outFeatures, b.o.inFeatures]).toEqual([
      shape.mlpChannels - 4,
      shape.mlpChannels - 4,
      (shape.heads - 2) * shape.headDim,
      (shape.heads - 2) * shape.headDim,
    ]);
    expect(model.parameterCount()).toBeLessThan(before);
    // Generation uses the narrower key/value cache.
    expect(model.createCache(1).kvHeads).toBe(model.blockShape.kvHeads);
  });
});

describe('narrowed models on disk', () => {
  it('a Llama model with fewer channels and heads saves and loads with the same logits', async () => {
    const { model } = await loadHfModel(hfTinyDir('llama'));
    model.removeMlpChannels([
      [3, 7],
      [0, 63],
    ]);
    model.removeHeads([
      [1, 2],
      [0, 3],
    ]);
    const ids = tokensOf('llama');
    const dir = await mkdtemp(join(tmpdir(), 'narrowed-'));
    try {
      await saveModel(model, dir);
      const back = await loadHfModel(dir);
      expect(back.model.config.intermediateSize).toBe(62);
      expect(back.model.config.numHeads).toBe(2);
      expect(back.model.logits(ids).data).toAllClose(model.logits(ids).data, { atol: 1e-6, rtol: 0 });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('GPT-2 with removed heads refuses to save (its config cannot say so); channels alone are fine', async () => {
    const { model } = await loadHfModel(hfTinyDir('gpt2'));
    const dir = await mkdtemp(join(tmpdir(), 'narrowed-'));
    try {
      model.removeMlpChannels([[0], [1]]);
      await saveModel(model, dir);
      expect((await loadHfModel(dir)).model.config.intermediateSize).toBe(model.config.intermediateSize);
      model.removeHeads([[0], [1]]);
      await expect(saveModel(model, dir)).rejects.toThrow(UnsupportedModelError);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('bad requests leave the model as it was', () => {
  it.each([
    ['an index out of range', (m: TransformerLM) => m.removeMlpChannels([[0], [64]])],
    [
      'a repeated index',
      (m: TransformerLM) =>
        m.removeMlpChannels([
          [1, 1],
          [0, 2],
        ]),
    ],
    ['blocks of different widths', (m: TransformerLM) => m.removeMlpChannels([[0], [1, 2]])],
    ['one list per block', (m: TransformerLM) => m.removeMlpChannels([[0]])],
    [
      'every channel',
      (m: TransformerLM) => m.removeMlpChannels([...Array(2)].map(() => [...Array(64).keys()])),
    ],
    ['unequal key/value groups', (m: TransformerLM) => m.removeHeads([[0], [0]])],
    [
      'a head out of range',
      (m: TransformerLM) =>
        m.removeHeads([
          [0, 4],
          [0, 2],
        ]),
    ],
  ])('%s', async (_, request) => {
    const { model } = await loadHfModel(hfTinyDir('llama'));
    const ids = tokensOf('llama');
    const before = model.logits(ids).data;
    const shape = model.blockShape;
    expect(() => request(model)).toThrow(InvalidArgumentError);
    expect(model.blockShape).toEqual(shape);
    expect(model.logits(ids).data).toEqual(before);
  });
});
