import { InvalidArgumentError, NonFiniteError, Rng, ShapeMismatchError } from '@sparsekit/core';
import { describe, expect, it } from 'vitest';
import { blockTopK } from './block-top-k.js';
import { expectExactBlocks, kindsOf } from './brute-force.test-util.js';

interface Sizes {
  heads: number;
  seqLen: number;
  headDim: number;
  blockSize: number;
  topK: number;
  causal: boolean;
}

/** A plain dense reference: pooled means, every pooled score, then the diagonal and the best others. */
function denseBlockTopK(q: Float32Array, k: Float32Array, s: Sizes): number[][][] {
  const rows = Math.ceil(s.seqLen / s.blockSize);
  const mean = (x: Float32Array, h: number, r: number) => {
    const out = new Array<number>(s.headDim).fill(0);
    const tokens: number[] = [];
    for (let t = r * s.blockSize; t < Math.min(s.seqLen, (r + 1) * s.blockSize); t++) tokens.push(t);
    for (const t of tokens)
      for (let d = 0; d < s.headDim; d++) out[d]! += x[(h * s.seqLen + t) * s.headDim + d]!;
    return out.map((v) => v / tokens.length);
  };
  return Array.from({ length: s.heads }, (_, h) =>
    Array.from({ length: rows }, (_, r) => {
      const pq = mean(q, h, r);
      const candidates = Array.from({ length: s.causal ? r + 1 : rows }, (_, c) => c);
      const others = candidates
        .filter((c) => c !== r)
        .map((c) => ({ c, score: mean(k, h, c).reduce((a, v, d) => a + v * pq[d]!, 0) }))
        .sort((a, b) => b.score - a.score || a.c - b.c)
        .slice(0, s.topK - 1)
        .map((x) => x.c);
      return [r, ...others].sort((a, b) => a - b);
    }),
  );
}

describe('blockTopK', () => {
  it('chooses the blocks of a plain dense reference, causal and not, at odd sizes', () => {
    const rng = new Rng(31);
    for (let trial = 0; trial < 12; trial++) {
      const s: Sizes = {
        heads: 1 + rng.int(3),
        seqLen: 1 + rng.int(120),
        headDim: 1 + rng.int(6),
        blockSize: 1 + rng.int(12),
        topK: 1 + rng.int(6),
        causal: rng.int(2) === 1,
      };
      const size = s.heads * s.seqLen * s.headDim;
      const q = rng.normalArray(size);
      const k = rng.normalArray(size);
      const got = blockTopK(q, k, s);
      expect(got.blocks.map((rows) => rows.map((x) => Array.from(x)))).toEqual(denseBlockTopK(q, k, s));
    }
  });

  it('finds constructed blocks, and always keeps the diagonal block', () => {
    // Every query is e1; key block c scores value[c]: blocks 2 and 9 stand out.
    const [seqLen, headDim, blockSize] = [16 * 12, 2, 16];
    const value = [0.1, 0.3, 5, 0.2, -1, 0.4, -2, 0.5, 0.6, 4, -3, 0.7];
    const q = new Float32Array(seqLen * headDim);
    const k = new Float32Array(seqLen * headDim);
    for (let t = 0; t < seqLen; t++) {
      q[t * headDim] = 1;
      k[t * headDim] = value[Math.floor(t / blockSize)]!;
    }
    const { blocks, mask } = blockTopK(q, k, { heads: 1, seqLen, headDim, blockSize, topK: 3 });
    const rows = blocks[0]!.map((x) => Array.from(x));
    expect(rows[0]).toEqual([0]);
    expect(rows[1]).toEqual([0, 1]);
    expect(rows[4]).toEqual([1, 2, 4]); // block 4 scores -1 but is the diagonal
    expect(rows[10]).toEqual([2, 9, 10]);
    expect(rows[11]).toEqual([2, 9, 11]);
    expect([mask(0, 0, 180, 40), mask(0, 0, 180, 150), mask(0, 0, 180, 181), mask(0, 0, 180, 100)]).toEqual([
      true,
      true,
      false,
      false,
    ]);
    const bidirectional = blockTopK(q, k, { heads: 1, seqLen, headDim, blockSize, topK: 3, causal: false });
    expect(Array.from(bidirectional.blocks[0]![0]!)).toEqual([0, 2, 9]);
  });

  it('the block rule equals brute force at random odd sizes, finer and coarser than the pattern blocks', () => {
    const rng = new Rng(32);
    for (let trial = 0; trial < 30; trial++) {
      const seqLen = 1 + rng.int(100);
      const blockSize = 1 + rng.int(8);
      const q = rng.normalArray(2 * seqLen * 3);
      const k = rng.normalArray(2 * seqLen * 3);
      const { mask } = blockTopK(q, k, {
        heads: 2,
        seqLen,
        headDim: 3,
        blockSize,
        topK: 1 + rng.int(5),
        causal: rng.int(2) === 1,
      });
      expectExactBlocks(mask, seqLen, seqLen, 1 + rng.int(20), 1 + rng.int(20), 2);
      // Mask blocks that are multiples of the pattern's.
      expectExactBlocks(mask, seqLen, seqLen, blockSize * (1 + rng.int(3)), blockSize * (1 + rng.int(3)), 2);
    }
  });

  it('uses the Sparse Frontier defaults (chunk 16, top 64), and a mask at the pattern block is exact', () => {
    const rng = new Rng(33);
    const seqLen = 16 * 80;
    const q = rng.normalArray(seqLen * 4);
    const k = rng.normalArray(seqLen * 4);
    const got = blockTopK(q, k, { heads: 1, seqLen, headDim: 4 });
    expect(got.blockSize).toBe(16);
    expect(got.blocks[0]!.map((x) => x.length).slice(62, 66)).toEqual([63, 64, 64, 64]);
    // At the pattern's own block size, a chosen block is full off the diagonal, partial on it.
    const kinds = kindsOf(got.mask, seqLen, seqLen, 16, 16)[0]!;
    const row = kinds[70]!;
    expect(row.filter((x) => x === 'full').length).toBe(63);
    expect(row[70]).toBe('partial');
  });

  it('rejects bad inputs with typed errors', () => {
    const q = new Float32Array(2 * 8 * 4);
    const shape = { heads: 2, seqLen: 8, headDim: 4 };
    expect(() => blockTopK(q, new Float32Array(63), shape)).toThrow(ShapeMismatchError);
    const inf = q.slice();
    inf[3] = Number.POSITIVE_INFINITY;
    expect(() => blockTopK(q, inf, shape)).toThrow(NonFiniteError);
    expect(() => blockTopK(q, q, { ...shape, seqLen: -8, heads: -2 })).toThrow(InvalidArgumentError);
    expect(() => blockTopK(q, q, { ...shape, blockSize: 0 })).toThrow(/blockSize/);
    expect(() => blockTopK(q, q, { ...shape, topK: 2.5 })).toThrow(/topK/);
    const { mask } = blockTopK(q, q, shape);
    expect(() => mask(0, -1, 0, 0)).toThrow(/h = -1/);
  });
});
