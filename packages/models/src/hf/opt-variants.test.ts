// OPT-350m's variants (post-LayerNorm blocks, embeddings of another width projected in and out) have
// no reference logits here; these tests check that the paths run, keep shapes, decode with the cache
// exactly as a full forward pass does, and survive save/load.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Rng, Tensor } from '@sparsekit/core';
import { describe, expect, it } from 'vitest';
import { configFromHf } from '../config.js';
import { TransformerLM } from '../runtime/model.js';
import { backendRef } from '../runtime/steps.js';
import { loadHfModel } from './load.js';
import { paramsFromHf } from './names.js';
import { saveModel } from './save.js';

function optVariant(): TransformerLM {
  const config = configFromHf({
    model_type: 'opt',
    vocab_size: 40,
    hidden_size: 16,
    num_hidden_layers: 2,
    num_attention_heads: 2,
    ffn_dim: 24,
    max_position_embeddings: 20,
    word_embed_proj_dim: 8,
    do_layer_norm_before: false,
    activation_function: 'relu',
  });
  const [V, H, D, F, P] = [40, 16, 8, 24, 22];
  const shapes = new Map<string, number[]>([
    ['model.decoder.embed_tokens.weight', [V, D]],
    ['model.decoder.embed_positions.weight', [P, H]],
    ['model.decoder.project_in.weight', [H, D]],
    ['model.decoder.project_out.weight', [D, H]],
  ]);
  for (let i = 0; i < 2; i++) {
    const p = `model.decoder.layers.${i}.`;
    for (const n of ['q_proj', 'k_proj', 'v_proj', 'out_proj']) {
      shapes.set(`${p}self_attn.${n}.weight`, [H, H]);
      shapes.set(`${p}self_attn.${n}.bias`, [H]);
    }
    for (const n of ['self_attn_layer_norm', 'final_layer_norm']) {
      shapes.set(`${p}${n}.weight`, [H]);
      shapes.set(`${p}${n}.bias`, [H]);
    }
    shapes.set(`${p}fc1.weight`, [F, H]);
    shapes.set(`${p}fc1.bias`, [F]);
    shapes.set(`${p}fc2.weight`, [H, F]);
    shapes.set(`${p}fc2.bias`, [H]);
  }
  const rng = new Rng(3);
  const tensors = new Map(
    [...shapes].map(([n, s]) => [
      n,
      new Tensor(
        'f32',
        s,
        rng.normalArray(
          s.reduce((a, b) => a * b),
          0,
          0.3,
        ),
      ),
    ]),
  );
  const backends = backendRef();
  const source = { where: 'test', names: () => [...tensors.keys()], get: (n: string) => tensors.get(n) };
  return new TransformerLM(config, paramsFromHf(config, source, backends), backends);
}

describe('OPT variants without reference logits', () => {
  it('post-norm blocks with project_in/out: cache decoding equals full forward; save/load keeps logits', async () => {
    const model = optVariant();
    expect(model.config.preNorm).toBe(false);
    expect(model.params.projectIn).toBeDefined();
    expect(model.params.finalNorm).toBeUndefined();
    const ids = Int32Array.from({ length: 10 }, (_, i) => (i * 7 + 3) % 40);
    const full = model.logits(new Tensor('i32', [1, 10], ids));
    expect(full.shape).toEqual([1, 10, 40]);
    const cache = model.createCache(1);
    model.forward(new Tensor('i32', [1, 6], ids.slice(0, 6)), cache);
    for (let t = 6; t < 10; t++) {
      const step = model.forward(new Tensor('i32', [1, 1], ids.slice(t, t + 1)), cache);
      expect(step.data).toAllClose(full.data.subarray(t * 40, (t + 1) * 40), { atol: 1e-5, rtol: 1e-5 });
    }
    const tmp = await mkdtemp(join(tmpdir(), 'sparsekit-opt-'));
    try {
      await saveModel(model, tmp);
      const again = await loadHfModel(tmp);
      expect(again.model.logits(new Tensor('i32', [1, 10], ids)).data).toAllClose(full.data, {
        atol: 1e-6,
        rtol: 1e-6,
      });
    } finally {
      await rm(tmp, { recursive: true, force: true });
    }
  });
});
