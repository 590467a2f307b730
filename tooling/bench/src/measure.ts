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

/**
 * `measure` for several subjects in interleaved rounds: each round times every subject once (with
 * `budgetMs / rounds`), in a rotated order, and each subject's result is the median of its round
 * medians. On a shared machine whose load changes from minute to minute, the subjects then see the
 * same conditions, so their ratios hold up better than when each is timed in one stretch.
 */
export async function measureRounds(
  subjects: ReadonlyArray<Pick<Subject, 'call' | 'copies'>>,
  options: TimingOptions & { rounds: number },
  onRound?: (round: number) => void,
): Promise<Timing[]> {
  const rounds = Math.max(1, Math.floor(options.rounds));
  const per = { ...options, budgetMs: options.budgetMs / rounds };
  const cold = subjects.map((): number[] => []);
  const warm = subjects.map((): number[] => []);
  const reps = subjects.map(() => 0);
  for (let r = 0; r < rounds; r++) {
    for (let j = 0; j < subjects.length; j++) {
      const i = (j + r) % subjects.length;
      const t = await measure(subjects[i]!, per);
      cold[i]!.push(t.coldMs);
      warm[i]!.push(t.warmMs);
      reps[i]! += t.reps;
    }
    onRound?.(r);
  }
  return subjects.map((_, i) => ({ coldMs: median(cold[i]!), warmMs: median(warm[i]!), reps: reps[i]! }));
}
