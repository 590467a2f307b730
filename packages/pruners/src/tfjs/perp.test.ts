import { loadTfjs, Rng } from '@sparsekit/core';
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { beforeAll, describe, expect, it } from 'vitest';
import { FixedMask } from '../schedules.js';
import { perpTrainable } from './perp.js';
import { pruneLowMagnitude, setModelMasks, stripPruning, updatePruningStep } from './prune.js';

beforeAll(async () => {
  await loadTfjs();
});

describe('PERP (retrain only norms and biases)', () => {
  it('freezes every kernel, so pruned zeros stay zero, and retrains the norms and biases', async () => {
    const rng = new Rng(1);
    const model = tfl.sequential({
      layers: [
        tfl.layers.dense({
          inputShape: [8],
          units: 16,
          activation: 'relu',
          kernelInitializer: tfl.initializers.glorotUniform({ seed: 1 }),
        }),
        tfl.layers.layerNormalization(),
        tfl.layers.dense({ units: 4, kernelInitializer: tfl.initializers.glorotUniform({ seed: 2 }) }),
      ],
    });
    // One-shot prune the kernels to 50% with fixed masks, then retrain PERP-style.
    const pruned = pruneLowMagnitude(model, { pruningSchedule: new FixedMask() });
    setModelMasks(
      pruned,
      [128, 64].map((n) => {
        const keep = new Float32Array(n).fill(1);
        for (const k of rng.sample(n, n / 2)) keep[k] = 0;
        return keep;
      }),
    );
    const left = perpTrainable(pruned);
    expect(left.map((n) => n.split('/').at(-1))).toEqual(['bias', 'gamma', 'beta', 'bias']);
    const before = pruned.getWeights().map((w) => Float32Array.from(w.dataSync()));
    pruned.compile({ optimizer: tf.train.adam(0.05), loss: 'meanSquaredError' });
    const x = tf.tensor2d(rng.normalArray(64 * 8), [64, 8]);
    const y = tf.tensor2d(rng.normalArray(64 * 4), [64, 4]);
    const first = (pruned.evaluate(x, y) as tf.Scalar).dataSync()[0]!;
    await pruned.fit(x, y, {
      epochs: 5,
      batchSize: 16,
      verbose: 0,
      shuffle: false,
      callbacks: [updatePruningStep()],
    });
    expect((pruned.evaluate(x, y) as tf.Scalar).dataSync()[0]!).toBeLessThan(first);
    const after = pruned.getWeights().map((w) => Float32Array.from(w.dataSync()));
    const names = pruned.weights.map((w) => w.name.split('/').at(-1)!);
    names.forEach((name, i) => {
      const changed = after[i]!.some((v, j) => v !== before[i]![j]);
      expect([name, changed]).toEqual([name, ['bias', 'gamma', 'beta'].includes(name)]);
    });
    const plain = stripPruning(pruned);
    // (Freezing reorders getWeights: trainable weights come first in tfjs.)
    const kernels = plain.weights.filter((w) => w.name.endsWith('kernel')).map((w) => w.read().dataSync());
    expect(kernels.map((k) => Array.from(k).filter((v) => v === 0).length)).toEqual([64, 32]);
  });
});
