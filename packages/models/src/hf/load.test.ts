import { readFileSync, statSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  bf16BitsToF32,
  f16BitsToF32,
  f32ToBf16Bits,
  f32ToF16Bits,
  IOError,
  ShapeMismatchError,
  Tensor,
} from '@sparsekit/core';
import { fromDense } from '@sparsekit/sparse-formats';
import { fixturePath } from '@sparsekit/test-utils';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MissingTensorError, UnsupportedModelError } from '../errors.js';
import { loadHfModel } from './load.js';
import { saveModel } from './save.js';

interface Expected {
  tokens: number[];
  text: string;
  logits: number[][];
  argmax: number[];
}

const FAMILIES = ['gpt2', 'opt', 'llama'] as const;

function expected(family: string): Expected {
  return JSON.parse(readFileSync(fixturePath(import.meta.url, 'hf-tiny', family, 'expected.json'), 'utf8'));
}

describe.each(FAMILIES)('%s checkpoint (Hugging Face layout, float64 reference logits)', (family) => {
  const dir = fixturePath(import.meta.url, 'hf-tiny', family);

  it('loads, tokenizes, and reproduces the reference logits to 1e-4', async () => {
    const { model, tokenizer } = await loadHfModel(dir);
    const want = expected(family);
    expect(tokenizer!.encode(want.text)).toEqual(want.tokens);
    const ids = new Tensor('i32', [1, want.tokens.length], Int32Array.from(want.tokens));
    const logits = model.logits(ids);
    expect(logits.shape).toEqual([1, want.tokens.length, model.vocabSize]);
    expect(logits.data).toAllClose(want.logits.flat(), { atol: 1e-4, rtol: 0 });
  });

  it('decodes with the KV cache exactly as a full forward pass does, and runs blocks one at a time', async () => {
    const { model } = await loadHfModel(dir);
    const want = expected(family);
    const n = want.tokens.length;
    const cache = model.createCache(1);
    model.forward(new Tensor('i32', [1, 5], Int32Array.from(want.tokens.slice(0, 5))), cache);
    for (let t = 5; t < n; t++) {
      const step = model.forward(new Tensor('i32', [1, 1], Int32Array.of(want.tokens[t]!)), cache);
      expect(step.data).toAllClose(want.logits[t]!, { atol: 1e-4, rtol: 0 });
    }
    // Block by block: embed, run each block, head.
    const ids = new Tensor('i32', [1, n], Int32Array.from(want.tokens));
    let hidden = model.embed(ids);
    for (let i = 0; i < model.numBlocks; i++) hidden = model.runBlock(i, hidden);
    expect(model.head(hidden).data).toAllClose(want.logits.flat(), { atol: 1e-4, rtol: 0 });
  });

  it('saves dense (HF names) and packed (sparse formats) folders that load to the same logits', async () => {
    const { model, tokenizer } = await loadHfModel(dir);
    const want = expected(family);
    const ids = new Tensor('i32', [2, 6], Int32Array.from(want.tokens));
    // Prune and pack a few layers so that the packed folder really holds sparse formats.
    const layers = model.linearLayers();
    layers[0]!.setMatrix(fromDense(layers[0]!.getWeight(), 'csr', { threshold: 0.05 }));
    layers[1]!.setMatrix(fromDense(layers[1]!.getWeight(), 'bitmask', { threshold: 0.05, dtype: 'f16' }));
    const before = model.logits(ids);
    const tmp = await mkdtemp(join(tmpdir(), 'sparsekit-models-'));
    try {
      for (const layout of ['dense', 'packed'] as const) {
        const out = join(tmp, layout);
        await saveModel(model, out, { layout, tokenizerJson: JSON.stringify(tokenizer!.json) });
        const again = await loadHfModel(out);
        expect(again.model.logits(ids).data).toAllClose(before.data, { atol: 1e-6, rtol: 1e-6 });
        expect(again.tokenizer!.encode(want.text)).toEqual(want.tokens);
        if (layout === 'packed') {
          expect(again.model.linearLayers()[0]!.matrix.format).toBe('csr');
          expect(again.model.linearLayers()[1]!.matrix.format).toBe('bitmask');
        }
      }
    } finally {
      await rm(tmp, { recursive: true, force: true });
    }
  });
});

describe('saving in half precision', () => {
  it('writes f16 / bf16 weights (half the bytes, torch_dtype set) that load to the rounded model', async () => {
    const dir = fixturePath(import.meta.url, 'hf-tiny', 'llama');
    const { model } = await loadHfModel(dir);
    const want = expected('llama');
    const ids = new Tensor('i32', [1, want.tokens.length], Int32Array.from(want.tokens));
    const before = model.logits(ids);
    const tmp = await mkdtemp(join(tmpdir(), 'sparsekit-models-'));
    try {
      await saveModel(model, join(tmp, 'f32'));
      const full = statSync(join(tmp, 'f32', 'model.safetensors')).size;
      for (const [dtype, torch] of [
        ['f16', 'float16'],
        ['bf16', 'bfloat16'],
      ] as const) {
        const out = join(tmp, dtype);
        await saveModel(model, out, { dtype });
        const config = JSON.parse(readFileSync(join(out, 'config.json'), 'utf8'));
        expect(config.torch_dtype).toBe(torch);
        const bytes = statSync(join(out, 'model.safetensors')).size;
        expect(bytes).toBeLessThan(0.55 * full);
        const again = await loadHfModel(out);
        // Every weight is the original rounded to the half format.
        const a = again.model.linearLayers()[0]!.getWeight().data;
        const b = model.linearLayers()[0]!.getWeight().data;
        const round =
          dtype === 'f16'
            ? (x: number) => f16BitsToF32(f32ToF16Bits(x))
            : (x: number) => bf16BitsToF32(f32ToBf16Bits(x));
        expect(Array.from(a)).toEqual(Array.from(b, round));
        expect(again.model.logits(ids).data).toAllClose(before.data, {
          atol: dtype === 'f16' ? 1e-2 : 8e-2,
          rtol: 0,
        });
      }
      await expect(saveModel(model, join(tmp, 'bad'), { dtype: 'f8' as never })).rejects.toThrow(/dtype/);
    } finally {
      await rm(tmp, { recursive: true, force: true });
    }
  });
});

describe('loading errors', () => {
  let tmp: string;
  beforeAll(async () => {
    tmp = await mkdtemp(join(tmpdir(), 'sparsekit-models-bad-'));
  });
  afterAll(async () => {
    await rm(tmp, { recursive: true, force: true });
  });

  it('names what is wrong: missing folder, unsupported type, missing tensor', async () => {
    await expect(loadHfModel(join(tmp, 'nope'))).rejects.toThrow(IOError);
    const llama = fixturePath(import.meta.url, 'hf-tiny', 'llama');
    const config = JSON.parse(readFileSync(join(llama, 'config.json'), 'utf8'));
    const bad = join(tmp, 'bad');
    await saveModel((await loadHfModel(llama)).model, bad);
    await writeFile(join(bad, 'config.json'), JSON.stringify({ ...config, model_type: 'mamba' }));
    await expect(loadHfModel(bad)).rejects.toThrow(UnsupportedModelError);
    await writeFile(join(bad, 'config.json'), JSON.stringify({ ...config, num_hidden_layers: 3 }));
    await expect(loadHfModel(bad)).rejects.toThrow(MissingTensorError);
    await writeFile(join(bad, 'config.json'), JSON.stringify({ ...config, intermediate_size: 48 }));
    await expect(loadHfModel(bad)).rejects.toThrow(ShapeMismatchError);
    await writeFile(join(bad, 'config.json'), '{ not json');
    await expect(loadHfModel(bad)).rejects.toThrow(/not a JSON object/);
    // Fewer layers than the checkpoint holds would drop a block: refused, naming a weight of it.
    await writeFile(join(bad, 'config.json'), JSON.stringify({ ...config, num_hidden_layers: 1 }));
    await expect(loadHfModel(bad)).rejects.toThrow(
      /layers\.1\..* belongs to block 1, but config.json gives 1 layers/,
    );
    // Config ids and tokenizer ids must fit the vocabulary; a tokenizer.json that does not parse is named.
    await writeFile(join(bad, 'config.json'), JSON.stringify({ ...config, bos_token_id: 999 }));
    await expect(loadHfModel(bad)).rejects.toThrow(
      /config bosTokenId = 999: must be a token id in \[0, 64\)/,
    );
    await writeFile(join(bad, 'config.json'), JSON.stringify(config));
    const tokenizer = JSON.parse(readFileSync(join(llama, 'tokenizer.json'), 'utf8'));
    tokenizer.model.vocab.w1 = 999;
    await writeFile(join(bad, 'tokenizer.json'), JSON.stringify(tokenizer));
    await expect(loadHfModel(bad)).rejects.toThrow(/token id 999, outside the model's vocabulary of 64/);
    await writeFile(join(bad, 'tokenizer.json'), '{}');
    await expect(loadHfModel(bad)).rejects.toThrow(/tokenizer.json is not a tokenizer this runtime reads/);
  });

  it('refuses NaN or Inf anywhere in the checkpoint, naming the tensor', async () => {
    const llama = fixturePath(import.meta.url, 'hf-tiny', 'llama');
    const { model } = await loadHfModel(llama);
    model.params.blocks[1]!.mlpNorm.weight[3] = Number.NaN;
    const bad = join(tmp, 'nan-norm');
    await saveModel(model, bad);
    await expect(loadHfModel(bad)).rejects.toThrow(
      /model\.layers\.1\.post_attention_layernorm\.weight holds a non-finite value \(NaN\) at flat index 3/,
    );
  });

  it('rejects out-of-range token ids and too-long sequences with typed errors', async () => {
    const { model } = await loadHfModel(fixturePath(import.meta.url, 'hf-tiny', 'gpt2'));
    expect(() => model.logits(new Tensor('i32', [1, 2], Int32Array.of(1, 64)))).toThrow(/token id/);
    expect(() => model.logits(new Tensor('i32', [1, 41], new Int32Array(41)))).toThrow(/at most 40/);
  });
});
