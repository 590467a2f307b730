import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-core/dist/register_all_gradients';
import { Rng } from '@sparsekit/core';
import { describe, expect, it } from 'vitest';
import { reconstructionMetrics } from '../metrics.js';
import type { SaeArchitecture } from '../sae.js';
import { trainSae, zipfDeficits } from './train.js';

// Data from a known sparse dictionary: 3 of 32 unit directions per row, magnitudes U(0.5, 1.5).
const [dIn, features, active] = [16, 32, 3];
const rng = new Rng(21);
const dictionary = rng.normalArray(features * dIn);
for (let f = 0; f < features; f++) {
  let n = 0;
  for (let d = 0; d < dIn; d++) n += dictionary[f * dIn + d]! ** 2;
  for (let d = 0; d < dIn; d++) dictionary[f * dIn + d]! /= Math.sqrt(n);
}
function sample(rows: number, r: Rng): Float32Array {
  const x = new Float32Array(rows * dIn);
  for (let i = 0; i < rows; i++)
    for (const f of r.sample(features, active)) {
      const m = r.uniform(0.5, 1.5);
      for (let d = 0; d < dIn; d++) x[i * dIn + d]! += m * dictionary[f * dIn + d]! + 0.3 / dIn;
    }
  return x;
}
function* batches(count: number, rows: number, seed: number) {
  const r = new Rng(seed);
  for (let i = 0; i < count; i++) yield sample(rows, r);
}
const heldOut = sample(256, new Rng(99));

describe('trainSae (tfjs) learns a sparse dictionary', () => {
  it.each([
    ['topk', { k: 3 }],
    ['batchtopk', { k: 3 }],
    ['mutual-choice', { k: 3 }],
    ['feature-choice', { k: 3 }],
    ['standard', { l1: 0.3 }],
    ['jumprelu', { l0: 0.1, initThreshold: 0.1 }],
    ['gated', { l1: 0.3 }],
  ] as [SaeArchitecture, Record<string, number>][])('%s', async (architecture, extra) => {
    const log: number[] = [];
    const trained = await trainSae(tf, {
      architecture,
      dIn,
      dSae: 64,
      batches: batches(300, 64, 5),
      lr: 1e-2,
      seed: 1,
      logEvery: 50,
      onLog: (e) => log.push(e.mse),
      ...extra,
    });
    expect(trained.steps).toBe(300);
    const out = trained.sae.forward(heldOut);
    const m = reconstructionMetrics(heldOut, out.reconstruction, out.latents, 256);
    // Measured (seeded): EV 0.74 (feature-choice) to 0.96 (gated); L0 3 for the choice rules, 5-12 for the penalties.
    expect(log.at(-1)!).toBeLessThan(0.7 * log[0]!);
    expect(m.explained_variance).toBeGreaterThan(0.7);
    expect(m.l0).toBeLessThan(['standard', 'gated'].includes(architecture) ? 16 : 6);
    if (
      architecture === 'batchtopk' ||
      architecture === 'mutual-choice' ||
      architecture === 'feature-choice'
    ) {
      // The inference threshold (EMA of the smallest positive latent) is what it runs and saves with.
      expect(trained.sae.params.threshold!.every((t) => t > 0)).toBe(true);
    }
  });
});

describe("JumpReLU's L0 modes", () => {
  it("'tanh' reaches the encoder: a larger coefficient gives a sparser SAE; bad modes are refused", async () => {
    const l0Of = async (l0: number) => {
      const trained = await trainSae(tf, {
        architecture: 'jumprelu',
        dIn,
        dSae: 64,
        batches: batches(150, 64, 8),
        lr: 1e-2,
        seed: 2,
        l0,
        l0Mode: 'tanh',
      });
      const out = trained.sae.forward(heldOut);
      return reconstructionMetrics(heldOut, out.reconstruction, out.latents, 256).l0;
    };
    const [low, high] = [await l0Of(0.01), await l0Of(1)];
    expect(high).toBeLessThan(0.7 * low);
    await expect(
      trainSae(tf, {
        architecture: 'jumprelu',
        dIn,
        dSae: 8,
        batches: batches(1, 8, 1),
        l0Mode: 'l1' as never,
      }),
    ).rejects.toThrow(/l0Mode/);
  });
});

describe('trainSae normalisation', () => {
  it('expected_average_only_in trains on scaled rows and folds the factor: the SAE reads raw activations', async () => {
    const big = (b: Float32Array) => b.map((v) => v * 100);
    function* scaled() {
      for (const b of batches(200, 64, 6)) yield big(b);
    }
    const trained = await trainSae(tf, {
      architecture: 'topk',
      k: 3,
      dIn,
      dSae: 64,
      batches: scaled(),
      lr: 1e-2,
      normalize: 'expected_average_only_in',
      seed: 2,
    });
    expect(trained.sae.normalize).toBe('none');
    const raw = big(heldOut);
    const out = trained.sae.forward(raw);
    expect(
      reconstructionMetrics(raw, out.reconstruction, out.latents, 256).explained_variance,
    ).toBeGreaterThan(0.7);
  });
});

describe('dead features: AuxK, the Zipf auxiliary loss, resampling', () => {
  it('zipfDeficits: 0 on an exact Zipf law, 1 for a feature that never fires, the shortfall otherwise', () => {
    const E = 8;
    const H = Array.from({ length: E }, (_, i) => 1 / (i + 1)).reduce((a, b) => a + b);
    const zipf = Array.from({ length: E }, (_, i) => (2 * (1 / (i + 1))) / H);
    expect(Array.from(zipfDeficits(zipf))).toAllClose(new Array(E).fill(0), { atol: 1e-12, rtol: 0 });
    const withDead = [...zipf.slice(0, E - 1), 0];
    expect(zipfDeficits(withDead)[E - 1]).toBe(1);
    // The same total spread evenly: the head falls short of its Zipf rate, the tail does not.
    const even = new Array(E).fill(2 / E);
    const d = zipfDeficits(even);
    expect(d[0]).toBeGreaterThan(0.5);
    expect(d[E - 1]).toBe(0);
  });

  it('resampling re-initialises dead features and leaves fewer dead; the Zipf loss trains', async () => {
    const run = (extra: Record<string, unknown>) =>
      trainSae(tf, {
        architecture: 'topk',
        k: 3,
        dIn,
        dSae: 256,
        batches: batches(150, 64, 7),
        lr: 1e-2,
        deadWindow: 1000,
        auxK: 0,
        seed: 3,
        ...extra,
      });
    const plain = await run({});
    const resampled = await run({ resampleEvery: 30 });
    const deadAt = (t: { tokensSinceFired: Float64Array }) =>
      Array.from(t.tokensSinceFired).filter((x) => x > 1000).length;
    expect(plain.resampled).toBe(0);
    expect(resampled.resampled).toBeGreaterThan(0);
    expect(deadAt(resampled)).toBeLessThan(deadAt(plain));
    const zipf = await run({ auxK: 1 / 32, aux: 'zipf' });
    const out = zipf.sae.forward(heldOut);
    expect(
      reconstructionMetrics(heldOut, out.reconstruction, out.latents, 256).explained_variance,
    ).toBeGreaterThan(0.6);
  });
});
