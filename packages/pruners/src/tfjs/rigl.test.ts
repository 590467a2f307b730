import { InvalidArgumentError, loadTfjs, Rng, ShapeMismatchError } from '@sparsekit/core';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { erkDensities } from '../methods/global.js';
import { zeroShare } from '../training-masks.js';
import { RigL } from './rigl.js';

beforeAll(async () => {
  await loadTfjs();
});

const zeros = (v: tf.Variable) => Array.from(v.dataSync()).filter((w) => w === 0).length;

describe('RigL (drop and grow)', () => {
  it('anneals the drop fraction as google-research/rigl (cosine over end - begin) and updates on its steps', () => {
    const v = tf.variable(tf.ones([8, 8]));
    const rigl = new RigL([v], { sparsity: 0.5, endStep: 300, frequency: 100 });
    expect(rigl.dropFractionAt(0)).toBeCloseTo(0.3, 12);
    expect(rigl.dropFractionAt(150)).toBeCloseTo(0.15, 12);
    expect(rigl.dropFractionAt(75)).toBeCloseTo((0.3 * (1 + Math.cos(Math.PI / 4))) / 2, 12);
    expect(rigl.dropFractionAt(400)).toBeCloseTo(0, 12);
    expect([0, 99, 100, 150, 200, 300, 400].map((s) => rigl.updateDue(s))).toEqual([
      false,
      false,
      true,
      false,
      true,
      true,
      false,
    ]);
    const constant = new RigL([v], { sparsity: 0.5, endStep: 300, anneal: 'constant', dropFraction: 0.2 });
    expect(constant.dropFractionAt(250)).toBe(0.2);
  });

  it('starts from random ERK masks, then drops the smallest |w| and grows the largest |gradient| at zero, keeping the sparsity exact', () => {
    const rng = new Rng(3);
    const a = tf.variable(tf.tensor2d(rng.normalArray(16 * 32), [16, 32]));
    const b = tf.variable(tf.tensor2d(rng.normalArray(32 * 4), [32, 4]));
    const rigl = new RigL([a, b], { sparsity: 0.75, endStep: 4, frequency: 2, seed: 5 });
    const densities = erkDensities([a.shape, b.shape], 0.75);
    expect(zeros(a)).toBe(Math.round(512 * (1 - densities[0]!)));
    expect(zeros(b)).toBe(Math.round(128 * (1 - densities[1]!)));
    rigl.beforeStep(); // step 1: no update
    const before = rigl.masks();
    const wBefore = a.dataSync() as Float32Array;
    const gradA = tf.tensor2d(rng.normalArray(16 * 32), [16, 32]);
    const gradB = tf.tensor2d(rng.normalArray(32 * 4), [32, 4]);
    const masked1 = rigl.gradients([gradA, gradB]);
    expect(rigl.updates).toHaveLength(0);
    // Masked gradients: zero where pruned.
    const m1 = masked1[0]!.tensor.dataSync();
    before[0]!.forEach((k, j) => {
      if (k === 0) expect(m1[j] === 0).toBe(true);
    });
    rigl.beforeStep(); // step 2: update
    const masked2 = rigl.gradients({ [a.name]: gradA, [b.name]: gradB });
    expect(rigl.updates).toHaveLength(1);
    const u = rigl.updates[0]!;
    expect(u.dropFraction).toBeCloseTo(rigl.dropFractionAt(2), 12);
    // Plain reference for a: retain the largest |w| among the kept, grow the largest |g| among the rest.
    const old = before[0]!;
    const kept = old.reduce((s, k) => s + k, 0);
    const drop = Math.round(kept * u.dropFraction);
    expect(u.swapped[0]).toBe(drop);
    const keptIdx = [...old.keys()].filter((j) => old[j] === 1);
    const retained = new Set(
      keptIdx.sort((x, y) => Math.abs(wBefore[y]!) - Math.abs(wBefore[x]!)).slice(0, kept - drop),
    );
    const g = gradA.dataSync();
    const grown = [...old.keys()]
      .filter((j) => !retained.has(j))
      .sort((x, y) => Math.abs(g[y]!) - Math.abs(g[x]!))
      .slice(0, drop);
    const want = new Float32Array(old.length);
    for (const j of [...retained, ...grown]) want[j] = 1;
    expect(rigl.masks()[0]).toEqual(want);
    const after = a.dataSync();
    for (const j of grown) expect(after[j]).toBe(old[j] === 1 ? wBefore[j] : 0);
    expect(u.regrown[0]).toBe(grown.filter((j) => old[j] === 0).length);
    // Sparsity unchanged, gradients masked by the new masks.
    expect(rigl.sparsity()).toBeCloseTo(zeroShare(before), 12);
    const m2 = masked2[0]!.tensor.dataSync();
    want.forEach((k, j) => {
      if (k === 0) expect(m2[j] === 0).toBe(true);
    });
    tf.dispose([gradA, gradB, ...masked1.map((m) => m.tensor), ...masked2.map((m) => m.tensor)]);
  });

  it('trains a small regression, every forward pass at the exact sparsity', () => {
    const rng = new Rng(7);
    const w = tf.variable(tf.tensor2d(rng.normalArray(24 * 6, 0, 0.3), [24, 6]));
    const x = tf.tensor2d(rng.normalArray(64 * 24), [64, 24]);
    const y = tf.tensor2d(rng.normalArray(64 * 6), [64, 6]);
    const rigl = new RigL([w], { sparsity: 0.6, distribution: 'uniform', endStep: 30, frequency: 5 });
    const optimizer = tf.train.adam(0.05);
    const lossAt = () => tf.tidy(() => tf.losses.meanSquaredError(y, tf.matMul(x, w)).dataSync()[0]!);
    const first = lossAt();
    for (let s = 0; s < 40; s++) {
      rigl.beforeStep();
      // (Adam's momentum can move a just-dropped weight after the step; each forward pass sees the masks.)
      expect(zeros(w)).toBe(Math.round(144 * 0.6));
      const { value, grads } = tf.variableGrads(
        () => tf.losses.meanSquaredError(y, tf.matMul(x, w)) as tf.Scalar,
      );
      const masked = rigl.gradients(grads);
      optimizer.applyGradients(masked);
      tf.dispose([value, ...Object.values(grads), ...masked.map((m) => m.tensor)]);
    }
    rigl.apply();
    expect(zeros(w)).toBe(Math.round(144 * 0.6));
    expect(rigl.updates.map((u) => u.step)).toEqual([5, 10, 15, 20, 25, 30]);
    expect(lossAt()).toBeLessThan(first);
  });

  it('refuses bad options and gradients that do not match', () => {
    const v = tf.variable(tf.ones([4, 4]));
    expect(() => new RigL([], { sparsity: 0.5, endStep: 10 })).toThrow(InvalidArgumentError);
    expect(() => new RigL([v], { sparsity: 1.5, endStep: 10 })).toThrow(InvalidArgumentError);
    expect(() => new RigL([v], { sparsity: 0.5, endStep: 0 })).toThrow(/endStep/);
    expect(() => new RigL([v], { sparsity: 0.5, endStep: 10, frequency: 0 })).toThrow(/frequency/);
    expect(() => new RigL([v], { sparsity: 0.5, endStep: 10, dropFraction: 2 })).toThrow(/dropFraction/);
    const rigl = new RigL([v], { sparsity: 0.5, endStep: 10 });
    expect(() => rigl.gradients([tf.ones([3, 3])])).toThrow(ShapeMismatchError);
    expect(() => rigl.gradients([])).toThrow(ShapeMismatchError);
  });
});
