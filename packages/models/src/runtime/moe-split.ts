// A dense gated MLP cut by its hidden channels into experts (MoEfication's split): expert e takes
// channels [e I / n, (e + 1) I / n) of gate and up and the matching columns of down, so that with
// every expert weighted 1 (and `downScale` 1) their outputs sum to the MLP's.
import { InvalidArgumentError } from '@sparsekit/core';
import { denseMatrix, Linear } from './linear.js';
import type { GatedMlp } from './mlp.js';
import type { BackendRef } from './steps.js';

export interface SplitOptions {
  /** Multiplies each expert's down projection (n / k keeps a renormalised top-k mixture's scale). */
  downScale?: number;
}

/** The experts of block `block` cut from `mlp`, named as Mixtral's (`layers.B.mlp.experts.E.*`). */
export function splitGatedMlp(
  mlp: GatedMlp,
  n: number,
  block: number,
  backends: BackendRef,
  options: SplitOptions = {},
): GatedMlp[] {
  const [I, H] = [mlp.gate.outFeatures, mlp.gate.inFeatures];
  if (!Number.isInteger(n) || n < 1 || I % n !== 0)
    throw new InvalidArgumentError('experts', n, `must be a positive integer dividing the MLP width ${I}`);
  const per = I / n;
  const scale = options.downScale ?? 1;
  const [g, u, d] = [mlp.gate, mlp.up, mlp.down].map((l) => l.getWeight().data);
  const linear = (name: string, data: Float32Array, rows: number, cols: number) =>
    new Linear(name, denseMatrix(data, rows, cols), undefined, backends);
  return Array.from({ length: n }, (_, e): GatedMlp => {
    const down = new Float32Array(H * per);
    for (let o = 0; o < H; o++)
      for (let c = 0; c < per; c++) down[o * per + c] = d![o * I + e * per + c]! * scale;
    const name = `layers.${block}.mlp.experts.${e}`;
    return {
      kind: 'gated',
      gate: linear(`${name}.gate_proj`, g!.slice(e * per * H, (e + 1) * per * H), per, H),
      up: linear(`${name}.up_proj`, u!.slice(e * per * H, (e + 1) * per * H), per, H),
      down: linear(`${name}.down_proj`, down, H, per),
    };
  });
}
