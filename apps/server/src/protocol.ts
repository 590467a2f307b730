// The messages between the pool (server process) and its worker processes.

/** A sweep as the worker runs it: each point pruned into its folder, then evaluated, then one report. */
export interface SweepPlan {
  /** Per point: a label, the prune command line, the folder it writes, and the eval command line. */
  points: { label: string; prune: string[]; eval: string[]; evalFile: string }[];
  /** The dense model's eval command line (the sweep's first row) and where its result goes. */
  dense: { eval: string[]; evalFile: string };
  /** The report command line's folder. */
  reportDir: string;
}

export type ToWorker = {
  type: 'run';
  id: number;
  /** The `sparsekit` arguments (unused for a sweep). */
  argv: string[];
  /** The job's log file. */
  log: string;
  sweep?: SweepPlan;
  /** After a successful run: its result into DIR/result.json and a report of it into DIR/report. */
  report?: { label: string; dir: string };
};

export type ToPool =
  | { type: 'ready' }
  | { type: 'log'; id: number; line: string }
  | { type: 'done'; id: number; code: number; stdout: string; error?: string };
