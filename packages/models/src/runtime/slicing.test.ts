import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { InvalidArgumentError, Rng, type StreamPoint, Tensor } from '@sparsekit/core';
import { randomOrthonormal } from '@sparsekit/test-utils';
import { describe, expect, it } from 'vitest';
import { UnsupportedModelError } from '../errors.js';
import { hfTinyDir, hfTinyExpected } from '../hf/hf-tiny.test-util.js';
import { loadHfModel } from '../hf/load.js';
import { saveModel } from '../hf/save.js';
import { type GatedMlp, mlpGroups } from './mlp.js';
import type { TransformerLM } from './model.js';

/** Columns 0..kept of a random orthogonal [n, n] matrix. */
function randomBasis(n: number, kept: number, seed: number): Tensor<'f32'> {
  const rng = new Rng(seed);
  return new Tensor(
    'f32',
    [n, kept],
    randomOrthonormal(() => rng.normal(), n, kept),
  );
}

function points(model: TransformerLM): StreamPoint[] {
  const out: StreamPoint[] = [{ at: 'embeddings' }];
  for (let b = 0; b < model.numBlocks; b++) out.push({ at: 'attention', block: b }, { at: 'mlp', block: b });
  return out;
}

const tokensOf = (family: 'gpt2' | 'opt' | 'llama') => {
  const t = hfTinyExpected(family).tokens;
  return new Tensor('i32', [1, t.length], Int32Array.from(t));
};

describe.each(['gpt2', 'opt', 'llama'] as const)('%s: computational invariance', (family) => {
  it('folding the norms leaves the logits unchanged (1e-4)', async () => {
    const { model } = await loadHfModel(hfTinyDir(family));
    const ids = tokensOf(family);
    const before = model.logits(ids).data;
    model.foldNorms();
    expect(model.config.norm).toBe('rmsnorm');
    expect(model.config.normWidth).toBe(model.hiddenSize);
    for (const b of model.params.blocks) expect([...b.attentionNorm.weight].every((w) => w === 1)).toBe(true);
    expect(model.logits(ids).data).toAllClose(before, { atol: 1e-4, rtol: 0 });
    model.foldNorms(); // idempotent
    expect(model.logits(ids).data).toAllClose(before, { atol: 1e-4, rtol: 0 });
  });

  it('rotating every point of the stream by an orthogonal matrix leaves the logits unchanged (1e-4)', async () => {
    const { model } = await loadHfModel(hfTinyDir(family));
    const ids = tokensOf(family);
    const before = model.logits(ids).data;
    model.foldNorms();
    const width = model.hiddenSize;
    points(model).forEach((p, i) => {
      model.rotateStream(p, randomBasis(width, width, 10 + i));
      expect(model.logits(ids).data).toAllClose(before, { atol: 1e-4, rtol: 0 });
    });
  });
});

describe('slicing the stream (llama)', () => {
  it('gives a genuinely smaller model that runs whole, block by block, and with the KV cache', async () => {
    const { model } = await loadHfModel(hfTinyDir('llama'));
    const ids = tokensOf('llama');
    const width = model.hiddenSize;
    const params = () =>
      model.params.embedTokens.length +
      model.params.lmHead.inFeatures * model.params.lmHead.outFeatures +
      model.params.blocks.reduce(
        (n, b) =>
          n +
          [b.q, b.k, b.v, b.o, ...mlpGroups(b.mlp).flat(), b.attentionShortcut, b.mlpShortcut].reduce(
            (m, l) => m + (l === undefined ? 0 : l.inFeatures * l.outFeatures),
            0,
          ),
        0,
      );
    const dense = params();
    model.foldNorms();
    const kept = width - 8;
    points(model).forEach((p, i) => {
      model.rotateStream(p, randomBasis(model.streamWidth(p), kept, 40 + i));
      expect(model.streamWidth(p)).toBe(kept);
    });
    expect(model.hiddenSize).toBe(kept);
    expect(model.config.hiddenSize).toBe(kept);
    expect(model.config.normWidth).toBe(width);
    for (const b of model.params.blocks) {
      const m = b.mlp as GatedMlp;
      expect([b.q.inFeatures, b.o.outFeatures, m.up.inFeatures, m.down.outFeatures]).toEqual([
        kept,
        kept,
        kept,
        kept,
      ]);
      expect([b.attentionShortcut!.inFeatures, b.mlpShortcut!.outFeatures]).toEqual([kept, kept]);
    }
    expect(params()).toBeLessThan(dense);
    const logits = model.logits(ids);
    expect(logits.shape).toEqual([1, ids.shape[1], model.vocabSize]);
    expect(logits.data.every(Number.isFinite)).toBe(true);
    // Block by block.
    let h = model.embed(ids);
    for (let b = 0; b < model.numBlocks; b++) h = model.runBlock(b, h);
    expect(model.head(h).data).toAllClose(logits.data, { atol: 1e-5, rtol: 0 });
    // Decoding with the cache.
    const cache = model.createCache(1);
    model.forward(new Tensor('i32', [1, 4], ids.data.slice(0, 4)), cache);
    const step = model.forward(new Tensor('i32', [1, 1], ids.data.slice(4, 5)), cache);
    expect(step.data).toAllClose(logits.data.subarray(4 * model.vocabSize, 5 * model.vocabSize), {
      atol: 1e-4,
      rtol: 0,
    });
  });

  it.each([
    ['every point sliced', true],
    ['the head kept at full width', false],
  ])('saves and loads a sliced model, %s (shortcuts and widths travel with it)', async (_, sliceHead) => {
    const { model } = await loadHfModel(hfTinyDir('llama'));
    const ids = tokensOf('llama');
    model.foldNorms();
    const all = points(model);
    all.forEach((p, i) => {
      const width = model.streamWidth(p);
      const last = i === all.length - 1;
      model.rotateStream(p, randomBasis(width, last && !sliceHead ? width : width - 8, 70 + i));
    });
    expect(model.config.outputWidth).toBe(sliceHead ? undefined : model.config.normWidth);
    const want = model.logits(ids).data;
    const dir = await mkdtemp(join(tmpdir(), 'sliced-'));
    try {
      await saveModel(model, dir);
      const { model: loaded } = await loadHfModel(dir);
      expect(loaded.config.hiddenSize).toBe(model.hiddenSize);
      expect(loaded.config.normWidth).toBe(model.config.normWidth);
      expect(loaded.config.outputWidth).toBe(model.config.outputWidth);
      expect(loaded.logits(ids).data).toAllClose(want, { atol: 1e-5, rtol: 0 });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('rejects rotations before folding, wrong shapes, NaNs, and partially sliced saves', async () => {
    const { model } = await loadHfModel(hfTinyDir('llama'));
    const width = model.hiddenSize;
    expect(() => model.rotateStream({ at: 'embeddings' }, randomBasis(width, width, 1))).toThrow(
      InvalidArgumentError,
    );
    model.foldNorms();
    expect(() => model.rotateStream({ at: 'embeddings' }, randomBasis(width - 1, 4, 1))).toThrow(
      /must be \[\d+, k\]/,
    );
    expect(() => model.rotateStream({ at: 'mlp', block: 99 }, randomBasis(width, 4, 1))).toThrow(
      InvalidArgumentError,
    );
    const nan = randomBasis(width, width, 1);
    nan.data[3] = Number.NaN;
    expect(() => model.rotateStream({ at: 'embeddings' }, nan)).toThrow(/rotation/);
    model.rotateStream({ at: 'embeddings' }, randomBasis(width, width - 8, 2));
    const dir = await mkdtemp(join(tmpdir(), 'sliced-'));
    try {
      await expect(saveModel(model, dir)).rejects.toThrow(/partially sliced/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('refuses to fold a post-norm model', async () => {
    const { model } = await loadHfModel(hfTinyDir('opt'));
    (model.config as { preNorm: boolean }).preNorm = false;
    expect(() => model.foldNorms()).toThrow(UnsupportedModelError);
  });
});

describe('checkpoint', () => {
  it('restores every parameter, shapes and config after folding and slicing', async () => {
    const { model } = await loadHfModel(hfTinyDir('llama'));
    const ids = tokensOf('llama');
    const before = model.logits(ids).data;
    const count = model.parameterCount();
    const config = model.config;
    const restore = model.checkpoint();
    model.foldNorms();
    points(model).forEach((p, i) => {
      model.rotateStream(p, randomBasis(model.streamWidth(p), model.streamWidth(p) - 8, 90 + i));
    });
    expect(model.parameterCount()).toBeLessThan(count);
    restore();
    expect(model.config).toBe(config);
    expect(model.parameterCount()).toBe(count);
    expect(model.params.blocks[0]!.attentionShortcut).toBeUndefined();
    expect(model.logits(ids).data).toEqual(before);
  });
});
