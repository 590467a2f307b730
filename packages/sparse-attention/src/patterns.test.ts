import { InvalidArgumentError, Rng } from '@sparsekit/core';
import { describe, expect, it } from 'vitest';
import { createBlockMask } from './block-mask.js';
import { blockTopK } from './block-top-k.js';
import { bruteKinds, expectExactBlocks, kindsOf } from './brute-force.test-util.js';
import { slidingWindow } from './mask-mods.js';
import { bigBird, longformer } from './patterns.js';
import { estimateVerticalSlash } from './vertical-slash.js';

/** Up to `n` distinct random positions in [0, len). */
function randomPositions(rng: Rng, len: number, n: number): number[] {
  return Array.from(rng.sample(len, Math.min(len, n)));
}

describe('longformer', () => {
  it('the block rule equals brute force at random odd sizes, symmetric and causal, with globals', () => {
    const rng = new Rng(11);
    for (let trial = 0; trial < 40; trial++) {
      const qLen = 1 + rng.int(70);
      const kvLen = qLen + rng.int(2) * rng.int(15);
      const causal = rng.int(2) === 1;
      const window = causal ? 1 + rng.int(20) : 2 * (1 + rng.int(10));
      const globals = randomPositions(rng, Math.max(qLen, kvLen), rng.int(5));
      // Runs of consecutive globals too.
      if (rng.int(3) === 0) for (let i = 0; i < 4; i++) globals.push(Math.min(qLen - 1, 5 + i));
      const m = longformer({ window, globals, causal });
      expectExactBlocks(m, qLen, kvLen, 1 + rng.int(16), 1 + rng.int(16));
    }
  });

  it("follows Longformer's window and global semantics", () => {
    const m = longformer({ window: 4, globals: [10] });
    expect([m(0, 0, 5, 3), m(0, 0, 5, 7), m(0, 0, 5, 2), m(0, 0, 5, 8)]).toEqual([true, true, false, false]);
    // A global token reads every key and is read by every query, in both directions.
    expect([m(0, 0, 10, 0), m(0, 0, 10, 99), m(0, 0, 0, 10), m(0, 0, 99, 10)]).toEqual([
      true,
      true,
      true,
      true,
    ]);
    const c = longformer({ window: 4, globals: [10], causal: true });
    expect([
      c(0, 0, 5, 2),
      c(0, 0, 5, 1),
      c(0, 0, 5, 6),
      c(0, 0, 10, 0),
      c(0, 0, 10, 11),
      c(0, 0, 3, 10),
    ]).toEqual([true, false, false, true, false, false]);
    // Causal without globals is the sliding window of the same size.
    const plain = longformer({ window: 7, causal: true });
    expect(kindsOf(plain, 50, 50, 8, 8)).toEqual([bruteKinds(slidingWindow(7), 50, 50, 8, 8)]);
  });

  it('rejects bad windows and globals with typed errors', () => {
    expect(() => longformer({ window: 3 })).toThrow(InvalidArgumentError);
    expect(() => longformer({ window: 0, causal: true })).toThrow(/window/);
    expect(() => longformer({ window: 4, globals: [-1] })).toThrow(/globals\[0\]/);
    expect(() => longformer({ window: 4, globals: [1.5] })).toThrow(InvalidArgumentError);
    expect(() => longformer({ window: 4, globals: [3, 16], seqLen: 16 })).toThrow(/globals\[1\].*\[0, 16\)/);
    expect(() => longformer({ window: 4, seqLen: 0 })).toThrow(/seqLen/);
  });
});

describe('bigBird', () => {
  it('the block rule equals brute force at random odd sizes, block sizes and heads', () => {
    const rng = new Rng(12);
    for (let trial = 0; trial < 40; trial++) {
      const seqLen = 1 + rng.int(90);
      const causal = rng.int(2) === 1;
      const m = bigBird({
        seqLen,
        blockSize: 1 + rng.int(12),
        window: causal ? 1 + rng.int(4) : 1 + 2 * rng.int(3),
        randomBlocks: rng.int(4),
        seed: rng.int(1000),
        heads: 2,
        causal,
        ...(rng.int(2) === 0 ? { globals: randomPositions(rng, seqLen, rng.int(4)) } : {}),
      });
      expectExactBlocks(m, seqLen, seqLen, 1 + rng.int(16), 1 + rng.int(16), 2);
    }
  });

  it("keeps BigBird's layout: global first and last blocks, a 3-block window, random blocks outside both", () => {
    const m = bigBird({ seqLen: 1024, seed: 5 });
    expect(m.random).toHaveLength(1);
    const rows = m.random[0]!;
    expect(rows).toHaveLength(16);
    // The global rows draw nothing; every other row draws 3 blocks outside its window and the global blocks.
    expect([rows[0]!.length, rows[15]!.length]).toEqual([0, 0]);
    for (let r = 1; r < 15; r++) {
      expect(rows[r]!.length).toBe(3);
      for (const c of rows[r]!) expect(Math.abs(c - r) > 1 && c !== 0 && c !== 15).toBe(true);
    }
    const bm = createBlockMask(m, { qLen: 1024, kvLen: 1024, blockSize: 64 });
    // Row 7 reads the two global blocks, its window (6, 7, 8) and its three random blocks, all fully.
    const row = bm.at(0, 0, 7);
    expect(row.partial.length).toBe(0);
    expect(Array.from(row.full)).toEqual([...new Set([0, 6, 7, 8, 15, ...rows[7]!])].sort((a, b) => a - b));
    expect(bm.at(0, 0, 0).full.length).toBe(16); // a global row reads everything
    const c = bigBird({ seqLen: 1024, causal: true, seed: 5 });
    for (const [r, list] of c.random[0]!.entries()) for (const x of list) expect(x).toBeLessThan(r - 2);
  });

  it('is deterministic per seed, differs across seeds, and draws per head', () => {
    const a = bigBird({ seqLen: 2048, seed: 1, heads: 2 });
    const b = bigBird({ seqLen: 2048, seed: 1, heads: 2 });
    const other = bigBird({ seqLen: 2048, seed: 2, heads: 2 });
    const lists = (m: typeof a, h: number) => m.random[h]!.map((x) => Array.from(x));
    expect(lists(a, 0)).toEqual(lists(b, 0));
    expect(lists(a, 1)).toEqual(lists(b, 1));
    expect(lists(a, 0)).not.toEqual(lists(other, 0));
    expect(lists(a, 0)).not.toEqual(lists(a, 1));
    const blocks = (m: typeof a) => {
      const bm = createBlockMask(m, { H: 2, qLen: 2048, kvLen: 2048 });
      return [Array.from(bm.fullKvIndices), Array.from(bm.fullKvNumBlocks)];
    };
    expect(blocks(a)).toEqual(blocks(b));
    expect(blocks(a)).not.toEqual(blocks(other));
  });

  it('rejects bad options with typed errors', () => {
    expect(() => bigBird({ seqLen: 0 })).toThrow(/seqLen/);
    expect(() => bigBird({ seqLen: 64, window: 2 })).toThrow(InvalidArgumentError);
    expect(() => bigBird({ seqLen: 64, blockSize: 2.5 })).toThrow(/blockSize/);
    expect(() => bigBird({ seqLen: 64, randomBlocks: -1 })).toThrow(/randomBlocks/);
    expect(() => bigBird({ seqLen: 64, globals: [64] })).toThrow(/globals\[0\]/);
    expect(() => bigBird({ seqLen: 64, seed: 0.5 })).toThrow(/seed/);
    const m = bigBird({ seqLen: 64, blockSize: 8, heads: 2 });
    expect(() => m(0, 2, 0, 0)).toThrow(/h = 2/);
  });
});

describe('every pattern at 32K tokens', () => {
  it('builds block masks from the block rules alone: block lists of about 1 MB, not a 32K x 32K mask', () => {
    const seqLen = 32_768;
    const rng = new Rng(41);
    const q = rng.normalArray(seqLen * 8);
    const k = rng.normalArray(seqLen * 8);
    const shape = { heads: 1, seqLen, headDim: 8 };
    const patterns = [
      { mask: longformer({ window: 512, globals: [0, 1, 2, 3, 20_000], seqLen }), minSparsity: 95 },
      { mask: bigBird({ seqLen }), minSparsity: 90 },
      { mask: estimateVerticalSlash(q, k, shape).mask, minSparsity: 49 },
      { mask: blockTopK(q, k, shape).mask, minSparsity: 50 },
    ];
    for (const { mask, minSparsity } of patterns) {
      const bm = createBlockMask(mask, { qLen: seqLen, kvLen: seqLen });
      expect(bm.rows, mask.label).toBe(256);
      // The lists hold O(blocks) = 256 x 256 entries per direction and kind; a dense boolean mask
      // would be 2^30 bytes.
      expect(bm.bytes, mask.label).toBeLessThan(1.1 * 2 ** 20);
      expect(bm.sparsity(), mask.label).toBeGreaterThan(minSparsity);
    }
  });
});
