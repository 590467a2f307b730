// The one bench runner of the repository: options, medians, result files, and the pieces every
// kernel benchmark shares (timing over weight copies beyond the last-level cache, the onnxruntime
// MatMul baseline), so every table is measured and summarised the same way.
export { copiesFor, lastLevelCacheBytes, machineFacts, withCopies, workingSetBytes } from './cache.js';
export { reportResults, type TargetCheck, writeJsonAtomic, writeTextAtomic } from './files.js';
export { measure, measureRounds, type Subject, type Timing, type TimingOptions } from './measure.js';
export {
  type MatmulSubject,
  matmulModel,
  type OnnxMatmulOptions,
  onnxMatmulSubject,
  transposed,
} from './onnx-matmul.js';
export { flag, numberOption, option } from './options.js';
export { median } from './stats.js';
export { markdownTable, ratio } from './table.js';
export { type TfjsMatmulOptions, tfjsMatmulSubject } from './tfjs-matmul.js';
