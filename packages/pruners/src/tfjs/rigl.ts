// RigL (Evci et al., Rigging the Lottery; google-research/rigl's SparseRigLOptimizer): sparse
// training from a random sparse start. Every `frequency` steps each weight drops the fraction of its
// kept entries with the smallest |w| and grows as many where the dense gradient is largest; grown
// entries start at zero. The drop fraction is annealed (cosine by default) to 0 at `endStep`, after
// which the masks stay.
import { InvalidArgumentError, ShapeMismatchError } from '@sparsekit/core';
import { highestIndices } from '@sparsekit/sparse-formats';
import * as tf from '@tensorflow/tfjs-core';
import { zeroShare } from '../training-masks.js';
import { randomKeepMasks } from './random.js';
import { applyKeepMasks } from './variables.js';

export interface RigLOptions {
  /** Overall share of the weights that are zero, throughout training. */
  sparsity: number;
  /** Layer densities: 'erk' (default, RigL's ERK) or 'uniform'. */
  distribution?: 'erk' | 'uniform';
  /** Steps between mask updates (default 100). */
  frequency?: number;
  /** The drop fraction at `beginStep` (default 0.3). */
  dropFraction?: number;
  /** 'cosine' (default): dropFraction x (1 + cos(pi t / (end - begin))) / 2; 'constant'. */
  anneal?: 'cosine' | 'constant';
  /** Masks update at steps begin + frequency, begin + 2 frequency, ... <= endStep (default begin 0). */
  beginStep?: number;
  /** The last step that may update the masks (RigL stops at 75% of training). */
  endStep: number;
  /** Seed of the random initial masks (default 0). */
  seed?: number;
}

/** What one mask update did, per variable. */
export interface RigLUpdate {
  step: number;
  dropFraction: number;
  /** Entries dropped (= grown) per variable. */
  swapped: number[];
  /** Grown entries that were not kept before the update (they start at zero), per variable. */
  regrown: number[];
}

/**
 * RigL over tf.Variables in a custom training loop:
 *
 *   const rigl = new RigL(weights, { sparsity: 0.8, endStep: 0.75 * totalSteps });
 *   for (...) {
 *     rigl.beforeStep();                        // counts the step, zeroes the pruned weights
 *     const { grads } = tf.variableGrads(loss, weights);
 *     optimizer.applyGradients(rigl.gradients(grads)); // mask update when due; masked gradients
 *   }
 *   rigl.apply();
 *
 * `gradients` reads the dense gradients (the gradient reaches pruned entries too, since they are
 * zeros in the variable, not masked out of the graph) and returns them times the masks, so the
 * optimizer never moves a pruned weight.
 */
export class RigL {
  step = 0;
  readonly updates: RigLUpdate[] = [];
  private keeps: Float32Array[];
  private readonly frequency: number;
  private readonly beginStep: number;

  constructor(
    readonly variables: readonly tf.Variable[],
    private readonly options: RigLOptions,
  ) {
    if (variables.length === 0) throw new InvalidArgumentError('variables', 0, 'needs at least one variable');
    this.frequency = options.frequency ?? 100;
    this.beginStep = options.beginStep ?? 0;
    if (!(Number.isSafeInteger(this.frequency) && this.frequency >= 1))
      throw new InvalidArgumentError('frequency', this.frequency, 'must be an integer >= 1');
    if (!(Number.isSafeInteger(this.beginStep) && this.beginStep >= 0))
      throw new InvalidArgumentError('beginStep', this.beginStep, 'must be an integer >= 0');
    if (!(Number.isFinite(options.endStep) && options.endStep > this.beginStep))
      throw new InvalidArgumentError('endStep', options.endStep, `must be > beginStep (${this.beginStep})`);
    const drop = options.dropFraction ?? 0.3;
    if (!(drop >= 0 && drop <= 1)) throw new InvalidArgumentError('dropFraction', drop, 'must be in [0, 1]');
    if (options.anneal !== undefined && options.anneal !== 'cosine' && options.anneal !== 'constant')
      throw new InvalidArgumentError('anneal', options.anneal, "must be 'cosine' or 'constant'");
    this.keeps = randomKeepMasks(
      variables.map((v) => v.shape),
      {
        sparsity: options.sparsity,
        ...(options.distribution === undefined ? {} : { distribution: options.distribution }),
        seed: options.seed ?? 0,
      },
    );
    this.apply();
  }

  /** The drop fraction at `step` (google-research/rigl's annealing: TF's cosine_decay of the initial fraction over end - begin). */
  dropFractionAt(step: number): number {
    const initial = this.options.dropFraction ?? 0.3;
    if (this.options.anneal === 'constant') return initial;
    const span = this.options.endStep - this.beginStep;
    const t = Math.min(Math.max(step - this.beginStep, 0), span);
    return (initial * (1 + Math.cos((Math.PI * t) / span))) / 2;
  }

  /** Whether the masks update at `step`. */
  updateDue(step: number): boolean {
    return (
      step > this.beginStep && step <= this.options.endStep && (step - this.beginStep) % this.frequency === 0
    );
  }

  /** Count the step and zero the pruned weights (before the forward pass). */
  beforeStep(): void {
    this.step++;
    this.apply();
  }

  /**
   * Update the masks when due from these dense gradients (one per variable, in order, or by variable
   * name as tf.variableGrads gives them), then return the gradients times the masks as
   * `optimizer.applyGradients` takes them ({ name, tensor } per variable; new tensors: the caller
   * disposes both).
   */
  gradients(grads: readonly tf.Tensor[] | Record<string, tf.Tensor>): { name: string; tensor: tf.Tensor }[] {
    const list = Array.isArray(grads)
      ? (grads as readonly tf.Tensor[])
      : this.variables.map((v) => (grads as Record<string, tf.Tensor>)[v.name]);
    if (list.length !== this.variables.length || list.some((g) => g === undefined))
      throw new ShapeMismatchError(
        [this.variables.length],
        [list.length],
        'RigL gradients (one per variable)',
      );
    list.forEach((g, i) => {
      if (g!.size !== this.variables[i]!.size)
        throw new ShapeMismatchError(
          this.variables[i]!.shape,
          g!.shape,
          `RigL gradient of ${this.variables[i]!.name}`,
        );
    });
    if (this.updateDue(this.step)) this.update(list as tf.Tensor[]);
    return this.variables.map((v, i) => ({
      name: v.name,
      tensor: tf.tidy(() => tf.mul(list[i]!, tf.tensor(this.keeps[i]!, v.shape))),
    }));
  }

  /** Drop the smallest kept |w| and grow the largest |gradient| among the rest; grown entries start at 0. */
  private update(grads: tf.Tensor[]): void {
    const fraction = this.dropFractionAt(this.step);
    const swapped: number[] = [];
    const regrown: number[] = [];
    this.variables.forEach((v, i) => {
      const old = this.keeps[i]!;
      const w = v.dataSync() as Float32Array;
      const g = grads[i]!.dataSync() as Float32Array;
      let kept = 0;
      for (const k of old) kept += k;
      const drop = Math.round(kept * fraction);
      // Retain the kept - drop largest |w| among the kept.
      const dropScore = new Float64Array(w.length);
      for (let j = 0; j < w.length; j++)
        dropScore[j] = old[j] === 1 ? Math.abs(w[j]!) : Number.NEGATIVE_INFINITY;
      const next = new Float32Array(w.length);
      for (const j of highestIndices(dropScore, kept - drop)) next[j] = 1;
      // Grow the drop largest |gradient| among the rest (a just-dropped entry may come back).
      const growScore = new Float64Array(w.length);
      for (let j = 0; j < w.length; j++)
        growScore[j] = next[j] === 1 ? Number.NEGATIVE_INFINITY : Math.abs(g[j]!);
      const values = Float32Array.from(w);
      let fresh = 0;
      for (const j of highestIndices(growScore, drop)) {
        next[j] = 1;
        if (old[j] === 0) {
          values[j] = 0;
          fresh++;
        }
      }
      for (let j = 0; j < w.length; j++) values[j]! *= next[j]!;
      tf.tidy(() => {
        v.assign(tf.tensor(values, v.shape));
      });
      this.keeps[i] = next;
      swapped.push(drop);
      regrown.push(fresh);
    });
    this.updates.push({ step: this.step, dropFraction: fraction, swapped, regrown });
  }

  /** weight := weight * mask for every variable. */
  apply(): void {
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
}
