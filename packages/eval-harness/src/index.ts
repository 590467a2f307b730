export {
  type CalibrationWindowOptions,
  calibrationWindows,
} from './calibration/windows.js';
export {
  countWords,
  logProbability,
  type PerplexityOptions,
  type PerplexityProtocol,
  type PerplexityResult,
  perplexity,
  perplexityOfTokens,
  scoreWindows,
} from './perplexity/perplexity.js';
export { rollingWindows, type ScoringWindow, sparsegptWindows } from './perplexity/windows.js';
export { type SweepRow, sweepChart, sweepMarkdown } from './sweep/report.js';
