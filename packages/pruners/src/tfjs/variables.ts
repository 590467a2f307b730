// TFMOT's pruning for a custom training loop: the same schedules and masks over plain tf.Variables
// (a tfjs twin's weights, or any model not built from tfjs-layers), without a wrapper layer.
import { InvalidArgumentError } from '@sparsekit/core';
import * as tf from '@tensorflow/tfjs-core';
import { checkNmPattern } from '../masks.js';
import { ConstantSparsity, masksDue, type PruningSchedule } from '../schedules.js';
import { trainingKeepMask, zeroShare } from '../training-masks.js';

export interface VariablePrunerOptions {
  /** Default ConstantSparsity(0.5, 0), TFMOT's. */
  pruningSchedule?: PruningSchedule;
  blockSize?: readonly [number, number];
  blockPooling?: 'avg' | 'max';
  /** N:M (n kept of every m inputs along the second-to-last axis), computed at the first step. */
  nm?: readonly [number, number];
}

/**
 * Prunes tf.Variables with TFMOT's order: call `beforeStep()` before each training step's forward
 * pass (it counts the step, recomputes the masks when the schedule says so, and zeroes the pruned
 * weights), and `apply()` after the last optimizer step so the weights end exactly sparse.
 */
export class VariablePruner {
  /** Training steps counted so far (TFMOT's pruning_step after the callback: the first step is 1). */
  step = 0;
  private readonly keeps: Float32Array[];
  private readonly schedule: PruningSchedule;

  constructor(
    readonly variables: readonly tf.Variable[],
    private readonly options: VariablePrunerOptions = {},
  ) {
    if (variables.length === 0) throw new InvalidArgumentError('variables', 0, 'needs at least one variable');
    if (options.nm !== undefined) checkNmPattern(options.nm[0], options.nm[1], 'nm');
    this.keeps = variables.map((v) => new Float32Array(v.size).fill(1));
    this.schedule = options.pruningSchedule ?? new ConstantSparsity(0.5, 0);
  }

  beforeStep(): void {
    this.step++;
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

  /** weight := weight * mask for every variable. */
  apply(): void {
    this.variables.forEach((v, i) => {
      tf.tidy(() => {
        v.assign(tf.mul(v, tf.tensor(this.keeps[i]!, v.shape)));
      });
    });
  }

  /** The keep-masks (1 kept), one per variable. */
  masks(): Float32Array[] {
    return this.keeps.map((k) => Float32Array.from(k));
  }

  /** The share of zeros in the masks over all variables. */
  sparsity(): number {
    return zeroShare(this.keeps);
  }
}
