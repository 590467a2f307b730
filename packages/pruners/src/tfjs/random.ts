// Random pruning at initialisation ("The Unreasonable Effectiveness of Random Pruning"): each
// prunable weight keeps a random set of entries, at one density everywhere or at ERK densities.
import { Rng } from '@sparsekit/core';
import type * as tfl from '@tensorflow/tfjs-layers';
import { checkSparsity } from '../masks.js';
import { erkDensities } from '../methods/global.js';
import { FixedMask } from '../schedules.js';
import { prunedLayers, pruneLowMagnitude, setModelMasks } from './prune.js';

export interface RandomInitOptions {
  /** Overall share of the prunable weights removed. */
  sparsity: number;
  /** 'erk' (default): densities proportional to sum(dims) / prod(dims) (RigL's ERK); 'uniform'. */
  distribution?: 'erk' | 'uniform';
  seed?: number;
}

/**
 * Wrap the model's prunable layers with random fixed masks (exactly round(size x layer sparsity)
 * zeros per weight, seeded) and apply them; train the result as it is (fit with
 * `updatePruningStep()`), the masks never change.
 */
export function pruneRandomAtInit(model: tfl.LayersModel, options: RandomInitOptions): tfl.LayersModel {
  const pruned = pruneLowMagnitude(model, { pruningSchedule: new FixedMask() });
  const shapes = prunedLayers(pruned).flatMap((w) => w.prunedWeights().map((v) => v.shape as number[]));
  setModelMasks(pruned, randomKeepMasks(shapes, options));
  return pruned;
}

/**
 * Random keep-masks (1 kept) for weights of these shapes: exactly round(size x layer sparsity)
 * zeros each, the layer sparsities uniform or ERK for the overall `sparsity`, seeded.
 */
export function randomKeepMasks(
  shapes: ReadonlyArray<readonly number[]>,
  options: RandomInitOptions,
): Float32Array[] {
  checkSparsity(options.sparsity);
  const densities =
    (options.distribution ?? 'erk') === 'erk'
      ? erkDensities(shapes, options.sparsity)
      : shapes.map(() => 1 - options.sparsity);
  const rng = new Rng(options.seed ?? 0);
  return shapes.map((shape, i) => {
    const size = shape.reduce((a, b) => a * b, 1);
    const keep = new Float32Array(size).fill(1);
    for (const k of rng.sample(size, Math.round(size * (1 - densities[i]!)))) keep[k] = 0;
    return keep;
  });
}
