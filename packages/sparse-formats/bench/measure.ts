// Timing: each call is timed on its own; "cold" calls rotate through the subject's copies so every
// call reads a weight that left the cache since its last use, "warm" calls repeat copy 0.
import { readFileSync } from 'node:fs';
import { median } from '@sparsekit/bench';
import type { Subject } from './subjects.js';

export interface Timing {
  coldMs: number;
  warmMs: number;
  reps: number;
}

export interface TimingOptions {
  /** Aim for about this much time per column (cold or warm). */
  budgetMs: number;
  minReps: number;
  maxReps: number;
}

export { median };

async function timed(subject: Subject, i: number): Promise<number> {
  const start = performance.now();
  await subject.call(i);
  return performance.now() - start;
}

export async function measure(subject: Subject, options: TimingOptions): Promise<Timing> {
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

/** Size of the last-level cache in bytes (Linux sysfs), or undefined when unknown. */
export function lastLevelCacheBytes(): number | undefined {
  for (const index of [3, 2]) {
    try {
      const text = readFileSync(`/sys/devices/system/cpu/cpu0/cache/index${index}/size`, 'utf8').trim();
      const match = /^(\d+)([KMG]?)$/.exec(text);
      if (match === null) continue;
      const unit = { '': 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3 }[match[2] as '' | 'K' | 'M' | 'G'];
      return Number(match[1]) * unit;
    } catch {
      // Not Linux, or no such cache level.
    }
  }
  return undefined;
}
