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
  type AppliedPrediction,
  type AppliedPredictors,
  activeLabels,
  applyPredictors,
  type LabelRule,
  MetricCounts,
  MlpPredictor,
  type MlpPredictorInit,
  measurePredictors,
  type PredictorMetrics,
  predictorMetrics,
} from './predictor.js';
export {
  type BlockPredictorData,
  collectPredictorData,
  type PredictorData,
  type PredictorDataOptions,
  splitRows,
} from './predictor-data.js';
export {
  defaultRank,
  type EpochScores,
  type LabelChoice,
  type PredictorTrainReport,
  type TrainedPredictors,
  type TrainPredictorOptions,
  trainPredictors,
} from './predictor-train.js';
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
