export { loadCalibration, loadThresholds, saveCalibration, saveThresholds } from './io.js';
export { loadPredictors, savePredictors } from './predictor-io.js';
