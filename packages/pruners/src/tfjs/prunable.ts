// Which layers and weights pruning during training reaches: TFMOT's registry, the PrunableLayer
// interface of custom layers, and the error for a missing step callback.
import { InvalidArgumentError, SparsekitError } from '@sparsekit/core';
import type * as tfl from '@tensorflow/tfjs-layers';

type LayerVariable = tfl.LayerVariable;
type Layer = tfl.layers.Layer;

/** The step counter was never set: `updatePruningStep()` is missing from `fit`'s callbacks. */
export class PruningStepMissingError extends SparsekitError {
  static override readonly code = 'pruners/pruning-step-missing';
  static override readonly hint =
    'pass callbacks: [updatePruningStep()] to model.fit (TFMOT: tfmot.sparsity.keras.UpdatePruningStep())';
  constructor(layer: string) {
    super(
      PruningStepMissingError.code,
      `${layer}: the pruning wrapper requires the updatePruningStep() callback during training. Add it to your model.fit call's callbacks.`,
    );
  }
}

/** A custom layer that says which of its weights to prune (TFMOT's `PrunableLayer`). */
export interface PrunableLayer {
  getPrunableWeights(): LayerVariable[];
}

/**
 * The weights pruned in each built-in layer, by class, as TFMOT's registry (and DepthwiseConv2D's
 * depthwise kernel, which TFMOT leaves dense). Biases and normalisation parameters are never pruned.
 */
export const PRUNABLE_WEIGHTS: Readonly<Record<string, readonly string[]>> = {
  Dense: ['kernel'],
  Conv1D: ['kernel'],
  Conv2D: ['kernel'],
  Conv3D: ['kernel'],
  Conv2DTranspose: ['kernel'],
  Conv3DTranspose: ['kernel'],
  DepthwiseConv2D: ['depthwise_kernel'],
  SeparableConv1D: ['pointwise_kernel'],
  SeparableConv2D: ['pointwise_kernel'],
  Embedding: ['embeddings'],
  LSTM: ['kernel', 'recurrent_kernel'],
  GRU: ['kernel', 'recurrent_kernel'],
  SimpleRNN: ['kernel', 'recurrent_kernel'],
};

function hasPrunableWeights(layer: Layer): layer is Layer & PrunableLayer {
  return typeof (layer as Partial<PrunableLayer>).getPrunableWeights === 'function';
}

export function weightBaseName(w: LayerVariable): string {
  return w.originalName.split('/').at(-1)!.replace(/:\d+$/, '');
}

/** Whether `layer` can be wrapped: a registered class or a `PrunableLayer`. */
export function isPrunable(layer: Layer): boolean {
  return hasPrunableWeights(layer) || layer.getClassName() in PRUNABLE_WEIGHTS;
}

/** The prunable weights of a built layer. */
export function prunableWeights(layer: Layer): LayerVariable[] {
  if (hasPrunableWeights(layer)) return layer.getPrunableWeights();
  const names = PRUNABLE_WEIGHTS[layer.getClassName()];
  if (names === undefined)
    throw new InvalidArgumentError(
      'layer',
      `${layer.name} (${layer.getClassName()})`,
      `is not prunable: supported are ${Object.keys(PRUNABLE_WEIGHTS).join(', ')}, or a layer with getPrunableWeights()`,
    );
  return layer.trainableWeights.filter((w) => names.includes(weightBaseName(w)));
}
