export {
  readSweepFile,
  runSweep,
  type SweepOptions,
  type SweepPoint,
  type SweepResult,
  sweepGrid,
} from './sweep/sweep.js';
