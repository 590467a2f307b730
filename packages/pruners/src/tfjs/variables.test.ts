import { InvalidArgumentError, loadTfjs, Rng } from '@sparsekit/core';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { PolynomialDecay } from '../schedules.js';
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
});
