import { InvalidArgumentError } from '@sparsekit/core';
import { describe, expect, it } from 'vitest';
import { ConstantSparsity, PolynomialDecay, scheduleFromConfig } from './schedules.js';

describe('pruning schedules (TFMOT pruning_schedule_test.py)', () => {
  it('prunes only in [begin, end] and on frequency steps', () => {
    for (const s of [new ConstantSparsity(0.5, 100, 200, 1), new PolynomialDecay(0.2, 0.8, 100, 200, 3, 1)]) {
      const prunes = [90, 99, 100, 110, 200, 201, 210].map((t) => s.at(t).prune);
      expect(prunes).toEqual([false, false, true, true, true, false, false]);
    }
    for (const s of [
      new ConstantSparsity(0.5, 100, 200, 10),
      new PolynomialDecay(0.2, 0.8, 100, 200, 3, 10),
    ]) {
      expect([100, 109, 110, 111].map((t) => s.at(t).prune)).toEqual([true, false, true, false]);
    }
  });

  it('ConstantSparsity prunes forever with end -1 and holds its target', () => {
    const s = new ConstantSparsity(0.5, 0, -1, 10);
    expect(s.at(10_000)).toEqual({ prune: true, sparsity: 0.5 });
    expect(s.at(100_000_000)).toEqual({ prune: true, sparsity: 0.5 });
    const t = new ConstantSparsity(0.5, 100, 200, 10);
    for (const step of [100, 110, 200]) expect(t.at(step).sparsity).toBe(0.5);
    expect(new ConstantSparsity(0.7, 0).at(0)).toEqual({ prune: true, sparsity: Math.fround(0.7) });
  });

  it("PolynomialDecay gives TFMOT's values step by step", () => {
    const s = new PolynomialDecay(0.2, 0.8, 100, 110, 3, 2);
    // TFMOT's test table (generated there with tf.polynomial_decay), assertAllClose tolerance 1e-6.
    const table: Array<[number, number]> = [
      [100, 0.2],
      [102, 0.4928],
      [105, 0.725],
      [110, 0.8],
    ];
    for (const [step, sparsity] of table) expect(s.at(step).sparsity).toBeCloseTo(sparsity, 6);
    // Clipped outside the range; the MNIST tutorial's schedule at its pruning steps.
    expect(s.at(50).sparsity).toBeCloseTo(0.2, 7);
    expect(s.at(500).sparsity).toBeCloseTo(0.8, 7);
    const mnist = new PolynomialDecay(0.5, 0.8, 0, 844);
    const expected = [100, 200, 300, 400, 500, 600, 700, 800].map(
      (t) => 0.8 + (0.5 - 0.8) * (1 - t / 844) ** 3,
    );
    const got = [100, 200, 300, 400, 500, 600, 700, 800].map((t) => mnist.at(t));
    got.forEach((g, i) => {
      expect(g.prune).toBe(true);
      expect(g.sparsity).toBeCloseTo(expected[i]!, 6);
      expect(Math.fround(g.sparsity)).toBe(g.sparsity); // float32, as TFMOT's tensors
    });
    expect(mnist.at(844).prune).toBe(false);
  });

  it('refuses what TFMOT refuses, with typed errors', () => {
    const bad = [
      () => new ConstantSparsity(0.5, -1),
      () => new ConstantSparsity(0.5, 10, 5),
      () => new ConstantSparsity(0.5, 0, -2),
      () => new ConstantSparsity(0.5, 0, -1, 0),
      () => new ConstantSparsity(1, 0),
      () => new ConstantSparsity(-0.1, 0),
      () => new ConstantSparsity(Number.NaN, 0),
      () => new PolynomialDecay(0.4, 0.8, 10, -1),
      () => new PolynomialDecay(0.4, 1, 0, 10),
      () => new PolynomialDecay(0.4, 0.8, 10, 10),
      () => new PolynomialDecay(0.4, 0.8, 0.5, 10),
    ];
    for (const make of bad) expect(make).toThrow(InvalidArgumentError);
  });

  it('round-trips through its config', () => {
    for (const s of [new ConstantSparsity(0.7, 10, 20, 10), new PolynomialDecay(0.2, 0.6, 10, 20, 5, 10)]) {
      const back = scheduleFromConfig(JSON.parse(JSON.stringify(s.getConfig())));
      expect(back).toEqual(s);
      expect(back.constructor).toBe(s.constructor);
    }
  });
});
