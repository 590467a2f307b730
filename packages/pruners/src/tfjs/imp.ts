// Iterative magnitude pruning with weight rewinding (the lottery-ticket procedure of open_lth):
// train, prune a fraction of the remaining weights by global magnitude, rewind the survivors to
// their values at an early step, train again; repeat.
import { InvalidArgumentError } from '@sparsekit/core';
import type * as tf from '@tensorflow/tfjs-core';
import type * as tfl from '@tensorflow/tfjs-layers';
import { FixedMask } from '../schedules.js';
import { globalMagnitudeKeep, zeroShare } from '../training-masks.js';
import { modelMasks, prunedLayers, prunedWeightValues, pruneLowMagnitude, setModelMasks } from './prune.js';

export interface ImpOptions {
  /** Pruning rounds (each prunes `fraction` of the remaining weights, then retrains). */
  rounds: number;
  /** Of the remaining weights, the share pruned each round (default 0.2, open_lth's). */
  fraction?: number;
  /**
   * The model's weights (`model.getWeights()`, every weight, in that order) at the rewind step;
   * before each retraining every weight is reset to these and the masks applied. Default: the
   * weights as they are when IMP starts (rewinding to the trained dense model).
   */
  rewindTo?: tf.Tensor[];
  /** Train the pruned model for one round (compile it: a fresh optimizer each round, as open_lth; fit with `updatePruningStep()`). */
  train: (model: tfl.LayersModel, round: number) => Promise<void>;
  /** After each round's training, with the overall sparsity of the pruned weights. */
  onRound?: (round: { round: number; sparsity: number; model: tfl.LayersModel }) => void | Promise<void>;
}

/**
 * IMP on a trained tfjs-layers model: returns the pruned (wrapped) model after the last round.
 * Masks are global over every prunable weight of the model (Conv and Dense kernels, embeddings),
 * never over biases or normalisation parameters.
 */
export async function iterativeMagnitudePruning(
  model: tfl.LayersModel,
  options: ImpOptions,
): Promise<tfl.LayersModel> {
  const { rounds } = options;
  if (!(Number.isInteger(rounds) && rounds >= 1))
    throw new InvalidArgumentError('rounds', rounds, 'must be an integer >= 1');
  const fraction = options.fraction ?? 0.2;
  const count = model.getWeights().length;
  if (options.rewindTo !== undefined && options.rewindTo.length !== count)
    throw new InvalidArgumentError(
      'rewindTo',
      options.rewindTo.length,
      `must hold every weight of the model (${count})`,
    );
  const pruned = pruneLowMagnitude(model, { pruningSchedule: new FixedMask() });
  const rewind = (options.rewindTo ?? model.getWeights()).map((t) => t.clone());
  const wrappers = prunedLayers(pruned);
  if (wrappers.length === 0) throw new InvalidArgumentError('model', model.name, 'has no prunable layers');
  try {
    for (let round = 1; round <= rounds; round++) {
      const keeps = globalMagnitudeKeep(prunedWeightValues(pruned), fraction, modelMasks(pruned));
      model.setWeights(rewind);
      setModelMasks(pruned, keeps);
      await options.train(pruned, round);
      for (const w of wrappers) w.applyMasks();
      await options.onRound?.({ round, sparsity: zeroShare(keeps), model: pruned });
    }
  } finally {
    for (const t of rewind) t.dispose();
  }
  return pruned;
}
