export {
  auxKLoss,
  nmse,
  type ReconstructionMetrics,
  reconstructionMetrics,
} from './metrics.js';
export {
  type Encoded,
  SAE_ARCHITECTURES,
  Sae,
  type SaeArchitecture,
  type SaeOptions,
  type SaeParams,
} from './sae.js';
