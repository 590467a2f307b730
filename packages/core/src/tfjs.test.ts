import type * as TF from '@tensorflow/tfjs-core';
import { describe, expect, it } from 'vitest';
import { Rng } from './rng.js';
import { loadTfjs, matMulOps } from './tfjs.js';

describe('matMulOps', () => {
  it("gives tfjs's own matMul values and gradients, 2-D and batched", async () => {
    const { tf } = await loadTfjs();
    const { mm, bmm } = matMulOps(tf);
    expect(matMulOps(tf).mm).toBe(mm);
    const rng = new Rng(3);
    const cases: Array<[number[], number[], typeof mm, (a: never, b: never) => unknown]> = [
      [[5, 7], [7, 3], mm, tf.matMul],
      [[2, 3, 4, 5], [2, 3, 5, 6], bmm, tf.matMul],
    ];
    for (const [sa, sb, ours, theirs] of cases) {
      const a = tf.tensor(rng.normalArray(sa.reduce((x, y) => x * y)), sa);
      const b = tf.tensor(rng.normalArray(sb.reduce((x, y) => x * y)), sb);
      const w = tf.tensor(rng.normalArray(sa.slice(0, -1).reduce((x, y) => x * y) * sb.at(-1)!));
      const loss = (f: (a: never, b: never) => unknown) => (x: typeof a, y: typeof b) =>
        tf.sum(tf.mul(tf.reshape(f(x as never, y as never) as typeof a, [-1]), w));
      const [ga, gb] = tf.grads(loss(ours as never))([a, b]);
      const [ha, hb] = tf.grads(loss(theirs))([a, b]);
      const close = (x: typeof a, y: typeof a) => {
        const [u, v] = [x.dataSync(), y.dataSync()];
        for (let i = 0; i < u.length; i++)
          expect(Math.abs(u[i]! - v[i]!)).toBeLessThan(1e-4 * (1 + Math.abs(v[i]!)));
      };
      close(ours(a, b), theirs(a as never, b as never) as typeof a);
      close(ga!, ha!);
      close(gb!, hb!);
    }
  });
});

describe('wasm gradient kernels', () => {
  it('give the cpu backend gradients for Conv2D, DepthwiseConv2D and gather (Embedding)', async () => {
    const { tf, backend } = await loadTfjs();
    expect(backend).toBe('wasm');
    await import('@tensorflow/tfjs-backend-cpu');
    const rng = new Rng(11);
    const cases: Array<{ name: string; shapes: number[][]; f: (a: TF.Tensor, b: TF.Tensor) => TF.Tensor }> = [
      {
        name: 'conv2d valid stride 1',
        shapes: [
          [2, 7, 6, 3],
          [3, 3, 3, 4],
        ],
        f: (x, w) => tf.conv2d(x as TF.Tensor4D, w as TF.Tensor4D, 1, 'valid'),
      },
      {
        name: 'conv2d same stride 2',
        shapes: [
          [1, 8, 7, 2],
          [3, 2, 2, 5],
        ],
        f: (x, w) => tf.conv2d(x as TF.Tensor4D, w as TF.Tensor4D, 2, 'same'),
      },
      {
        name: 'depthwise multiplier 2, same',
        shapes: [
          [2, 6, 6, 3],
          [3, 3, 3, 2],
        ],
        f: (x, w) => tf.depthwiseConv2d(x as TF.Tensor4D, w as TF.Tensor4D, 1, 'same'),
      },
      {
        name: 'depthwise stride 2, valid',
        shapes: [
          [1, 7, 7, 4],
          [2, 2, 4, 1],
        ],
        f: (x, w) => tf.depthwiseConv2d(x as TF.Tensor4D, w as TF.Tensor4D, 2, 'valid'),
      },
    ];
    const grads = (
      name: string,
      shapes: number[][],
      f: (a: TF.Tensor, b: TF.Tensor) => TF.Tensor,
      seed: number,
    ) => {
      const r = new Rng(seed);
      const [a, b] = shapes.map((s) => tf.tensor(r.normalArray(s.reduce((x, y) => x * y)), s));
      const out = f(a!, b!);
      const w = tf.tensor(r.normalArray(out.size), out.shape);
      const g = tf.grads((x: TF.Tensor, y: TF.Tensor) => tf.sum(tf.mul(f(x, y), w)))([a!, b!]);
      return { name, g: g.map((t) => Array.from(t.dataSync())) };
    };
    for (const [i, c] of cases.entries()) {
      await tf.setBackend('wasm');
      const ours = grads(c.name, c.shapes, c.f, i);
      await tf.setBackend('cpu');
      const ref = grads(c.name, c.shapes, c.f, i);
      for (let k = 0; k < 2; k++)
        ours.g[k]!.forEach((v, j) => {
          expect(Math.abs(v - ref.g[k]![j]!), `${c.name} grad ${k}`).toBeLessThan(1e-4);
        });
    }
    // gather's gradient (UnsortedSegmentSum), repeated ids summed.
    const table = rng.normalArray(6 * 3);
    const gatherGrad = () => {
      const t = tf.tensor2d(table, [6, 3]);
      const ids = tf.tensor1d([0, 2, 2, 5, 0, 0], 'int32');
      return Array.from(
        tf
          .grad((x: TF.Tensor) => tf.sum(tf.mul(tf.gather(x, ids), tf.reshape(tf.range(0, 18), [6, 3]))))(t)
          .dataSync(),
      );
    };
    await tf.setBackend('wasm');
    const ours = gatherGrad();
    await tf.setBackend('cpu');
    expect(ours).toEqual(gatherGrad());
    await tf.setBackend('wasm');
  });
});
