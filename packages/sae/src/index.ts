export { geometricMedian } from './geometric-median.js';
export {
  auxKLoss,
  auxKMask,
  nmse,
  type ReconstructionMetrics,
  reconstructionMetrics,
} from './metrics.js';
export {
  collectActivations,
  type FeatureContext,
  type FeatureData,
  featureData,
  hookName,
  parseHookName,
  type SaeSite,
  type SpliceScores,
  spliceSae,
  spliceScores,
} from './model.js';
export {
  type Encoded,
  SAE_ARCHITECTURES,
  Sae,
  type SaeArchitecture,
  type SaeOptions,
  type SaeParams,
} from './sae.js';
export {
  foldDecoderNorms,
  foldScalingFactor,
  type NormalizeActivations,
  parseSaeLensConfig,
  SAELENS_LAYOUT_VERSION,
  SaeFileError,
  type SaeLensConfig,
  saeFromSaeLens,
  saeToSaeLens,
} from './saelens.js';
