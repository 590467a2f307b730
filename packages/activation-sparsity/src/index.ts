export { ActivationCalibration, type CalibrateOptions, calibrateActivations } from './calibrate.js';
export { type GreedyOptions, type GreedyReport, greedyThresholds } from './greedy.js';
export { type HistogramData, type HistogramOptions, SiteHistogram } from './histogram.js';
export {
  type MeasureOptions,
  measureActivations,
  type SiteSparsity,
  type SparsityMeasurement,
} from './measure.js';
export {
  ACTIVATION_SITES,
  type ActivationSite,
  ALL_ACTIVATION_SITES,
  type HookableLM,
  SITE_READERS,
  siteKey,
} from './sites.js';
export {
  type AppliedSparsity,
  type AppliedThresholds,
  type ApplyOptions,
  applyThresholds,
  catsThresholds,
  type ThresholdEntry,
  type Thresholds,
  tealThresholds,
} from './thresholds.js';
