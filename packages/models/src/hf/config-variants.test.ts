// Config fields that change the computation: read and implemented, or refused by name.
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Tensor } from '@sparsekit/core';
import { readSafetensors, writeSafetensors } from '@sparsekit/core/node';
import { afterAll, describe, expect, it } from 'vitest';
import { configFromHf, configToHf } from '../config.js';
import { UnsupportedModelError } from '../errors.js';
import { inverseFrequencies } from '../rope.js';
import type { DenseMlp } from '../runtime/mlp.js';
import { hfTinyDir, hfTinyExpected } from './hf-tiny.test-util.js';
import { loadHfModel } from './load.js';
import { saveModel } from './save.js';

const work = mkdtempSync(join(tmpdir(), 'sparsekit-config-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

/** A copy of an hf-tiny checkpoint with config fields changed (undefined deletes) and tensors dropped. */
async function variant(
  family: 'gpt2' | 'opt' | 'llama',
  name: string,
  fields: Record<string, unknown>,
  drop?: (tensor: string) => boolean,
): Promise<string> {
  const dir = join(work, name);
  cpSync(hfTinyDir(family), dir, { recursive: true });
  const config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
  for (const [k, v] of Object.entries(fields)) {
    if (v === undefined) delete config[k];
    else config[k] = v;
  }
  writeFileSync(join(dir, 'config.json'), JSON.stringify(config));
  if (drop !== undefined) {
    const { tensors } = await readSafetensors(join(dir, 'model.safetensors'));
    for (const t of Object.keys(tensors)) if (drop(t)) delete tensors[t];
    await writeSafetensors(join(dir, 'model.safetensors'), tensors);
  }
  return dir;
}

const ids = (family: 'gpt2' | 'opt' | 'llama') => {
  const want = hfTinyExpected(family);
  return new Tensor('i32', [1, want.tokens.length], Int32Array.from(want.tokens));
};

describe('rotary parameters', () => {
  it("reads transformers 5's rope_parameters (no top-level rope_theta)", async () => {
    const v5 = await variant('llama', 'rope-v5', {
      rope_theta: undefined,
      rope_parameters: { rope_type: 'default', rope_theta: 5e5 },
    });
    const v4 = await variant('llama', 'rope-v4', { rope_theta: 5e5 });
    const a = (await loadHfModel(v5)).model;
    expect(a.config.ropeTheta).toBe(5e5);
    expect(a.logits(ids('llama')).data).toEqual((await loadHfModel(v4)).model.logits(ids('llama')).data);
    const base = (await loadHfModel(hfTinyDir('llama'))).model;
    expect(a.logits(ids('llama')).data).not.toEqual(base.logits(ids('llama')).data);
  });

  it('linear and llama3 scaling rescale the inverse frequencies as transformers does', () => {
    const plain = inverseFrequencies(128, 5e5);
    const linear = inverseFrequencies(128, 5e5, { type: 'linear', factor: 4 });
    expect(linear).toAllClose(
      plain.map((f) => f / 4),
      { atol: 0, rtol: 1e-6 },
    );
    const l3 = {
      type: 'llama3' as const,
      factor: 8,
      lowFreqFactor: 1,
      highFreqFactor: 4,
      originalMaxPositions: 8192,
    };
    const scaled = inverseFrequencies(128, 5e5, l3);
    const near = (a: number, b: number) => expect(Math.abs(a - b) / b).toBeLessThan(1e-6); // f32 storage
    for (let i = 0; i < plain.length; i++) {
      const wavelength = (2 * Math.PI) / plain[i]!;
      if (wavelength < 8192 / 4)
        expect(scaled[i]).toBe(plain[i]); // high frequencies kept
      else if (wavelength > 8192)
        expect(scaled[i]).toBeCloseTo(plain[i]! / 8, 12); // low ones divided
      else {
        const smooth = (8192 / wavelength - 1) / (4 - 1);
        near(scaled[i]!, (1 - smooth) * (plain[i]! / 8) + smooth * plain[i]!);
      }
    }
    // Each branch is exercised at these settings.
    const w = Array.from(plain, (f) => (2 * Math.PI) / f);
    expect(w.some((x) => x < 2048) && w.some((x) => x > 8192) && w.some((x) => x >= 2048 && x <= 8192)).toBe(
      true,
    );
  });

  it('refuses rope types it does not implement, by name, and saves the scaling it read', () => {
    const base = {
      model_type: 'llama',
      hidden_size: 32,
      num_attention_heads: 4,
      num_hidden_layers: 1,
      vocab_size: 8,
      intermediate_size: 8,
      max_position_embeddings: 16,
    };
    expect(() =>
      configFromHf({ ...base, rope_parameters: { rope_type: 'yarn', rope_theta: 1e4, factor: 4 } }),
    ).toThrow(/yarn/);
    expect(() => configFromHf({ ...base, rope_scaling: { type: 'dynamic', factor: 2 } })).toThrow(
      UnsupportedModelError,
    );
    const scaling = {
      rope_type: 'llama3',
      factor: 8,
      low_freq_factor: 1,
      high_freq_factor: 4,
      original_max_position_embeddings: 8192,
    };
    const c = configFromHf({ ...base, rope_theta: 5e5, rope_scaling: scaling });
    const saved = configToHf(c);
    expect(saved).toMatchObject({
      rope_theta: 5e5,
      rope_scaling: scaling,
      rope_parameters: { ...scaling, rope_theta: 5e5 },
    });
    expect(configFromHf(saved)).toEqual(c);
  });
});

describe('positions', () => {
  it('refuses a model of fewer than 2 positions (nothing to predict from)', async () => {
    const dir = await variant('llama', 'one-position', { max_position_embeddings: 1 });
    await expect(loadHfModel(dir)).rejects.toThrow(/maxPositions/);
  });
});

describe('GPT-2 attention scaling flags', () => {
  it('scale_attn_by_inverse_layer_idx divides block i scores by i + 1; scale_attn_weights: false drops 1/sqrt(d)', async () => {
    for (const [fields, factor] of [
      [{ scale_attn_by_inverse_layer_idx: true }, (i: number) => 1 / (i + 1)],
      [{ scale_attn_weights: false }, () => Math.sqrt(8)],
    ] as const) {
      const flagged = (await loadHfModel(await variant('gpt2', `gpt2-${Object.keys(fields)[0]}`, fields)))
        .model;
      // The same scores from plain attention with the queries scaled.
      const plain = (await loadHfModel(hfTinyDir('gpt2'))).model;
      plain.params.blocks.forEach((b, i) => {
        const w = b.q.getWeight();
        b.q.setWeight(
          new Tensor(
            'f32',
            w.shape,
            w.data.map((x) => x * factor(i)),
          ),
        );
        b.q.bias!.set(b.q.bias!.map((x) => x * factor(i)));
      });
      expect(flagged.logits(ids('gpt2')).data).toAllClose(plain.logits(ids('gpt2')).data, {
        atol: 1e-5,
        rtol: 1e-5,
      });
      expect(configToHf(flagged.config)).toMatchObject(fields);
    }
    expect(() =>
      configFromHf({
        ...JSON.parse(readFileSync(join(hfTinyDir('gpt2'), 'config.json'), 'utf8')),
        add_cross_attention: true,
      }),
    ).toThrow(/cross/);
  });
});

describe('OPT without elementwise-affine LayerNorms', () => {
  it('loads without norm tensors, equals unit norms, and saves the flag back', async () => {
    const dir = await variant('opt', 'opt-no-affine', { layer_norm_elementwise_affine: false }, (t) =>
      t.includes('layer_norm'),
    );
    const { model } = await loadHfModel(dir);
    const plain = (await loadHfModel(hfTinyDir('opt'))).model;
    for (const b of plain.params.blocks) {
      for (const n of [b.attentionNorm, b.mlpNorm]) {
        n.weight.fill(1);
        n.bias?.fill(0);
      }
    }
    plain.params.finalNorm!.weight.fill(1);
    plain.params.finalNorm!.bias?.fill(0);
    expect(model.logits(ids('opt')).data).toAllClose(plain.logits(ids('opt')).data, {
      atol: 1e-6,
      rtol: 1e-6,
    });
    expect((model.params.blocks[0]!.mlp as DenseMlp).up.name).toBe('layers.0.mlp.up_proj');
    const saved = join(work, 'opt-no-affine-saved');
    await saveModel(model, saved);
    expect(JSON.parse(readFileSync(join(saved, 'config.json'), 'utf8')).layer_norm_elementwise_affine).toBe(
      false,
    );
    expect((await loadHfModel(saved)).model.logits(ids('opt')).data).toEqual(model.logits(ids('opt')).data);
  });
});

describe('sliding-window attention (Mistral)', () => {
  it('a mistral config with sliding_window equals the llama model under a causal window mask', async () => {
    const dir = await variant('llama', 'mistral', { model_type: 'mistral', sliding_window: 3 });
    const { model } = await loadHfModel(dir);
    expect(model.config.slidingWindow).toBe(3);
    const llama = (await loadHfModel(hfTinyDir('llama'))).model;
    const windowed = llama.logits(ids('llama'), { mask: { kind: 'causal', window: 3 } }).data;
    expect(model.logits(ids('llama')).data).toEqual(windowed);
    expect(windowed).not.toEqual(llama.logits(ids('llama')).data);
    expect(configToHf(model.config)).toMatchObject({ model_type: 'mistral', sliding_window: 3 });
  });
});
