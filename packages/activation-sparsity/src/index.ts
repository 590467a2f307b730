export {
  type AppliedSparsity,
  type AppliedThresholds,
  type ApplyOptions,
  applyThresholds,
} from './apply.js';
export {
  ActivationCalibration,
  CALIBRATION_KINDS,
  type CalibrateOptions,
  type CalibrationKind,
  calibrateActivations,
  calibrateDeltas,
} from './calibrate.js';
export { type ChessOptions, calibrateChess, chessThresholds } from './chess.js';
export {
  type GreedyOptions,
  type GreedyPoint,
  type GreedyReport,
  greedyThresholds,
  greedyThresholdsAt,
} from './greedy.js';
export { type HistogramData, type HistogramOptions, SiteHistogram } from './histogram.js';
export {
  type MeasureOptions,
  measureActivations,
  type SiteSparsity,
  type SparsityMeasurement,
  weightsSkipped,
} from './measure.js';
export {
  ACTIVATION_METHODS,
  type ActivationMethod,
  type ActivationMethodName,
  activationMethod,
  calibrateFor,
  type MakeRulesOptions,
  makeRules,
} from './methods.js';
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
  predictorRows,
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
export { fatReluThresholds, type ProSparseStage, proSparseFactor } from './prosparse.js';
export { type SiriusOptions, type SiriusResult, siriusGenerate } from './sirius.js';
export {
  ACTIVATION_SITES,
  type ActivationSite,
  ALL_ACTIVATION_SITES,
  type HookableLM,
  SITE_READERS,
  siteKey,
} from './sites.js';
export {
  catsThresholds,
  deltaThresholds,
  THRESHOLD_METHODS,
  type ThresholdEntry,
  type ThresholdMethod,
  type Thresholds,
  tealThresholds,
  topKSparsity,
} from './thresholds.js';
