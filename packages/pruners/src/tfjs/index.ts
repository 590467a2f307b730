// @sparsekit/pruners/tfjs: pruning during training on tfjs-layers, with TensorFlow Model
// Optimization's API and semantics. tfjs (tfjs-core and tfjs-layers) is an optional peer.

export { logitDistillationLoss, squareHeadLoss } from './distillation.js';
export { type ImpOptions, iterativeMagnitudePruning } from './imp.js';
export { type NmTrainingOptions, type ShadowedWeight, shadowed } from './nm-training.js';
export { perpTrainable } from './perp.js';
export {
  isPrunable,
  PRUNABLE_WEIGHTS,
  type PrunableLayer,
  PruningStepMissingError,
  prunableWeights,
} from './prunable.js';
export {
  modelMasks,
  PruningSummaries,
  type PruningSummariesOptions,
  type PruningSummary,
  prunedLayers,
  prunedWeightValues,
  pruneLowMagnitude,
  pruningSummaries,
  setModelMasks,
  stripPruning,
  UpdatePruningStep,
  updatePruningStep,
} from './prune.js';
export { pruneRandomAtInit, type RandomInitOptions, randomKeepMasks } from './random.js';
export { rebuildModel } from './rebuild.js';
export { RigL, type RigLOptions, type RigLUpdate } from './rigl.js';
export { type SoupOptions, sparseModelSoup } from './soups.js';
export { VariablePruner, type VariablePrunerOptions } from './variables.js';
export { PruneLowMagnitude, type PruneOptions } from './wrapper.js';
