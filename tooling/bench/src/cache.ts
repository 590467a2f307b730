// Working sets beyond the last-level cache: how many copies of a weight a benchmark rotates through.
import { readFileSync } from 'node:fs';
import * as os from 'node:os';

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

/**
 * Bytes the copies of one weight should span: `factor` times the last-level cache `llc` (from
 * `lastLevelCacheBytes()`; 64 MiB when unknown), in whole MiB.
 */
export function workingSetBytes(llc: number | undefined, factor = 3): number {
  return Math.ceil((factor * (llc ?? 64 * 2 ** 20)) / 2 ** 20) * 2 ** 20;
}

/** Copies of a weight of `bytes` that span `workingSet` bytes (at least `min`, at most `max`). */
export function copiesFor(bytes: number, workingSet: number, min = 3, max = 2000): number {
  return Math.max(min, Math.min(max, Math.ceil(workingSet / Math.max(1, bytes))));
}

/**
 * `make(copies)`, retried with half the copies when it throws (a baseline whose own heap is full),
 * down to one copy; the last error is rethrown.
 */
export async function withCopies<T>(
  make: (copies: number) => Promise<T>,
  copies: number,
  warn: (message: string) => void = console.warn,
): Promise<T> {
  for (let c = copies; ; c = Math.floor(c / 2)) {
    try {
      return await make(c);
    } catch (error) {
      if (c <= 1) throw error;
      warn(`  (${String(error).slice(0, 80)}; retrying with ${Math.floor(c / 2)} copies)`);
    }
  }
}

/** The machine a result was measured on, for every result file. */
export function machineFacts(llc = lastLevelCacheBytes()) {
  return {
    cpu: os.cpus()[0]?.model ?? 'unknown',
    cores: os.availableParallelism(),
    lastLevelCacheBytes: llc ?? null,
    memoryBytes: os.totalmem(),
    node: process.version,
  };
}
