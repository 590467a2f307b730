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
