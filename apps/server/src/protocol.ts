// What a worker process runs, and the messages between it and whoever forked it (the local pool, or
// a Redis worker).

/** A job id: the local store's numbers, or BullMQ job ids with Redis. */
export type JobId = number | string;

/** A sweep as the worker runs it: each point pruned into its folder, then evaluated, then one report. */
export interface SweepPlan {
  /** Per point: a label, the prune command line, and the eval command line and where its result goes. */
  points: { label: string; prune: string[]; eval: string[]; evalFile: string }[];
  /** The dense model's eval command line (the sweep's first row) and where its result goes. */
  dense: { eval: string[]; evalFile: string };
  /** The report command line's folder. */
  reportDir: string;
}

/** A job's work: its folder, its `sparsekit` arguments (or a sweep), and whether a report follows. */
export interface RunPlan {
  dir: string;
  argv: string[];
  sweep?: SweepPlan;
  /** After a successful run: its result into DIR/result.json and a report of it into DIR/report. */
  report?: { label: string; dir: string };
}

export type ToWorker = RunPlan & {
  type: 'run';
  id: JobId;
  /** The job's log file. */
  log: string;
};

export type ToPool =
  | { type: 'ready' }
  | { type: 'log'; id: JobId; line: string }
  | { type: 'done'; id: JobId; code: number; stdout: string; error?: string };
