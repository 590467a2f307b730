import { InvalidArgumentError, NonFiniteError, Rng, ShapeMismatchError } from '@sparsekit/core';
import { describe, expect, it } from 'vitest';
import { expectExactBlocks, kindsOf } from './brute-force.test-util.js';
import { estimateVerticalSlash, verticalSlashMask } from './vertical-slash.js';

interface Sizes {
  heads: number;
  seqLen: number;
  headDim: number;
  lastQ: number;
  vertical: number;
  slash: number;
  forcedColumns: number;
  forcedDiagonals: number;
}

/** The k best indices: forced ones first, then by score (descending), ties to the lower index. */
function best(scores: number[], k: number, forced: number): number[] {
  return scores
    .map((s, i) => ({ s: i < forced ? Number.POSITIVE_INFINITY : s, i }))
    .sort((a, b) => b.s - a.s || a.i - b.i)
    .slice(0, Math.min(k, scores.length))
    .map((x) => x.i)
    .sort((a, b) => a - b);
}

/** A plain dense reference: the whole causal attention matrix, then its last rows summed. */
function denseVerticalSlash(q: Float32Array, k: Float32Array, s: Sizes) {
  const columns: number[][] = [];
  const diagonals: number[][] = [];
  for (let h = 0; h < s.heads; h++) {
    const at = (x: Float32Array, t: number, d: number) => x[(h * s.seqLen + t) * s.headDim + d]!;
    const probs: number[][] = [];
    for (let i = 0; i < s.seqLen; i++) {
      const logits: number[] = [];
      for (let j = 0; j <= i; j++) {
        let dot = 0;
        for (let d = 0; d < s.headDim; d++) dot += at(q, i, d) * at(k, j, d);
        logits.push(dot / Math.sqrt(s.headDim));
      }
      const max = Math.max(...logits);
      const e = logits.map((x) => Math.exp(x - max));
      const sum = e.reduce((a, b) => a + b, 0);
      probs.push(e.map((x) => x / sum));
    }
    const col = new Array<number>(s.seqLen).fill(0);
    const diag = new Array<number>(s.seqLen).fill(0);
    for (let i = Math.max(0, s.seqLen - s.lastQ); i < s.seqLen; i++)
      for (let j = 0; j <= i; j++) {
        col[j]! += probs[i]![j]!;
        diag[i - j]! += probs[i]![j]!;
      }
    columns.push(best(col, s.vertical, Math.min(s.forcedColumns, s.vertical)));
    diagonals.push(best(diag, s.slash, Math.min(s.forcedDiagonals, s.slash)));
  }
  return { columns, diagonals };
}

describe('estimateVerticalSlash', () => {
  it('chooses the columns and diagonals of a plain dense reference, per head', () => {
    const rng = new Rng(21);
    for (let trial = 0; trial < 8; trial++) {
      const s: Sizes = {
        heads: 1 + rng.int(3),
        seqLen: 1 + rng.int(80),
        headDim: 1 + rng.int(8),
        lastQ: 1 + rng.int(30),
        vertical: 1 + rng.int(12),
        slash: 1 + rng.int(12),
        forcedColumns: rng.int(4),
        forcedDiagonals: rng.int(6),
      };
      const size = s.heads * s.seqLen * s.headDim;
      const q = rng.normalArray(size, 0, 2);
      const k = rng.normalArray(size, 0, 2);
      const got = estimateVerticalSlash(q, k, s);
      const want = denseVerticalSlash(q, k, s);
      expect(got.columns.map((x) => Array.from(x))).toEqual(want.columns);
      expect(got.diagonals.map((x) => Array.from(x))).toEqual(want.diagonals);
    }
  });

  it('finds constructed columns, and keeps column 0 and diagonal 0', () => {
    // Keys 17, 40 and 66 match every query; the rest score 0.
    const [seqLen, headDim] = [96, 4];
    const q = new Float32Array(seqLen * headDim);
    const k = new Float32Array(seqLen * headDim);
    for (let t = 0; t < seqLen; t++) q[t * headDim] = 1;
    for (const j of [17, 40, 66]) k[j * headDim] = 10;
    const got = estimateVerticalSlash(q, k, {
      heads: 1,
      seqLen,
      headDim,
      lastQ: 16,
      vertical: 4,
      slash: 3,
      forcedColumns: 1,
      forcedDiagonals: 1,
    });
    expect(Array.from(got.columns[0]!)).toEqual([0, 17, 40, 66]);
    expect(got.diagonals[0]![0]).toBe(0);
  });

  it('finds constructed diagonals', () => {
    // One-hot positions: q_i . k_j is large iff i - j is 7 or 30.
    const [seqLen, headDim] = [100, 128];
    const q = new Float32Array(seqLen * headDim);
    const k = new Float32Array(seqLen * headDim);
    for (let t = 0; t < seqLen; t++) {
      q[t * headDim + t] = 1;
      for (const o of [7, 30]) if (t + o < headDim) k[t * headDim + t + o] = 100;
    }
    const got = estimateVerticalSlash(q, k, {
      heads: 1,
      seqLen,
      headDim,
      lastQ: 20,
      vertical: 1,
      slash: 4,
      forcedDiagonals: 2,
    });
    expect(Array.from(got.diagonals[0]!)).toEqual([0, 1, 7, 30]);
    expect(Array.from(got.columns[0]!)).toEqual([0]);
    // The mask reads exactly those lines (and nothing later than the query).
    const m = got.mask;
    expect([m(0, 0, 50, 43), m(0, 0, 50, 20), m(0, 0, 50, 0), m(0, 0, 50, 49), m(0, 0, 50, 42)]).toEqual([
      true,
      true,
      true,
      true,
      false,
    ]);
    expect(m(0, 0, 5, 6)).toBe(false);
  });

  it('clamps sizes to the sequence and uses the Sparse Frontier defaults', () => {
    const rng = new Rng(3);
    const q = rng.normalArray(2 * 40 * 4);
    const k = rng.normalArray(2 * 40 * 4);
    const got = estimateVerticalSlash(q, k, { heads: 2, seqLen: 40, headDim: 4 });
    // 512 columns and diagonals asked, 40 exist: every one is kept, every block is causal-full.
    expect(got.columns[1]!.length).toBe(40);
    expect(got.diagonals[1]!.length).toBe(40);
    expect(kindsOf(got.mask, 40, 40, 8, 8, 2)[1]![4]).toEqual(['full', 'full', 'full', 'full', 'partial']);
  });

  it('the block rule equals brute force at random odd sizes, estimated and dense sets', () => {
    const rng = new Rng(22);
    let fullBlocks = 0;
    for (let trial = 0; trial < 30; trial++) {
      const seqLen = 1 + rng.int(90);
      const [bq, bkv] = [1 + rng.int(16), 1 + rng.int(16)];
      const q = rng.normalArray(2 * seqLen * 3);
      const k = rng.normalArray(2 * seqLen * 3);
      const { mask } = estimateVerticalSlash(q, k, {
        heads: 2,
        seqLen,
        headDim: 3,
        lastQ: 1 + rng.int(20),
        vertical: rng.int(10),
        slash: rng.int(10),
        forcedColumns: rng.int(3),
        forcedDiagonals: rng.int(5),
      });
      expectExactBlocks(mask, seqLen, seqLen, bq, bkv, 2);
      // Dense sets (runs of columns and diagonals) make full blocks too.
      const dense = (n: number) => {
        const run = rng.int(n + 1);
        return [...Array.from({ length: run }, (_, i) => i), ...rng.sample(n, rng.int(n + 1))];
      };
      const m = verticalSlashMask([dense(seqLen), dense(seqLen)], [dense(seqLen), dense(seqLen)]);
      expectExactBlocks(m, seqLen, seqLen, bq, bkv, 2);
      fullBlocks += kindsOf(m, seqLen, seqLen, bq, bkv, 2)
        .flat(2)
        .filter((x) => x === 'full').length;
    }
    expect(fullBlocks).toBeGreaterThan(50);
  });

  it('rejects bad inputs with typed errors', () => {
    const q = new Float32Array(2 * 8 * 4);
    const shape = { heads: 2, seqLen: 8, headDim: 4 };
    expect(() => estimateVerticalSlash(q, new Float32Array(60), shape)).toThrow(ShapeMismatchError);
    const nan = q.slice();
    nan[5] = Number.NaN;
    expect(() => estimateVerticalSlash(nan, q, shape)).toThrow(NonFiniteError);
    expect(() => estimateVerticalSlash([] as unknown as Float32Array, q, shape)).toThrow(
      InvalidArgumentError,
    );
    expect(() => estimateVerticalSlash(q, q, { ...shape, heads: 0 })).toThrow(/heads/);
    expect(() => estimateVerticalSlash(q, q, { ...shape, lastQ: 1.5 })).toThrow(/lastQ/);
    expect(() => estimateVerticalSlash(q, q, { ...shape, vertical: -1 })).toThrow(/vertical/);
    expect(() => estimateVerticalSlash(q, q, { ...shape, causal: false as true })).toThrow(/causal/);
    const { mask } = estimateVerticalSlash(q, q, shape);
    expect(() => mask(0, 2, 0, 0)).toThrow(/h = 2/);
    expect(() => verticalSlashMask([[1]], [])).toThrow(/diagonals/);
    expect(() => verticalSlashMask([[-1]], [[0]])).toThrow(/columns\[0\]\[0\]/);
  });
});
