// Dynamic N:M training on a dense shadow: SR-STE (Zhou et al.) and the progressive gradient flow's
// mask decay and structure decay (Bambhaniya et al.; abhibambhaniya/progressive_gradient_flow_nm_sparsity).
// Unlike TFMOT's masking, the pruned weights keep their values: the layer's variable holds the
// forward weights w (.) M during a step, the optimizer updates them with the straight-through
// gradient, and before the next step the dense weights are rebuilt as variable + (1 - M) (.) shadow,
// where the shadow holds the dense weights of the last step. The mask is recomputed from the dense
// weights every training step.
import { InvalidArgumentError } from '@sparsekit/core';
import * as tf from '@tensorflow/tfjs-core';
import { checkNmPattern } from '../masks.js';
import { nmKeepMask } from '../training-masks.js';

export interface NmTrainingOptions {
  /**
   * 'srste': hard mask, and the pruned weights decay by learningRate x lambda each step (SR-STE's
   * lambda (1 - m) w gradient term, applied decoupled: exact with SGD, the optimizer SR-STE uses);
   * 'mask-decay' (MdGf): pruned weights scaled by beta(t) in the forward pass; 'ste': hard mask,
   * plain straight-through.
   */
  method: 'srste' | 'mask-decay' | 'ste';
  /** SR-STE's lambda (default 2e-4). */
  lambda?: number;
  /** SR-STE: the optimizer's learning rate. */
  learningRate?: number;
  /** Mask decay: beta(t) = max(1 - rate t, 0) ('linear', default) or exp(-rate t) ('exponential'), t = training steps (default rate 2e-4). */
  decay?: 'linear' | 'exponential';
  rate?: number;
  /**
   * Structure decay (SdGf): N:M patterns in force from a step on, e.g. stepwise
   * [{ fromStep: 1, n: 7, m: 8 }, { fromStep: 1000, n: 4, m: 8 }, ...]; before the first stage, and
   * without stages, the wrapper's `nm`.
   */
  stages?: ReadonlyArray<{ fromStep: number; n: number; m: number }>;
}

export function checkNmTraining(o: NmTrainingOptions): void {
  if (!['srste', 'mask-decay', 'ste'].includes(o.method))
    throw new InvalidArgumentError('nmTraining.method', o.method, "must be 'srste', 'mask-decay' or 'ste'");
  if (o.method === 'srste' && !(typeof o.learningRate === 'number' && o.learningRate > 0))
    throw new InvalidArgumentError(
      'nmTraining.learningRate',
      o.learningRate,
      "SR-STE needs the optimizer's learning rate (> 0)",
    );
  for (const [name, v] of [
    ['lambda', o.lambda],
    ['rate', o.rate],
  ] as const)
    if (v !== undefined && !(Number.isFinite(v) && v >= 0))
      throw new InvalidArgumentError(`nmTraining.${name}`, v, 'must be >= 0');
  if (o.decay !== undefined && o.decay !== 'linear' && o.decay !== 'exponential')
    throw new InvalidArgumentError('nmTraining.decay', o.decay, "must be 'linear' or 'exponential'");
  let last = -1;
  for (const s of o.stages ?? []) {
    if (!(Number.isInteger(s.fromStep) && s.fromStep > last))
      throw new InvalidArgumentError(
        'nmTraining.stages',
        s.fromStep,
        'must start at increasing integer steps',
      );
    checkNmPattern(s.n, s.m, 'nmTraining.stages');
    last = s.fromStep;
  }
}

/** The N:M pattern in force at `step`. */
export function patternAt(
  o: NmTrainingOptions,
  nm: readonly [number, number],
  step: number,
): readonly [number, number] {
  let p = nm;
  for (const s of o.stages ?? []) if (step >= s.fromStep) p = [s.n, s.m];
  return p;
}

/** The factor of the pruned weights in the forward pass at `step`. */
export function pruneFactorAt(o: NmTrainingOptions, step: number): number {
  if (o.method !== 'mask-decay') return 0;
  const c = o.rate ?? 2e-4;
  return o.decay === 'exponential' ? Math.exp(-c * step) : Math.max(1 - c * step, 0);
}

/** What a dense shadow reads and writes: a layer's weight (tfjs-layers' LayerVariable) or a plain tf.Variable's `shadowed(v)`. */
export interface ShadowedWeight {
  readonly shape: readonly (number | null)[];
  read(): tf.Tensor;
  write(values: tf.Tensor): void;
}

/** A tf.Variable seen as a `ShadowedWeight`. */
export function shadowed(v: tf.Variable): ShadowedWeight {
  return { shape: v.shape, read: () => v, write: (t) => v.assign(t) };
}

/** One weight's dense shadow. */
export class DenseShadow {
  private shadow: Float32Array | undefined;
  private factor: Float32Array | undefined;
  keep: Float32Array | undefined;

  /** The dense weights: the variable's values plus the pruned part it does not hold. */
  dense(weight: ShadowedWeight): Float32Array {
    const v = weight.read().dataSync() as Float32Array;
    if (this.shadow === undefined || this.factor === undefined) return Float32Array.from(v);
    const out = new Float32Array(v.length);
    for (let i = 0; i < v.length; i++) out[i] = v[i]! + (1 - this.factor[i]!) * this.shadow[i]!;
    return out;
  }

  /**
   * Rebuild the dense weights, shrink the pruned ones by (1 - decay), recompute the n:m mask and
   * write the forward weights (pruned ones times `factor`) into the variable.
   */
  sync(weight: ShadowedWeight, pattern: readonly [number, number], factor: number, decay = 0): void {
    const dense = this.dense(weight);
    if (decay > 0 && this.keep !== undefined)
      for (let i = 0; i < dense.length; i++) if (this.keep[i] === 0) dense[i]! *= 1 - decay;
    const shape = weight.shape as number[];
    const keep = nmKeepMask(dense, shape, pattern[0], pattern[1]);
    // Plain loops: this runs every training step over every pruned weight.
    const f = new Float32Array(keep.length);
    const forward = new Float32Array(dense.length);
    for (let i = 0; i < dense.length; i++) {
      f[i] = keep[i] === 1 ? 1 : factor;
      forward[i] = dense[i]! * f[i]!;
    }
    tf.tidy(() => {
      weight.write(tf.tensor(forward, shape));
    });
    this.shadow = dense;
    this.factor = f;
    this.keep = keep;
  }

  /** Write the hard-masked dense weights (pruned ones exactly 0) and forget the shadow. */
  finish(weight: ShadowedWeight): void {
    if (this.shadow === undefined || this.keep === undefined) return;
    const dense = this.dense(weight);
    for (let i = 0; i < dense.length; i++) dense[i]! *= this.keep[i]!;
    tf.tidy(() => {
      weight.write(tf.tensor(dense, weight.shape as number[]));
    });
    this.shadow = undefined;
    this.factor = undefined;
  }
}
