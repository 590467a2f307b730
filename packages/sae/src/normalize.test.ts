import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Rng, Tensor } from '@sparsekit/core';
import { writeSafetensors } from '@sparsekit/core/node';
import { describe, expect, it } from 'vitest';
import { readSaeLens } from './node.js';
import { normalizeRows, Sae } from './sae.js';
import { foldScalingFactor, SaeFileError } from './saelens.js';

const [d, rows] = [6, 5];
const rng = new Rng(8);
const x = Float32Array.from(rng.normalArray(rows * d), (v, i) => v * 10 + (i % d));

/** relu(x) - relu(-x) = x: an SAE that reconstructs exactly. */
function exact(normalize: 'none' | 'constant_norm_rescale' | 'layer_norm') {
  const wEnc = new Float32Array(d * 2 * d);
  const wDec = new Float32Array(2 * d * d);
  for (let j = 0; j < d; j++) {
    wEnc[j * 2 * d + j] = 1;
    wEnc[j * 2 * d + d + j] = -1;
    wDec[j * d + j] = 1;
    wDec[(d + j) * d + j] = -1;
  }
  return new Sae(
    { architecture: 'standard', dIn: d, dSae: 2 * d, normalize },
    { wEnc, bEnc: new Float32Array(2 * d), wDec, bDec: new Float32Array(d) },
  );
}

describe("SAELens' input normalisations", () => {
  it('constant_norm_rescale gives rows of norm sqrt(d); layer_norm rows of mean 0, unbiased std 1', () => {
    const c = normalizeRows(x, d, 'constant_norm_rescale').x;
    const l = normalizeRows(x, d, 'layer_norm').x;
    for (let r = 0; r < rows; r++) {
      const row = c.subarray(r * d, (r + 1) * d);
      expect(Math.hypot(...row)).toBeCloseTo(Math.sqrt(d), 4);
      const lr = Array.from(l.subarray(r * d, (r + 1) * d));
      const mean = lr.reduce((a, b) => a + b) / d;
      const std = Math.sqrt(lr.reduce((a, b) => a + (b - mean) ** 2, 0) / (d - 1));
      expect(mean).toBeCloseTo(0, 5);
      expect(std).toBeCloseTo(1, 3);
    }
  });

  it.each(['none', 'constant_norm_rescale', 'layer_norm'] as const)(
    '%s: forward undoes it (an exact SAE gives x back)',
    (mode) => {
      const out = exact(mode).forward(x);
      expect(out.reconstruction).toAllClose(x, { atol: 1e-4, rtol: 1e-5 });
    },
  );

  it('folding a scaling factor c: the SAE on x equals the SAE on c x, unscaled', () => {
    const sae = new Sae(
      { architecture: 'topk', dIn: d, dSae: 12, k: 3 },
      {
        wEnc: rng.normalArray(d * 12),
        bEnc: rng.normalArray(12),
        wDec: rng.normalArray(12 * d),
        bDec: rng.normalArray(d),
      },
    );
    const c = 0.37;
    const onScaled = sae.forward(x.map((v) => v * c));
    const folded = new Sae(
      { architecture: 'topk', dIn: d, dSae: 12, k: 3 },
      {
        wEnc: Float32Array.from(sae.params.wEnc),
        bEnc: Float32Array.from(sae.params.bEnc),
        wDec: Float32Array.from(sae.params.wDec),
        bDec: Float32Array.from(sae.params.bDec),
      },
    );
    foldScalingFactor(folded, c);
    const raw = folded.forward(x);
    expect(raw.latents).toAllClose(onScaled.latents, { atol: 1e-4, rtol: 1e-4 });
    expect(raw.reconstruction).toAllClose(
      onScaled.reconstruction.map((v) => v / c),
      { atol: 1e-4, rtol: 1e-4 },
    );
  });

  it('reads expected_average_only_in folders with activation_scaler.json folded in, and refuses them without', async () => {
    const work = mkdtempSync(join(tmpdir(), 'sparsekit-sae-norm-'));
    const p = {
      W_enc: rng.normalArray(d * 8),
      b_enc: rng.normalArray(8),
      W_dec: rng.normalArray(8 * d),
      b_dec: rng.normalArray(d),
    };
    await writeSafetensors(join(work, 'sae_weights.safetensors'), {
      W_enc: new Tensor('f32', [d, 8], p.W_enc),
      b_enc: new Tensor('f32', [8], p.b_enc),
      W_dec: new Tensor('f32', [8, d], p.W_dec),
      b_dec: new Tensor('f32', [d], p.b_dec),
    });
    writeFileSync(
      join(work, 'cfg.json'),
      JSON.stringify({
        architecture: 'standard',
        d_in: d,
        d_sae: 8,
        normalize_activations: 'expected_average_only_in',
        metadata: { sae_lens_version: '6.18.0' },
      }),
    );
    const error = await readSaeLens(work).catch((e) => e);
    expect(SaeFileError.isInstance(error)).toBe(true);
    expect(error.message).toMatch(/scaling_factor/);
    writeFileSync(join(work, 'activation_scaler.json'), JSON.stringify({ scaling_factor: 2 }));
    const { sae, config } = await readSaeLens(work);
    expect(config.normalize_activations).toBe('none');
    expect(sae.params.wEnc[0]).toBeCloseTo(p.W_enc[0]! * 2, 5);
    expect(sae.params.bDec[0]).toBeCloseTo(p.b_dec[0]! / 2, 5);
  });
});
