// TFMOT's pruning for a custom training loop: the same schedules and masks over plain tf.Variables
// (a tfjs twin's weights, or any model not built from tfjs-layers), without a wrapper layer.
import { InvalidArgumentError, ShapeMismatchError } from '@sparsekit/core';
import * as tf from '@tensorflow/tfjs-core';
import { checkNmPattern } from '../masks.js';
import { ConstantSparsity, FixedMask, masksDue, type PruningSchedule } from '../schedules.js';
import { trainingKeepMask, zeroShare } from '../training-masks.js';
import {
  checkNmTraining,
  DenseShadow,
  type NmTrainingOptions,
  patternAt,
  pruneFactorAt,
  shadowed,
} from './nm-training.js';

export interface VariablePrunerOptions {
  /** Default ConstantSparsity(0.5, 0), TFMOT's. */
  pruningSchedule?: PruningSchedule;
  blockSize?: readonly [number, number];
  blockPooling?: 'avg' | 'max';
  /** N:M (n kept of every m inputs along the second-to-last axis), computed at the first step. */
  nm?: readonly [number, number];
  /** With `nm`: train the pattern dynamically on a dense shadow (SR-STE, mask decay, structure decay), as the wrapper's `nmTraining`. */
  nmTraining?: NmTrainingOptions;
}

/** variable := variable * keep for each variable and its keep-mask (1 kept). */
export function applyKeepMasks(variables: readonly tf.Variable[], keeps: readonly Float32Array[]): void {
  variables.forEach((v, i) => {
    tf.tidy(() => {
      v.assign(tf.mul(v, tf.tensor(keeps[i]!, v.shape)));
    });
  });
}

/**
 * Prunes tf.Variables with TFMOT's order: call `beforeStep()` before each training step's forward
 * pass (it counts the step, recomputes the masks when the schedule says so, and zeroes the pruned
 * weights), and `apply()` after the last optimizer step so the weights end exactly sparse.
 */
export class VariablePruner {
  /** Training steps counted so far (TFMOT's pruning_step after the callback: the first step is 1). */
  step = 0;
  private keeps: Float32Array[];
  private readonly schedule: PruningSchedule;
  private readonly shadows: DenseShadow[] | undefined;

  constructor(
    readonly variables: readonly tf.Variable[],
    private readonly options: VariablePrunerOptions = {},
  ) {
    if (variables.length === 0) throw new InvalidArgumentError('variables', 0, 'needs at least one variable');
    if (options.nm !== undefined) checkNmPattern(options.nm[0], options.nm[1], 'nm');
    if (options.nmTraining !== undefined) {
      if (options.nm === undefined)
        throw new InvalidArgumentError('nmTraining', options.nmTraining.method, 'needs an nm pattern');
      checkNmTraining(options.nmTraining);
      this.shadows = variables.map(() => new DenseShadow());
    }
    this.keeps = variables.map((v) => new Float32Array(v.size).fill(1));
    this.schedule = options.pruningSchedule ?? new ConstantSparsity(0.5, 0);
  }

  /**
   * A pruner that keeps the variables' current zeros as its masks (FixedMask): fine-tuning a
   * one-shot pruned model (SparseGPT, Wanda) without letting the pruned weights grow back.
   */
  static keepingZeros(variables: readonly tf.Variable[]): VariablePruner {
    const pruner = new VariablePruner(variables, { pruningSchedule: new FixedMask() });
    pruner.setMasks(
      variables.map((v) => {
        const w = v.dataSync() as Float32Array;
        const keep = new Float32Array(w.length);
        for (let i = 0; i < w.length; i++) keep[i] = w[i] === 0 ? 0 : 1;
        return keep;
      }),
    );
    return pruner;
  }

  beforeStep(): void {
    this.step++;
    if (this.shadows !== undefined) {
      this.syncShadows();
      return;
    }
    if (masksDue(this.step, this.schedule, this.options.nm)) this.updateMasks();
    this.apply();
  }

  /** Recompute the masks from the current weights at the schedule's sparsity for this step. */
  updateMasks(): void {
    const sparsity = this.schedule.at(this.step).sparsity;
    this.variables.forEach((v, i) => {
      this.keeps[i] = trainingKeepMask(v.dataSync() as Float32Array, v.shape, sparsity, this.options).keep;
    });
  }

  /** Set the keep-masks (1 kept, one per variable, each of its variable's size) and apply them. */
  setMasks(masks: readonly Float32Array[]): void {
    if (masks.length !== this.variables.length)
      throw new ShapeMismatchError([this.variables.length], [masks.length], 'masks');
    masks.forEach((m, i) => {
      if (m.length !== this.variables[i]!.size)
        throw new ShapeMismatchError([this.variables[i]!.size], [m.length], `masks[${i}]`);
    });
    this.keeps = masks.map((m) => Float32Array.from(m));
    this.apply();
  }

  /**
   * weight := weight * mask for every variable. With `nmTraining`, the hard-masked dense weights
   * (pruned ones exactly 0), which ends the dense shadow: call it once, after the last step.
   */
  apply(): void {
    if (this.shadows !== undefined) {
      this.variables.forEach((v, i) => {
        this.shadows![i]!.finish(shadowed(v));
      });
      return;
    }
    applyKeepMasks(this.variables, this.keeps);
  }

  /** The keep-masks (1 kept), one per variable. */
  masks(): Float32Array[] {
    return this.keeps.map((k) => Float32Array.from(k));
  }

  /** The share of zeros in the masks over all variables. */
  sparsity(): number {
    return zeroShare(this.keeps);
  }

  /** Dynamic N:M: rebuild the dense weights (SR-STE's decay of the pruned ones), recompute the masks, write the forward weights. */
  private syncShadows(): void {
    const o = this.options.nmTraining!;
    const pattern = patternAt(o, this.options.nm!, this.step);
    const factor = pruneFactorAt(o, this.step);
    const decay = o.method === 'srste' ? o.learningRate! * (o.lambda ?? 2e-4) : 0;
    this.variables.forEach((v, i) => {
      const shadow = this.shadows![i]!;
      shadow.sync(shadowed(v), pattern, factor, decay);
      this.keeps[i] = shadow.keep!;
    });
  }
}
