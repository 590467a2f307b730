import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  copiesFor,
  lastLevelCacheBytes,
  measure,
  measureRounds,
  onnxMatmulSubject,
  transposed,
  withCopies,
  workingSetBytes,
  writeJsonAtomic,
} from './index.js';

describe('timing over weight copies', () => {
  it('rotates the cold calls through every copy and repeats copy 0 for the warm ones', async () => {
    const calls: number[] = [];
    const timing = await measure(
      { copies: 4, call: (i) => calls.push(i) },
      { budgetMs: 0, minReps: 6, maxReps: 6 },
    );
    expect(timing.reps).toBe(6);
    // 3 untimed, 6 cold (from copy 3 on), 2 untimed warm-ups and 6 warm calls on copy 0.
    expect(calls).toEqual([0, 1, 2, 3, 0, 1, 2, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    expect(timing.coldMs).toBeGreaterThanOrEqual(0);
    expect(timing.warmMs).toBeGreaterThanOrEqual(0);
  });

  it('interleaves subjects in rounds and takes the median of the round medians', async () => {
    const order: string[] = [];
    const subject = (name: string) => ({ copies: 1, call: () => order.push(name) });
    const timings = await measureRounds([subject('a'), subject('b'), subject('c')], {
      budgetMs: 0,
      minReps: 1,
      maxReps: 1,
      rounds: 3,
    });
    expect(timings).toHaveLength(3);
    expect(timings.every((t) => t.reps === 3)).toBe(true);
    // Each round times every subject (1 + 1 + 2 + 1 calls), starting one later each round.
    const firsts = [0, 15, 30].map((i) => order[i]);
    expect(firsts).toEqual(['a', 'b', 'c']);
    expect(order).toHaveLength(45);
  });

  it('awaits asynchronous calls', async () => {
    const timing = await measure(
      { copies: 2, call: () => new Promise((resolve) => setTimeout(resolve, 5)) },
      { budgetMs: 0, minReps: 3, maxReps: 3 },
    );
    expect(timing.coldMs).toBeGreaterThanOrEqual(4);
  });

  it('sizes working sets from the last-level cache', () => {
    const llc = lastLevelCacheBytes();
    if (llc !== undefined) expect(llc).toBeGreaterThan(0);
    expect(workingSetBytes(32 * 2 ** 20)).toBe(96 * 2 ** 20);
    expect(workingSetBytes(undefined, 2)).toBe(128 * 2 ** 20);
    expect(copiesFor(64 * 2 ** 20, 96 * 2 ** 20)).toBe(3);
    expect(copiesFor(2 ** 20, 96 * 2 ** 20)).toBe(96);
    expect(copiesFor(1, 2 ** 30)).toBe(2000);
  });

  it('retries with fewer copies when a subject cannot hold them', async () => {
    const warnings: string[] = [];
    const made = await withCopies(
      async (c) => {
        if (c > 2) throw new Error('heap full');
        return c;
      },
      9,
      (m) => warnings.push(m),
    );
    expect(made).toBe(2);
    expect(warnings).toHaveLength(2);
    await expect(
      withCopies(
        async () => {
          throw new Error('never');
        },
        2,
        () => {},
      ),
    ).rejects.toThrow('never');
  });
});

describe('onnxruntime MatMul baseline', () => {
  it('computes y = x W^T with the hand-encoded model', async () => {
    const [outFeatures, inFeatures, batch] = [3, 5, 2];
    const w = Float32Array.from({ length: outFeatures * inFeatures }, (_, i) => Math.sin(i));
    const x = Float32Array.from({ length: batch * inFeatures }, (_, i) => Math.cos(i));
    expect(Array.from(transposed(Float32Array.of(1, 2, 3, 4, 5, 6), 2, 3))).toEqual([1, 4, 2, 5, 3, 6]);
    const subject = await onnxMatmulSubject({
      wt: transposed(w, outFeatures, inFeatures),
      inFeatures,
      outFeatures,
      copies: 2,
      threads: 1,
    });
    try {
      subject.setBatch(batch, x);
      const y = (await subject.call(1)) as Float32Array;
      const expected = Array.from({ length: batch * outFeatures }, (_, k) => {
        const [b, o] = [Math.floor(k / outFeatures), k % outFeatures];
        let s = 0;
        for (let i = 0; i < inFeatures; i++) s += x[b * inFeatures + i]! * w[o * inFeatures + i]!;
        return s;
      });
      expect(y).toAllClose(expected);
      expect(subject.weightBytes).toBe(60);
    } finally {
      subject.dispose();
    }
  });
});

describe('result files', () => {
  it('write JSON atomically, creating the folder', () => {
    const dir = mkdtempSync(join(tmpdir(), 'bench-'));
    try {
      const path = join(dir, 'a', 'b.json');
      writeJsonAtomic(path, { x: 1 });
      expect(JSON.parse(readFileSync(path, 'utf8'))).toEqual({ x: 1 });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
