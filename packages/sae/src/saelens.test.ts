import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { f32ArrayToF16, Rng, SparsekitError, Tensor } from '@sparsekit/core';
import { writeSafetensors } from '@sparsekit/core/node';
import { describe, expect, it } from 'vitest';
import { readSaeLens, writeSaeLens } from './node.js';
import { Sae, type SaeArchitecture, type SaeParams } from './sae.js';
import { SAELENS_LAYOUT_VERSION, SaeFileError } from './saelens.js';

const work = mkdtempSync(join(tmpdir(), 'sparsekit-sae-'));
const [dIn, dSae] = [5, 8];
const rng = new Rng(2);
const params = (): Required<SaeParams> => ({
  wEnc: rng.normalArray(dIn * dSae),
  bEnc: rng.normalArray(dSae, 0, 0.1),
  wDec: rng.normalArray(dSae * dIn),
  bDec: rng.normalArray(dIn, 0, 0.1),
  threshold: rng.uniformArray(dSae, 0, 0.5),
  bGate: rng.normalArray(dSae, 0, 0.1),
  rMag: rng.normalArray(dSae, 0, 0.1),
  bMag: rng.normalArray(dSae, 0, 0.1),
});
const x = rng.normalArray(7 * dIn);
let n = 0;
const folder = () => join(work, `sae-${n++}`);

/** A folder written by hand in SAELens' layout (not by writeSaeLens). */
async function handWritten(cfg: Record<string, unknown>, tensors: Record<string, Tensor>) {
  const dir = folder();
  await writeSafetensors(join(dir, 'sae_weights.safetensors'), tensors);
  writeFileSync(join(dir, 'cfg.json'), JSON.stringify(cfg));
  return dir;
}
const t = (shape: number[], v: Float32Array) => new Tensor('f32', shape, v);

describe('SAELens folders', () => {
  it.each(['standard', 'topk', 'jumprelu', 'gated', 'batchtopk'] as SaeArchitecture[])(
    '%s round-trips: same weights, same latents, SAELens 6 config',
    async (architecture) => {
      const p = params();
      const sae = new Sae({ architecture, dIn, dSae, k: 3 }, p);
      const dir = folder();
      await writeSaeLens(dir, sae, {
        metadata: { hook_name: 'blocks.2.hook_resid_post', model_name: 'tiny-lm' },
      });
      const cfg = JSON.parse(readFileSync(join(dir, 'cfg.json'), 'utf8'));
      expect(cfg).toMatchObject({
        architecture: architecture === 'batchtopk' ? 'jumprelu' : architecture,
        d_in: dIn,
        d_sae: dSae,
        dtype: 'float32',
        apply_b_dec_to_input: true,
        normalize_activations: 'none',
        metadata: { sae_lens_version: SAELENS_LAYOUT_VERSION, hook_name: 'blocks.2.hook_resid_post' },
      });
      if (architecture === 'topk') expect(cfg.k).toBe(3);
      const back = await readSaeLens(dir);
      expect(back.config.metadata.model_name).toBe('tiny-lm');
      // batchtopk runs at inference with its threshold: exactly what JumpReLU computes.
      expect(back.sae.encode(x).latents).toEqual(sae.encode(x).latents);
      expect(back.sae.params.wDec).toEqual(p.wDec);
    },
  );

  it('reads hand-written folders: f16 weights, a pre-6.0 TopK config, b_dec stored [1, d_in]', async () => {
    const p = params();
    const half = (shape: number[], v: Float32Array) => new Tensor('f16', shape, f32ArrayToF16(v));
    const jump = await handWritten(
      {
        architecture: 'jumprelu',
        d_in: dIn,
        d_sae: dSae,
        dtype: 'torch.float16',
        metadata: { sae_lens_version: '6.5.0' },
      },
      {
        W_enc: half([dIn, dSae], p.wEnc),
        b_enc: half([dSae], p.bEnc),
        W_dec: half([dSae, dIn], p.wDec),
        b_dec: half([dIn], p.bDec),
        threshold: half([dSae], p.threshold),
      },
    );
    const j = await readSaeLens(jump);
    expect(j.sae.architecture).toBe('jumprelu');
    expect(j.config.dtype).toBe('float16');
    expect(j.sae.params.wEnc).toAllClose(p.wEnc, { atol: 2e-3, rtol: 1e-3 });
    // SAELens 5: activation_fn_str 'topk' with its k, hook_point, boolean normalize_activations.
    const old = await handWritten(
      {
        d_in: dIn,
        d_sae: dSae,
        activation_fn_str: 'topk',
        activation_fn_kwargs: { k: 2 },
        hook_point: 'blocks.1.hook_resid_pre',
        hook_layer: 1,
        model_name: 'gpt2-small',
        context_size: 128,
        normalize_activations: false,
        sae_lens_training_version: '3.5.0',
      },
      {
        W_enc: t([dIn, dSae], p.wEnc),
        b_enc: t([dSae], p.bEnc),
        W_dec: t([dSae, dIn], p.wDec),
        b_dec: t([1, dIn], p.bDec),
      },
    );
    const o = await readSaeLens(old);
    expect(o.sae.architecture).toBe('topk');
    expect(o.sae.k).toBe(2);
    expect(o.config.normalize_activations).toBe('none');
    expect(o.config.metadata).toMatchObject({
      hook_name: 'blocks.1.hook_resid_pre',
      model_name: 'gpt2-small',
      context_size: 128,
    });
    expect(o.sae.params.bDec).toEqual(p.bDec);
    // An old config without architecture and without topk is a standard SAE.
    const plain = await handWritten(
      { d_in: dIn, d_sae: dSae, activation_fn_str: 'relu' },
      {
        W_enc: t([dIn, dSae], p.wEnc),
        b_enc: t([dSae], p.bEnc),
        W_dec: t([dSae, dIn], p.wDec),
        b_dec: t([dIn], p.bDec),
      },
    );
    expect((await readSaeLens(plain)).sae.architecture).toBe('standard');
  });

  it('a TopK saved with rescale_acts_by_decoder_norm has its decoder norms folded (same latents times norms)', async () => {
    const p = params();
    const dir = await handWritten(
      {
        architecture: 'topk',
        d_in: dIn,
        d_sae: dSae,
        k: 3,
        rescale_acts_by_decoder_norm: true,
        metadata: { sae_lens_version: '6.18.0' },
      },
      {
        W_enc: t([dIn, dSae], p.wEnc),
        b_enc: t([dSae], p.bEnc),
        W_dec: t([dSae, dIn], p.wDec),
        b_dec: t([dIn], p.bDec),
      },
    );
    const { sae } = await readSaeLens(dir);
    // Unit decoder rows now.
    for (let j = 0; j < dSae; j++) {
      let s = 0;
      for (let d = 0; d < dIn; d++) s += sae.params.wDec[j * dIn + d]! ** 2;
      expect(Math.sqrt(s)).toBeCloseTo(1, 5);
    }
    // SAELens' forward with rescaling: top-k of pre * ||W_dec row||, then f / ||W_dec row|| decoded.
    const out = sae.forward(x);
    const norms = Array.from({ length: dSae }, (_, j) =>
      Math.sqrt(p.wDec.subarray(j * dIn, (j + 1) * dIn).reduce((s, v) => s + v * v, 0)),
    );
    for (let r = 0; r < 7; r++) {
      const pre = Array.from({ length: dSae }, (_, j) => {
        let s = p.bEnc[j]!;
        for (let d = 0; d < dIn; d++) s += (x[r * dIn + d]! - p.bDec[d]!) * p.wEnc[d * dSae + j]!;
        return s * norms[j]!;
      });
      const top = pre
        .map((v, j) => [v, j] as const)
        .sort((a, b) => b[0] - a[0])
        .slice(0, 3);
      for (let d = 0; d < dIn; d++) {
        let want = p.bDec[d]!;
        for (const [v, j] of top) want += (Math.max(0, v) / norms[j]!) * p.wDec[j * dIn + d]!;
        expect(out.reconstruction[r * dIn + d]).toBeCloseTo(want, 4);
      }
    }
  });

  it('refuses what SAELens users trip on, with typed errors naming the file and the fix', async () => {
    const p = params();
    const base = {
      W_enc: t([dIn, dSae], p.wEnc),
      b_enc: t([dSae], p.bEnc),
      W_dec: t([dSae, dIn], p.wDec),
      b_dec: t([dIn], p.bDec),
    };
    const cfg = { d_in: dIn, d_sae: dSae, metadata: { sae_lens_version: '6.18.0' } };
    const cases: [Record<string, unknown>, Record<string, Tensor>, RegExp][] = [
      [{ ...cfg, architecture: 'jumprelu' }, base, /missing threshold.*plain ReLU/],
      [{ ...cfg, architecture: 'standard' }, { ...base, b_gate: t([dSae], p.bGate) }, /unexpected b_gate/],
      [
        { ...cfg, architecture: 'standard' },
        { ...base, W_dec: t([dIn, dSae], p.wDec) },
        /W_dec has shape \[5, 8\], expected \[8, 5\]/,
      ],
      [{ ...cfg }, base, /has no 'architecture'/],
      [{ ...cfg, architecture: 'matryoshka' }, base, /is not one of/],
      [{ ...cfg, architecture: 'topk', k: 99 }, base, /k 99 exceeds d_sae/],
      [{ ...cfg, architecture: 'standard', d_sae: 0 }, base, /d_sae must be a positive integer/],
      [{ ...cfg, architecture: 'standard', normalize_activations: 'whiten' }, base, /normalize_activations/],
      [{ ...cfg, architecture: 'gated' }, base, /missing b_gate, r_mag, b_mag/],
    ];
    for (const [c, tensors, message] of cases) {
      const dir = await handWritten(c, tensors);
      const error = await readSaeLens(dir).catch((e) => e);
      expect(SaeFileError.isInstance(error), String(error)).toBe(true);
      expect(error.message).toMatch(message);
    }
    const nanW = Float32Array.from(p.wEnc);
    nanW[0] = Number.NaN;
    const nan = await handWritten(
      { ...cfg, architecture: 'standard' },
      { ...base, W_enc: t([dIn, dSae], nanW) },
    );
    await expect(readSaeLens(nan)).rejects.toThrow(/finite/);
    // Not a folder, bad JSON, a damaged weights file.
    const missing = await readSaeLens(join(work, 'nowhere')).catch((e) => e);
    expect(SparsekitError.isInstance(missing) && missing.code).toBe('core/io');
    const badJson = await handWritten({ ...cfg, architecture: 'standard' }, base);
    writeFileSync(join(badJson, 'cfg.json'), '{"d_in": 5,');
    await expect(readSaeLens(badJson)).rejects.toThrow(/not valid JSON/);
    const damaged = await handWritten({ ...cfg, architecture: 'standard' }, base);
    const bytes = readFileSync(join(damaged, 'sae_weights.safetensors'));
    writeFileSync(join(damaged, 'sae_weights.safetensors'), bytes.subarray(0, 40));
    const e = await readSaeLens(damaged).catch((x) => x);
    expect(SparsekitError.isInstance(e)).toBe(true);
    // A batch-level SAE without an inference threshold cannot be written as SAELens reads it.
    const untrained = new Sae({ architecture: 'mutual-choice', dIn, dSae, k: 2 }, {
      ...p,
      threshold: undefined,
    } as SaeParams);
    await expect(writeSaeLens(folder(), untrained)).rejects.toThrow(/has none/);
  });
});
