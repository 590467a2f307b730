import { InvalidArgumentError, Rng } from '@sparsekit/core';
import { describe, expect, it } from 'vitest';
import { createBlockMask } from './block-mask.js';
import { bruteKinds, kindsOf as kindsPerHead } from './brute-force.test-util.js';
import { andMasks, causal, documents, type MaskMod, orMasks, sinks, slidingWindow } from './mask-mods.js';
import { longformer } from './patterns.js';

const kindsOf = (m: MaskMod, qLen: number, kvLen: number, bq: number, bkv: number) =>
  kindsPerHead(m, qLen, kvLen, bq, bkv)[0]!;

describe('block masks', () => {
  it('the block rules of causal, window, sinks and documents equal a brute-force count, at odd sizes', () => {
    const rng = new Rng(4);
    for (let trial = 0; trial < 12; trial++) {
      const qLen = 1 + rng.int(90);
      const kvLen = qLen + rng.int(3) * rng.int(20);
      const [bq, bkv] = [1 + rng.int(16), 1 + rng.int(16)];
      const lengths: number[] = [];
      for (let left = kvLen; left > 0; ) {
        const n = Math.min(left, 1 + rng.int(30));
        lengths.push(n);
        left -= n;
      }
      for (const m of [causal(), slidingWindow(1 + rng.int(20)), sinks(rng.int(6)), documents(lengths)])
        expect(kindsOf(m, qLen, kvLen, bq, bkv), `${m.label} ${qLen}x${kvLen} blocks ${bq}x${bkv}`).toEqual(
          bruteKinds(m, qLen, kvLen, bq, bkv),
        );
      // Combinations are never wrong about full and empty blocks (they may call a covered block partial).
      for (const m of [andMasks(causal(), documents(lengths)), orMasks(sinks(3), slidingWindow(8))]) {
        const got = kindsOf(m, qLen, kvLen, bq, bkv);
        const want = bruteKinds(m, qLen, kvLen, bq, bkv);
        for (const [r, row] of got.entries())
          for (const [c, k] of row.entries())
            if (k !== 'partial') expect(k, `${m.label} block ${r},${c}`).toBe(want[r]![c]);
      }
    }
  });

  it('a mod without a block rule is classified pair by pair', () => {
    const stripes: MaskMod = (_b, _h, q, kv) => (q + kv) % 3 !== 0;
    expect(kindsOf(stripes, 20, 20, 4, 4)).toEqual(bruteKinds(stripes, 20, 20, 4, 4));
    const perHead = createBlockMask((_b, h, q, kv) => kv <= q - h * 8, {
      H: 2,
      qLen: 16,
      kvLen: 16,
      blockSize: 8,
    });
    expect(perHead.kind(0, 0, 1, 0)).toBe('full');
    expect(perHead.kind(0, 1, 1, 0)).toBe('partial');
    expect(perHead.kind(0, 1, 0, 0)).toBe('empty');
  });

  it("keeps FlexAttention's fields: partial and full lists, their transposes, sparsity, indexing, a drawing", () => {
    const bm = createBlockMask(causal(), { qLen: 512, kvLen: 512 });
    expect(bm.rows).toBe(4);
    expect(Array.from(bm.kvNumBlocks)).toEqual([1, 1, 1, 1]); // the diagonal block is partial
    expect(Array.from(bm.fullKvNumBlocks)).toEqual([0, 1, 2, 3]);
    expect(Array.from(bm.at(0, 0, 3).full)).toEqual([0, 1, 2]);
    expect(Array.from(bm.at(0, 0, 3).partial)).toEqual([3]);
    // Transposes: key block 0 is read fully by query blocks 1..3 and partially by 0.
    expect(Array.from(bm.fullQNumBlocks)).toEqual([3, 2, 1, 0]);
    expect(Array.from(bm.fullQIndices.subarray(0, 3))).toEqual([1, 2, 3]);
    expect(Array.from(bm.qNumBlocks)).toEqual([1, 1, 1, 1]);
    // 10 of 16 blocks read: 100 (1 - 10 * 128^2 / 512^2) = 37.5.
    expect(bm.sparsity()).toBeCloseTo(37.5, 12);
    expect(bm.toString().split('\n').slice(1)).toEqual(['░', '█░', '██░', '███░']);
    expect(() => bm.at(0, 0, 4)).toThrow(InvalidArgumentError);
    expect(() => createBlockMask(causal(), { qLen: 0, kvLen: 4 })).toThrow(/qLen/);
    expect(() => createBlockMask(causal(), { qLen: 4, kvLen: 4, blockSize: 0 })).toThrow(/block size/);
    expect(() => slidingWindow(0)).toThrow(InvalidArgumentError);
  });

  it('key ranges cover every key a mod allows (so skipping the others loses nothing)', () => {
    const rng = new Rng(8);
    const mods: MaskMod[] = [
      causal(),
      slidingWindow(7),
      sinks(3),
      documents([5, 9, 1, 12]),
      andMasks(causal(), orMasks(sinks(2), slidingWindow(5))),
      andMasks(causal(), documents([4, 4, 20])),
      orMasks(sinks(4), slidingWindow(3)),
      longformer({ window: 6, globals: [0, 13, 20] }),
      longformer({ window: 5, globals: [2, 9], causal: true }),
      longformer({ window: 4 }),
    ];
    for (const m of mods) {
      expect(m.keyRanges, `${m.label} has key ranges`).toBeDefined();
      for (let t = 0; t < 40; t++) {
        const q0 = rng.int(27);
        const q1 = q0 + 1 + rng.int(27 - q0);
        const ranges = m.keyRanges!(0, 0, q0, q1);
        const inside = (kv: number) => {
          for (let i = 0; i < ranges.length; i += 2) if (kv >= ranges[i]! && kv < ranges[i + 1]!) return true;
          return false;
        };
        for (let q = q0; q < q1; q++)
          for (let kv = 0; kv < 27; kv++)
            if (m(0, 0, q, kv)) expect(inside(kv), `${m.label} q ${q} kv ${kv}`).toBe(true);
      }
    }
  });

  it('a 128K-token causal + sliding-window + sinks mask holds block lists only (no 128K x 128K mask)', () => {
    const qLen = 131_072;
    const bm = createBlockMask(andMasks(causal(), orMasks(sinks(4), slidingWindow(4096))), {
      qLen,
      kvLen: qLen,
    });
    const row = bm.at(0, 0, bm.rows - 1);
    // The last query block reads the sink block and the window's 33 blocks.
    expect(row.partial.length + row.full.length).toBe(1 + 33);
    expect(bm.sparsity()).toBeGreaterThan(96);
    // The lists grow with the blocks listed (~34 per row, both directions): well under 1 MB, where
    // the dense mask would be 16 G pairs and FlexAttention's padded [rows, cols] lists 4 MB each.
    const listed = bm.kvNumBlocks.reduce((a, b) => a + b, 0) + bm.fullKvNumBlocks.reduce((a, b) => a + b, 0);
    expect(bm.bytes).toBeLessThan(4 * (2 * listed + 8 * bm.rows + 16));
    expect(bm.bytes).toBeLessThan(1 << 20);
    // FlexAttention's padded layout is still there, made on demand.
    expect(bm.fullKvIndices.length).toBe(bm.rows * bm.cols);
  });
});
