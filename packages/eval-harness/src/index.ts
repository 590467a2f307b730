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
