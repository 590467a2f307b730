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
export { type BarChart, barChart, type ChartPanel, escapeXml } from './report/chart.js';
export {
  addToEntry,
  type ComparisonEntry,
  comparisonChart,
  comparisonHtml,
  comparisonMarkdown,
} from './report/compare.js';
export { type Heatmap, heatmap, type LineChart, type LineSeries, lineChart } from './report/plot.js';
export { type SweepRow, sweepChart, sweepMarkdown } from './sweep/report.js';
export {
  HIGHER_IS_BETTER,
  METRICS,
  type MetricSpec,
  OUTPUT_TYPES,
  type OutputType,
  parseTaskText,
  type TaskConfig,
  taskMetrics,
  taskSplits,
  validateTaskConfig,
} from './tasks/config.js';
export { MAX_DOCUMENTS, parseDocuments } from './tasks/dataset.js';
export {
  contextOf,
  type DocResult,
  type EvaluateOptions,
  evaluateTask,
  evaluateTasks,
  type LmEvalResults,
  type LoadedTask,
  type TaskResult,
} from './tasks/evaluate.js';
export {
  type Aggregate,
  argmax,
  bootstrapStderr,
  exactMatch,
  meanAggregate,
  meanStderr,
  perplexityAggregate,
  sampleStddev,
  weightedAggregate,
} from './tasks/metrics.js';
export { encodePair, generateUntil, type LoglikelihoodResult, loglikelihoods } from './tasks/requests.js';
export { type Doc, docToChoice, docToTarget, docToText, literal, render } from './tasks/template.js';
