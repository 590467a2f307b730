import { InvalidArgumentError, loadTfjs, Rng, ShapeMismatchError } from '@sparsekit/core';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { PolynomialDecay } from '../schedules.js';
import { nmKeepMask } from '../training-masks.js';
import { VariablePruner } from './variables.js';

beforeAll(async () => {
  await loadTfjs();
});

describe('VariablePruner (a custom training loop)', () => {
  it('follows the schedule over plain variables and ends exactly sparse', () => {
    const rng = new Rng(1);
    const a = tf.variable(tf.tensor2d(rng.normalArray(16 * 8), [16, 8]));
    const b = tf.variable(tf.tensor2d(rng.normalArray(8 * 4), [8, 4]));
    const x = tf.tensor2d(rng.normalArray(32 * 16), [32, 16]);
    const y = tf.tensor2d(rng.normalArray(32 * 4), [32, 4]);
    const schedule = new PolynomialDecay(0.2, 0.75, 0, 6, 3, 2);
    const pruner = new VariablePruner([a, b], { pruningSchedule: schedule });
    const optimizer = tf.train.adam(0.05);
    const seen: number[] = [];
    for (let s = 0; s < 8; s++) {
      pruner.beforeStep();
      seen.push(pruner.sparsity());
      optimizer.minimize(
        () => tf.losses.meanSquaredError(y, tf.matMul(tf.relu(tf.matMul(x, a)), b)) as tf.Scalar,
      );
    }
    pruner.apply();
    // Masks recomputed at steps 2, 4, 6 (TFMOT's rule from begin 0, frequency 2); none before step 2.
    const at = (t: number) => 1 - Math.max(Math.round(128 * (1 - schedule.at(t).sparsity)), 1) / 128;
    expect(seen[0]).toBe(0);
    expect(seen[1]).toBeCloseTo(
      (128 * at(2) + 32 * (1 - Math.round(32 * (1 - schedule.at(2).sparsity)) / 32)) / 160,
      6,
    );
    expect(pruner.step).toBe(8);
    const zeros = (v: tf.Variable) => Array.from(v.dataSync()).filter((w) => w === 0).length;
    expect(zeros(a)).toBe(128 - Math.round(128 * 0.25));
    expect(zeros(b)).toBe(32 - Math.round(32 * 0.25));
    const c = tf.variable(tf.tensor2d(rng.normalArray(8 * 4), [8, 4]));
    const nm = new VariablePruner([c], { nm: [1, 4] });
    nm.beforeStep();
    expect(zeros(c)).toBe(24);
    expect(() => new VariablePruner([])).toThrow(InvalidArgumentError);
    expect(() => new VariablePruner([a], { nm: [4, 4] })).toThrow(InvalidArgumentError);
  });

  it('keeps the zeros of a one-shot pruned variable (FixedMask) through fine-tuning, and checks set masks', () => {
    const rng = new Rng(2);
    const values = rng.normalArray(8 * 8);
    for (let i = 0; i < values.length; i += 3) values[i] = 0;
    const a = tf.variable(tf.tensor2d(values, [8, 8]));
    const pruner = VariablePruner.keepingZeros([a]);
    const optimizer = tf.train.sgd(0.1);
    const x = tf.tensor2d(rng.normalArray(16 * 8), [16, 8]);
    for (let s = 0; s < 5; s++) {
      pruner.beforeStep();
      optimizer.minimize(() => tf.mean(tf.square(tf.matMul(x, a))) as tf.Scalar);
    }
    pruner.apply();
    const w = a.dataSync();
    values.forEach((v, i) => {
      if (v === 0) expect(w[i] === 0).toBe(true);
    });
    expect(pruner.sparsity()).toBeCloseTo(values.filter((v) => v === 0).length / 64, 12);
    expect(() => pruner.setMasks([])).toThrow(ShapeMismatchError);
    expect(() => pruner.setMasks([new Float32Array(3)])).toThrow(/masks\[0\]/);
  });

  it('trains N:M dynamically on a dense shadow (SR-STE): the pattern holds every step and may move, ending exactly 2:4', () => {
    const rng = new Rng(4);
    const a = tf.variable(tf.tensor2d(rng.normalArray(16 * 8), [16, 8]));
    const x = tf.tensor2d(rng.normalArray(32 * 16), [32, 16]);
    const y = tf.tensor2d(rng.normalArray(32 * 8), [32, 8]);
    const pruner = new VariablePruner([a], {
      nm: [2, 4],
      nmTraining: { method: 'srste', learningRate: 0.05 },
    });
    const optimizer = tf.train.sgd(0.05);
    const masks: Float32Array[] = [];
    for (let s = 0; s < 12; s++) {
      pruner.beforeStep();
      const forward = Float32Array.from(a.dataSync());
      // The forward weights are the mask of their own dense weights: 2 of every 4 along the input axis.
      const keep = pruner.masks()[0]!;
      expect(keep.reduce((n, k) => n + k, 0)).toBe(64);
      forward.forEach((v, i) => {
        if (keep[i] === 0) expect(v === 0).toBe(true);
      });
      masks.push(keep);
      optimizer.minimize(() => tf.losses.meanSquaredError(y, tf.matMul(x, a)) as tf.Scalar);
    }
    pruner.apply();
    const final = Float32Array.from(a.dataSync());
    expect(nmKeepMask(final, [16, 8], 2, 4).reduce((n, k) => n + k, 0)).toBe(64);
    expect(final.filter((v) => v === 0)).toHaveLength(64);
    expect(masks.some((m) => m.some((k, i) => k !== masks[0]![i]))).toBe(true);
    expect(() => new VariablePruner([a], { nmTraining: { method: 'ste' } })).toThrow(/nm pattern/);
    expect(() => new VariablePruner([a], { nm: [2, 4], nmTraining: { method: 'srste' } })).toThrow(
      /learningRate/,
    );
  });
});
