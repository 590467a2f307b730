export {
  readSweepFile,
  runSweep,
  type SweepOptions,
  type SweepPoint,
  type SweepResult,
  sweepGrid,
} from './sweep/sweep.js';
export { openRequestCache, type RequestCache } from './tasks/cache.js';
export { type LoadTaskOptions, loadTask, MAX_DATA_BYTES } from './tasks/load.js';
