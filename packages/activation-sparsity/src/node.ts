export { loadCalibration, loadThresholds, saveCalibration, saveThresholds } from './io.js';
