/**
 * @deprecated Moved to @sparsekit/sparse-formats (shared by every algorithm package); these
 * re-exports go in the next minor version.
 */
export {
  cholesky,
  choleskyInverse,
  HessianAccumulator,
  InputNormAccumulator,
  inverseUpperFactor,
  kthSmallest,
  lowerTriangularInverse,
  lowestIndices,
  markLowest,
  measuredSparsity,
  NotPositiveDefiniteError,
  symmetricEigen,
  upperCholesky,
} from '@sparsekit/sparse-formats';
export {
  type BlockShape,
  blockMaskOf,
  blockScores,
  blockText,
  checkBlockShape,
  expandBlockMask,
  parseBlockShape,
} from './blocks.js';
export { type EssentialSparsity, essentialSparsity, type SweepPoint } from './essential.js';
export {
  applyMask,
  checkModelWeights,
  checkNm,
  checkSparsity,
  checkWeight,
  lowestShareMask,
  magnitudes,
  matrixMask,
  nmMask,
  rowMask,
} from './masks.js';
export {
  type FieldKind,
  METHOD_NAMES,
  METHOD_TABLE,
  type MethodField,
  type MethodSpec,
  methodSpec,
} from './method-table.js';
export {
  type AllocationModelOptions,
  type AllocationReport,
  erkDensities,
  globalMagnitude,
  pruneAllocation,
  type RandomPruneOptions,
  randomPrune,
} from './methods/global.js';
export { type MagnitudeOptions, magnitude } from './methods/magnitude.js';
export {
  type SliceGptOptions,
  type SliceGptReport,
  type SlicePointReport,
  slicedWidth,
  sliceGpt,
} from './methods/slicegpt.js';
export {
  blockSaliencies,
  type PruneResult,
  type SparseGptOptions,
  sparseGpt,
} from './methods/sparsegpt.js';
export {
  pruneBlocks,
  pruneColumns,
  pruneRows,
  pruneStructured,
  type StructuredModelOptions,
  type StructuredReport,
} from './methods/structured.js';
export { type WandaOptions, wanda, wandaScores } from './methods/wanda.js';
export { pqIndex, reconstructionError } from './metrics.js';
export { type OwlAllocation, type OwlOptions, owlSparsities } from './owl.js';
export { type PackOptions, packLayer, packLayers, packWeight } from './pack.js';
export {
  type LayerReport,
  type Pattern,
  type PruneMethod,
  type PruneModelOptions,
  type PruneReport,
  patternText,
  pruneModel,
} from './prune-model.js';
export {
  checkRecipeLayers,
  MAX_CALIBRATION_SAMPLES,
  parseRecipe,
  type Recipe,
  type RecipeMethod,
  recipeLayerFilter,
  recipeOptions,
  validateRecipe,
} from './recipe.js';
export {
  needsCalibration,
  type RecipeModel,
  type RecipeReport,
  type RunRecipeOptions,
  runRecipe,
} from './run-recipe.js';
export {
  ConstantSparsity,
  FixedMask,
  masksDue,
  PolynomialDecay,
  type PruningDecision,
  type PruningSchedule,
  type PruningScheduleConfig,
  scheduleFromConfig,
  shouldPruneAt,
} from './schedules.js';
export {
  globalMagnitudeKeep,
  type KeepMaskOptions,
  magnitudeKeepMask,
  nmKeepMask,
  type ThresholdMask,
  type ThresholdMaskOptions,
  thresholdKeep,
  trainingKeepMask,
  zeroShare,
} from './training-masks.js';
