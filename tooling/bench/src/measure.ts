// Timing of benchmark subjects that hold several copies of their weight: "cold" calls rotate
// through the copies so every call reads a weight that left the cache since its last use (as
// decoding a model reads each layer once per token), "warm" calls repeat copy 0.
import { median } from './stats.js';

/** What a benchmark times: a call on copy `i` of its weight, for i in [0, copies). */
export interface Subject {
  /** Row label in the tables. */
  readonly kernel: string;
  /** Value type of the weight as the kernel reads it ('f32', 'f16', ...). */
  readonly dtype: string;
  readonly threads: number;
  /** Bytes of one copy of the weight as the kernel reads it. */
  readonly weightBytes: number;
  readonly copies: number;
  /** Run once with copy `i`; may return a promise (awaited, and timed). */
  call(i: number): unknown;
  dispose(): void;
}

export interface Timing {
  /** Median over calls rotating through the copies. */
  coldMs: number;
  /** Median over repeated calls on copy 0. */
  warmMs: number;
  reps: number;
}

export interface TimingOptions {
  /** Aim for about this much time per column (cold or warm). */
  budgetMs: number;
  minReps: number;
  maxReps: number;
}

async function timed(subject: Pick<Subject, 'call'>, i: number): Promise<number> {
  const start = performance.now();
  await subject.call(i);
  return performance.now() - start;
}

/** Cold and warm medians of `subject.call`, with the repetitions fitted to the time budget. */
export async function measure(
  subject: Pick<Subject, 'call' | 'copies'>,
  options: TimingOptions,
): Promise<Timing> {
  // Three untimed calls warm the code paths (the copies were written, so their pages are mapped)
  // and estimate the time per call.
  let estimate = Number.POSITIVE_INFINITY;
  for (let i = 0; i < Math.min(3, subject.copies); i++) estimate = await timed(subject, i);
  const reps = Math.max(options.minReps, Math.min(options.maxReps, Math.ceil(options.budgetMs / estimate)));
  const cold: number[] = [];
  for (let r = 0; r < reps; r++) cold.push(await timed(subject, (r + 3) % subject.copies));
  const warm: number[] = [];
  await timed(subject, 0);
  await timed(subject, 0);
  for (let r = 0; r < reps; r++) warm.push(await timed(subject, 0));
  return { coldMs: median(cold), warmMs: median(warm), reps };
}
