// Sparse Model Soups (Zimmer et al., arXiv 2306.16788; ZIB-IOL/SMS): prune once, retrain several
// copies on the same mask with varied hyperparameters, average them (the average keeps the mask,
// since every copy has zeros there), and start the next cycle from the soup.
import { InvalidArgumentError } from '@sparsekit/core';
import * as tf from '@tensorflow/tfjs-core';
import type * as tfl from '@tensorflow/tfjs-layers';
import { FixedMask } from '../schedules.js';
import { globalMagnitudeKeep, zeroShare } from '../training-masks.js';
import { prunedWeightValues, pruneLowMagnitude, setModelMasks, stripPruning } from './prune.js';

export interface SoupOptions {
  /** A fresh model of the same architecture (each ingredient trains in its own copy). */
  build: () => tfl.LayersModel;
  /** Pruning cycles (default 1; SMS's default). */
  cycles?: number;
  /** Copies retrained per cycle (default 2; SMS's default m). */
  ingredients?: number;
  /** The overall sparsity after the last cycle; each cycle prunes 1 - (1 - s)^(1 / cycles) of the remaining weights, by global magnitude. */
  sparsity: number;
  /** Retrain one ingredient (compile it, fit with `updatePruningStep()`); vary the seed, order or learning rate by `ingredient`. */
  train: (model: tfl.LayersModel, cycle: number, ingredient: number) => Promise<void>;
  /** After each cycle, with the soup (a plain model) and its ingredients' weights. */
  onCycle?: (cycle: {
    cycle: number;
    sparsity: number;
    soup: tfl.LayersModel;
    ingredients: tf.Tensor[][];
  }) => void | Promise<void>;
}

/**
 * Sparse Model Soups on a trained tfjs-layers model: returns the final soup as a plain model (the
 * `build()` architecture) holding the averaged, sparse weights. Every weight is averaged, biases
 * and normalisation statistics included (SMS averages the whole state and then recomputes
 * BatchNorm statistics; recompute them yourself if the model has BatchNorm).
 */
export async function sparseModelSoup(
  model: tfl.LayersModel,
  options: SoupOptions,
): Promise<tfl.LayersModel> {
  const cycles = options.cycles ?? 1;
  const ingredients = options.ingredients ?? 2;
  for (const [name, v, min] of [
    ['cycles', cycles, 1],
    ['ingredients', ingredients, 1],
  ] as const)
    if (!(Number.isInteger(v) && v >= min))
      throw new InvalidArgumentError(name, v, `must be an integer >= ${min}`);
  if (!(options.sparsity > 0 && options.sparsity < 1))
    throw new InvalidArgumentError('sparsity', options.sparsity, 'must be in (0, 1)');
  const perCycle = 1 - (1 - options.sparsity) ** (1 / cycles);
  let current = model.getWeights().map((t) => t.clone());
  let keeps: Float32Array[] | undefined;
  let soup = model;
  for (let cycle = 1; cycle <= cycles; cycle++) {
    // The mask: global magnitude over the current soup's prunable weights.
    const probe = pruneLowMagnitude(withWeights(options.build(), current), {
      pruningSchedule: new FixedMask(),
    });
    keeps = globalMagnitudeKeep(prunedWeightValues(probe), perCycle, keeps);
    const trained: tf.Tensor[][] = [];
    for (let i = 0; i < ingredients; i++) {
      const copy = pruneLowMagnitude(withWeights(options.build(), current), {
        pruningSchedule: new FixedMask(),
      });
      setModelMasks(copy, keeps);
      await options.train(copy, cycle, i);
      trained.push(
        stripPruning(copy)
          .getWeights()
          .map((t) => t.clone()),
      );
    }
    const averaged = current.map((_, j) =>
      tf.tidy(() => tf.div(tf.addN(trained.map((w) => w[j]!)), ingredients)),
    );
    for (const t of current) t.dispose();
    current = averaged;
    soup = withWeights(options.build(), current);
    await options.onCycle?.({ cycle, sparsity: zeroShare(keeps), soup, ingredients: trained });
    for (const w of trained) for (const t of w) t.dispose();
  }
  for (const t of current) t.dispose();
  return soup;
}

function withWeights(m: tfl.LayersModel, weights: tf.Tensor[]): tfl.LayersModel {
  if (m.getWeights().length !== weights.length)
    throw new InvalidArgumentError(
      'build()',
      m.name,
      `must build the model's architecture (${weights.length} weights)`,
    );
  m.setWeights(weights);
  return m;
}
