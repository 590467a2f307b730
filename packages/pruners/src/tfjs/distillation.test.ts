import { loadTfjs, Rng, ShapeMismatchError } from '@sparsekit/core';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { logitDistillationLoss, squareHeadLoss } from './distillation.js';

beforeAll(async () => {
  await loadTfjs();
});

describe('distillation losses', () => {
  it('SquareHead sums each layer’s MSE normalised by the teacher’s mean square (a plain reference)', () => {
    const rng = new Rng(1);
    const shapes = [
      [6, 4],
      [6, 4],
    ];
    const s = shapes.map((sh) => rng.normalArray(sh[0]! * sh[1]!));
    const t = shapes.map((sh) => rng.normalArray(sh[0]! * sh[1]!, 0, 3));
    let want = 0;
    for (let l = 0; l < 2; l++) {
      let num = 0;
      let den = 0;
      for (let i = 0; i < 24; i++) {
        num += (s[l]![i]! - t[l]![i]!) ** 2;
        den += t[l]![i]! ** 2;
      }
      want += num / den;
    }
    const st = s.map((v) => tf.tensor2d(v, [6, 4]));
    const tt = t.map((v) => tf.tensor2d(v, [6, 4]));
    expect(squareHeadLoss(st, tt).dataSync()[0]).toBeCloseTo(want, 5);
    expect(squareHeadLoss(tt, tt).dataSync()[0]).toBe(0);
    // Scale-free: the same relative error costs the same at any scale.
    const scaled = squareHeadLoss(
      st.map((x) => tf.mul(x, 10)),
      tt.map((x) => tf.mul(x, 10)),
    ).dataSync()[0]!;
    expect(scaled).toBeCloseTo(want, 4);
    expect(() => squareHeadLoss(st, tt.slice(1))).toThrow(ShapeMismatchError);
    expect(() => squareHeadLoss([tf.zeros([2, 2])], [tf.zeros([2, 3])])).toThrow(/layer 0/);
  });

  it('logit distillation is KL(teacher || student) times T^2, zero for equal logits, with a gradient', () => {
    const rng = new Rng(2);
    const s = rng.normalArray(3 * 5);
    const t = rng.normalArray(3 * 5);
    const T = 2;
    const soft = (v: number[]) => {
      const m = Math.max(...v);
      const e = v.map((x) => Math.exp((x - m) / T));
      const z = e.reduce((a, b) => a + b);
      return e.map((x) => x / z);
    };
    let want = 0;
    for (let r = 0; r < 3; r++) {
      const p = soft(Array.from(t.slice(r * 5, r * 5 + 5)));
      const q = soft(Array.from(s.slice(r * 5, r * 5 + 5)));
      for (let i = 0; i < 5; i++) want += p[i]! * Math.log(p[i]! / q[i]!);
    }
    want = (want / 3) * T * T;
    const st = tf.tensor2d(s, [3, 5]);
    const tt = tf.tensor2d(t, [3, 5]);
    expect(logitDistillationLoss(st, tt, T).dataSync()[0]).toBeCloseTo(want, 5);
    expect(logitDistillationLoss(tt, tt).dataSync()[0]).toBeCloseTo(0, 6);
    const g = tf.grad((x: tf.Tensor) => logitDistillationLoss(x as tf.Tensor2D, tt))(st);
    expect(Math.max(...Array.from(g.dataSync()).map(Math.abs))).toBeGreaterThan(0);
    expect(() => logitDistillationLoss(st, tf.zeros([3, 4]))).toThrow(ShapeMismatchError);
  });
});
