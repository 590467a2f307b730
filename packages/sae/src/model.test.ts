import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ActivationStore, Rng, Tensor } from '@sparsekit/core';
import { loadHfModel, tinyLmPath } from '@sparsekit/models/node';
import { describe, expect, it } from 'vitest';
import {
  collectActivations,
  featureData,
  hookName,
  parseHookName,
  type SaeSite,
  spliceScores,
} from './model.js';
import { Sae } from './sae.js';

const { model, tokenizer } = await loadHfModel(tinyLmPath());
const text = tokenizer!.encode(readFileSync(join(tinyLmPath(), 'test.txt'), 'utf8').slice(0, 4000));
/** `batch` windows of `seq` tokens of tiny-lm's test text. */
const textIds = (batch: number, seq: number) =>
  new Tensor('i32', [batch, seq], Int32Array.from(text.slice(0, batch * seq)));
const H = model.config.hiddenSize;
const rng = new Rng(3);
const ids = (batch: number, seq: number) =>
  new Tensor(
    'i32',
    [batch, seq],
    Int32Array.from({ length: batch * seq }, () => rng.int(model.vocabSize)),
  );
const site: SaeSite = { site: 'stream', point: { at: 'mlp', block: 1 } };

describe('an SAE at a hook site of tiny-lm', () => {
  it('names sites as TransformerLens does, and reads the names back', () => {
    const sites: SaeSite[] = [
      { site: 'stream', point: { at: 'embeddings' } },
      { site: 'stream', point: { at: 'attention', block: 2 } },
      site,
      { site: 'mlp.hidden', block: 3 },
      { site: 'attention.output', block: 0 },
    ];
    expect(sites.map(hookName)).toEqual([
      'blocks.0.hook_resid_pre',
      'blocks.2.hook_resid_mid',
      'blocks.1.hook_resid_post',
      'blocks.3.mlp.hook_post',
      'blocks.0.attn.hook_z',
    ]);
    for (const s of sites) expect(parseHookName(hookName(s))).toEqual(s);
    expect(parseHookName('blocks.2.hook_resid_pre')).toEqual({
      site: 'stream',
      point: { at: 'mlp', block: 1 },
    });
    expect(() => parseHookName('model.layers.2')).toThrow(/blocks/);
  });

  it('collects the residual stream after block 1 (equal to running the blocks one by one)', async () => {
    const store = new ActivationStore({ width: H });
    const batch = ids(2, 16);
    const n = await collectActivations(model, site, [batch], store);
    expect(n).toBe(32);
    let h = model.embed(batch);
    for (let b = 0; b <= 1; b++) h = model.runBlock(b, h);
    const rows = [...store.batches(32)][0]!;
    // Shuffled: compare as sets of rows by their sums.
    const sums = (a: Float32Array) =>
      Array.from({ length: 32 }, (_, r) => a.subarray(r * H, (r + 1) * H).reduce((s, v) => s + v, 0)).sort();
    expect(sums(rows.data)).toAllClose(sums(h.data), { atol: 1e-4, rtol: 1e-5 });
  });

  it('ce_loss_score is 1 for an exact SAE and the ablation hurts; kl_div_score likewise', async () => {
    // relu(x) - relu(-x) = x: an exact 2H-feature SAE.
    const wEnc = new Float32Array(H * 2 * H);
    const wDec = new Float32Array(2 * H * H);
    for (let d = 0; d < H; d++) {
      wEnc[d * 2 * H + d] = 1;
      wEnc[d * 2 * H + H + d] = -1;
      wDec[d * H + d] = 1;
      wDec[(H + d) * H + d] = -1;
    }
    const exact = new Sae(
      { architecture: 'standard', dIn: H, dSae: 2 * H },
      { wEnc, bEnc: new Float32Array(2 * H), wDec, bDec: new Float32Array(H) },
    );
    const s = await spliceScores(model, site, exact, [textIds(2, 24)]);
    expect(s.tokens).toBe(2 * 23);
    expect(s.ce_loss_with_sae).toBeCloseTo(s.ce_loss_clean, 4);
    expect(s.ce_loss_with_ablation).toBeGreaterThan(s.ce_loss_clean + 0.5);
    expect(s.ce_loss_score).toBeCloseTo(1, 3);
    expect(s.kl_div_with_sae).toBeLessThan(1e-6);
    expect(s.kl_div_score).toBeCloseTo(1, 5);
  });

  it('feature data: density, top contexts (sorted, windows around the token) and logit effects', async () => {
    const dSae = 32;
    const sae = new Sae(
      { architecture: 'topk', dIn: H, dSae, k: 4 },
      {
        wEnc: rng.normalArray(H * dSae, 0, 0.1),
        bEnc: new Float32Array(dSae),
        wDec: rng.normalArray(dSae * H, 0, 0.1),
        bDec: new Float32Array(H),
      },
    );
    const batches = [ids(2, 20), ids(1, 20)];
    const data = await featureData(model, site, sae, batches, {
      features: [0, 5],
      top: 3,
      before: 4,
      after: 1,
      logits: 5,
      unembed: (direction) => model.head(new Tensor('f32', [1, 1, H], direction)).data,
    });
    expect(data.map((f) => f.feature)).toEqual([0, 5]);
    // Brute force: the feature's activations over every token.
    const all: { v: number; b: number; w: number; p: number }[] = [];
    for (const [w, batch] of batches.entries()) {
      let h = model.embed(batch);
      for (let b = 0; b <= 1; b++) h = model.runBlock(b, h);
      const z = sae.encode(h.data).latents;
      const seq = batch.shape[1]!;
      for (let r = 0; r < batch.size; r++)
        all.push({ v: z[r * dSae + 5]!, b: Math.floor(r / seq), p: r % seq, w });
    }
    const f5 = data[1]!;
    const positive = all.filter((a) => a.v > 0);
    expect(f5.density).toBeCloseTo(positive.length / all.length, 10);
    expect(f5.maxActivation).toBeCloseTo(Math.max(...all.map((a) => a.v)), 4);
    const acts = f5.topContexts.map((c) => c.activation);
    expect(acts).toEqual([...acts].sort((a, b) => b - a));
    for (const c of f5.topContexts) {
      expect(c.activations[c.at]).toBeCloseTo(c.activation, 6);
      expect(c.tokens.length).toBeLessThanOrEqual(6);
    }
    expect(f5.logitEffects!.positive).toHaveLength(5);
    expect(f5.logitEffects!.positive[0]!.value).toBeGreaterThanOrEqual(f5.logitEffects!.negative[0]!.value);
    JSON.stringify(data); // JSON-ready
    await expect(featureData(model, site, sae, batches, { features: [dSae] })).rejects.toThrow(/feature/);
  });
});
