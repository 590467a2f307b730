// Softmax attention over the keys a mask lets each query read. Two paths with the same result up to
// float32 rounding: loops in float64 (any mask; what decoding a few tokens runs), and for calls of
// PRODUCT_MIN_SEQ or more queries under a plain causal or full mask, the products Q K^T and P V on a
// linear kernel (what prefill, calibration and evaluation run).
import { InvalidArgumentError, ShapeMismatchError } from '@sparsekit/core';
import { dense } from '../formats/dense.js';
import type { SparseMatrix } from '../types.js';
import type { AttentionArgs, AttentionMask, LinearOptions } from './contract.js';

/** From this many queries, causal and full attention runs its products on the linear kernel. */
export const PRODUCT_MIN_SEQ = 8;

type LinearFn = (x: Float32Array, batch: number, w: SparseMatrix, options?: LinearOptions) => Float32Array;

interface Resolved {
  heads: number;
  seq: number;
  dim: number;
  keyLength: number;
  offset: number;
  mask: AttentionMask;
  scale: number;
}

function positiveInteger(name: string, value: number, allowZero = false): void {
  if (!Number.isInteger(value) || value < (allowZero ? 0 : 1))
    throw new InvalidArgumentError(
      name,
      value,
      `must be a ${allowZero ? 'non-negative' : 'positive'} integer`,
    );
}

/** Check an attention call's shapes and mask; typed errors name what is wrong. */
export function resolveAttention(args: AttentionArgs): Resolved {
  const { heads, seq, headDim: dim, keyLength } = args;
  positiveInteger('heads', heads);
  positiveInteger('seq', seq, true);
  positiveInteger('headDim', dim);
  positiveInteger('keyLength', keyLength, true);
  if (args.q.length !== heads * seq * dim)
    throw new ShapeMismatchError([heads, seq, dim], [args.q.length], 'q');
  if (args.keys.length < keyLength * dim)
    throw new ShapeMismatchError([keyLength, dim], [args.keys.length], 'keys');
  if (args.values.length < keyLength * dim)
    throw new ShapeMismatchError([keyLength, dim], [args.values.length], 'values');
  if (args.out !== undefined && args.out.length !== args.q.length)
    throw new ShapeMismatchError([heads, seq, dim], [args.out.length], 'out');
  const offset = args.queryOffset ?? keyLength - seq;
  positiveInteger('queryOffset', offset, true);
  const mask = args.mask ?? { kind: 'causal' };
  switch (mask.kind) {
    case 'full':
      break;
    case 'causal':
      if (mask.window !== undefined) positiveInteger('mask.window', mask.window);
      if (mask.sinks !== undefined) positiveInteger('mask.sinks', mask.sinks, true);
      break;
    case 'blocks': {
      positiveInteger('mask.blockSize', mask.blockSize);
      if (mask.window !== undefined) positiveInteger('mask.window', mask.window);
      if (mask.sinks !== undefined) positiveInteger('mask.sinks', mask.sinks, true);
      const last = Math.floor((offset + Math.max(seq, 1) - 1) / mask.blockSize);
      if (seq > 0 && mask.kvBlocks.length <= last)
        throw new InvalidArgumentError(
          'mask.kvBlocks',
          mask.kvBlocks.length,
          `must list key blocks for every query block up to ${last}`,
        );
      const keyBlocks = Math.ceil(keyLength / mask.blockSize);
      for (const list of mask.kvBlocks) checkSortedIndices('mask.kvBlocks', list, keyBlocks);
      break;
    }
    case 'positions':
      checkSortedIndices('mask.positions', mask.positions, keyLength);
      break;
    default:
      throw new InvalidArgumentError('mask.kind', (mask as { kind: unknown }).kind, 'is not a known mask');
  }
  return { heads, seq, dim, keyLength, offset, mask, scale: args.scale ?? 1 / Math.sqrt(dim) };
}

function checkSortedIndices(what: string, list: Int32Array, bound: number): void {
  for (let i = 0; i < list.length; i++) {
    const v = list[i]!;
    if (v < 0 || v >= bound || (i > 0 && v <= list[i - 1]!))
      throw new InvalidArgumentError(what, v, `must be sorted, unique and in [0, ${bound})`);
  }
}

/**
 * The key ranges query position `p` reads, as [start, end) pairs written into `out`; returns the
 * number of pairs.
 */
export function keySegments(mask: AttentionMask, p: number, keyLength: number, out: Int32Array): number {
  switch (mask.kind) {
    case 'full':
      out[0] = 0;
      out[1] = keyLength;
      return 1;
    case 'causal': {
      const end = Math.min(p + 1, keyLength);
      const start = mask.window === undefined ? 0 : Math.max(0, end - mask.window);
      const sinks = Math.min(mask.sinks ?? 0, start);
      let n = 0;
      if (sinks > 0) {
        out[0] = 0;
        out[1] = sinks;
        n = 1;
      }
      out[2 * n] = start;
      out[2 * n + 1] = end;
      return n + 1;
    }
    case 'blocks': {
      const list = mask.kvBlocks[Math.floor(p / mask.blockSize)]!;
      const limit = mask.causal === true ? Math.min(p + 1, keyLength) : keyLength;
      // With a window, keys before `from` are read only when they are sinks.
      const from = mask.window === undefined ? 0 : p - mask.window + 1;
      const sinks = mask.window === undefined ? 0 : Math.min(mask.sinks ?? 0, from);
      let n = 0;
      const add = (start: number, end: number) => {
        if (start >= end) return;
        if (n > 0 && out[2 * n - 1] === start) out[2 * n - 1] = end;
        else {
          out[2 * n] = start;
          out[2 * n + 1] = end;
          n++;
        }
      };
      for (let i = 0; i < list.length; i++) {
        const start = list[i]! * mask.blockSize;
        const end = Math.min(start + mask.blockSize, limit);
        add(start, Math.min(end, sinks));
        add(Math.max(start, from, sinks), end);
      }
      return n;
    }
    case 'positions': {
      const list = mask.positions;
      let n = 0;
      for (let i = 0; i < list.length; i++) {
        const k = list[i]!;
        if (n > 0 && out[2 * n - 1] === k) out[2 * n - 1] = k + 1;
        else {
          out[2 * n] = k;
          out[2 * n + 1] = k + 1;
          n++;
        }
      }
      return n;
    }
  }
}

/** Pairs `keySegments` may write for this mask. */
function segmentCapacity(mask: AttentionMask, blocks: number): number {
  if (mask.kind === 'positions') return mask.positions.length + 1;
  if (mask.kind === 'blocks') return 2 * blocks + 2;
  return 2;
}

/**
 * Attention for one key/value head's group of query heads. With `linear` and a causal (no window)
 * or full mask over PRODUCT_MIN_SEQ or more queries, the two products run on it; otherwise loops.
 */
export function attention(args: AttentionArgs, linear?: LinearFn): Float32Array {
  const r = resolveAttention(args);
  const out = args.out ?? new Float32Array(args.q.length);
  if (r.seq === 0) return out;
  const plain = r.mask.kind === 'full' || (r.mask.kind === 'causal' && r.mask.window === undefined);
  if (linear !== undefined && plain && r.seq >= PRODUCT_MIN_SEQ) {
    productAttention(args, r, linear, out);
    return out;
  }
  loopAttention(args, r, out);
  return out;
}

/** Scratch arrays of the loops, grown on demand and reused (the loops are synchronous). */
const scratch = {
  i32: new Int32Array(8),
  f64: [new Float64Array(256), new Float64Array(64), new Float64Array(64)],
  ints(n: number): Int32Array {
    if (this.i32.length < n) this.i32 = new Int32Array(n);
    return this.i32;
  },
  /** Float64 scratch `slot` (0: scores, 1: query, 2: accumulator) of at least n entries. */
  floats(slot: 0 | 1 | 2, n: number): Float64Array {
    if (this.f64[slot]!.length < n) this.f64[slot] = new Float64Array(n);
    return this.f64[slot]!;
  },
};

function loopAttention(args: AttentionArgs, r: Resolved, out: Float32Array): void {
  const { q, keys, values } = args;
  const { dim, seq, scale, keyLength } = r;
  const keyBlocks = r.mask.kind === 'blocks' ? Math.ceil(keyLength / r.mask.blockSize) : 0;
  const segments = scratch.ints(2 * segmentCapacity(r.mask, keyBlocks));
  const scores = scratch.floats(0, keyLength);
  const query = scratch.floats(1, dim);
  const acc = scratch.floats(2, dim);
  for (let s = 0; s < seq; s++) {
    const count = keySegments(r.mask, r.offset + s, keyLength, segments);
    for (let h = 0; h < r.heads; h++) {
      const qOffset = (h * seq + s) * dim;
      for (let d = 0; d < dim; d++) query[d] = q[qOffset + d]! * scale;
      let max = Number.NEGATIVE_INFINITY;
      for (let g = 0; g < count; g++) {
        const end = segments[2 * g + 1]!;
        for (let p = segments[2 * g]!; p < end; p++) {
          let dot = 0;
          const kOffset = p * dim;
          for (let d = 0; d < dim; d++) dot += query[d]! * keys[kOffset + d]!;
          scores[p] = dot;
          if (dot > max) max = dot;
        }
      }
      if (max === Number.NEGATIVE_INFINITY) {
        // A query that reads no key gets zeros (FlexAttention's convention for fully masked rows).
        out.fill(0, qOffset, qOffset + dim);
        continue;
      }
      acc.fill(0, 0, dim);
      let sum = 0;
      for (let g = 0; g < count; g++) {
        const end = segments[2 * g + 1]!;
        for (let p = segments[2 * g]!; p < end; p++) {
          const weight = Math.exp(scores[p]! - max);
          sum += weight;
          const vOffset = p * dim;
          for (let d = 0; d < dim; d++) acc[d]! += weight * values[vOffset + d]!;
        }
      }
      for (let d = 0; d < dim; d++) out[qOffset + d] = acc[d]! / sum;
    }
  }
}

/**
 * The scaled queries [heads * seq, dim] times the keys [total, dim]^T give the scores; a softmax per
 * row over the visible keys (in float64, stored in f32) gives P; P times the values gives the output.
 */
function productAttention(args: AttentionArgs, r: Resolved, linear: LinearFn, out: Float32Array): void {
  const { dim, seq, keyLength: total } = r;
  const rows = r.heads * seq;
  const queries = new Float32Array(rows * dim);
  for (let i = 0; i < rows * dim; i++) queries[i] = args.q[i]! * r.scale;
  const k = dense({ rows: total, cols: dim, values: args.keys.subarray(0, total * dim) });
  const scores = linear(queries, rows, k);
  const causal = r.mask.kind === 'causal';
  for (let row = 0; row < rows; row++) {
    const base = row * total;
    const visible = causal ? Math.min(total, r.offset + (row % seq) + 1) : total;
    let max = Number.NEGATIVE_INFINITY;
    for (let p = 0; p < visible; p++) if (scores[base + p]! > max) max = scores[base + p]!;
    let sum = 0;
    for (let p = 0; p < visible; p++) {
      const e = Math.exp(scores[base + p]! - max);
      scores[base + p] = e;
      sum += e;
    }
    for (let p = 0; p < visible; p++) scores[base + p] = scores[base + p]! / sum;
    scores.fill(0, base + visible, base + total);
  }
  const valuesT = new Float32Array(dim * total);
  for (let p = 0; p < total; p++) {
    for (let d = 0; d < dim; d++) valuesT[d * total + p] = args.values[p * dim + d]!;
  }
  linear(scores, rows, dense({ rows: dim, cols: total, values: valuesT }), { out });
}

/**
 * The softmax weights [heads, seq, keyLength] of an attention call: each query's weights over the
 * keys its mask lets it read, zero elsewhere (float64 arithmetic, stored in f32). What an observer
 * of attention (H2O's statistics, a hook) sees; `weightedValues` turns them into the output.
 */
export function attentionWeights(args: AttentionArgs): Float32Array {
  const r = resolveAttention(args);
  const { heads, seq, dim, keyLength: total, scale } = r;
  const { q, keys } = args;
  const probs = new Float32Array(heads * seq * total);
  const segments = new Int32Array(2 * (total + 2));
  const scores = new Float64Array(total);
  for (let s = 0; s < seq; s++) {
    const count = keySegments(r.mask, r.offset + s, total, segments);
    for (let h = 0; h < heads; h++) {
      let max = Number.NEGATIVE_INFINITY;
      scores.fill(Number.NEGATIVE_INFINITY);
      for (let c = 0; c < count; c++) {
        for (let p = segments[2 * c]!; p < segments[2 * c + 1]!; p++) {
          let dot = 0;
          for (let d = 0; d < dim; d++) dot += q[(h * seq + s) * dim + d]! * scale * keys[p * dim + d]!;
          scores[p] = dot;
          if (dot > max) max = dot;
        }
      }
      if (max === Number.NEGATIVE_INFINITY) continue;
      const row = (h * seq + s) * total;
      let sum = 0;
      for (let p = 0; p < total; p++)
        sum += scores[p] === Number.NEGATIVE_INFINITY ? 0 : Math.exp(scores[p]! - max);
      for (let p = 0; p < total; p++)
        probs[row + p] = scores[p] === Number.NEGATIVE_INFINITY ? 0 : Math.exp(scores[p]! - max) / sum;
    }
  }
  return probs;
}

/** out [rows, dim] = P [rows, total] V [total, dim], in float64 (zero weights skip their row of V). */
export function weightedValues(
  probs: Float32Array,
  values: Float32Array,
  rows: number,
  dim: number,
  total: number,
): Float32Array {
  const out = new Float32Array(rows * dim);
  const acc = new Float64Array(dim);
  for (let r = 0; r < rows; r++) {
    acc.fill(0);
    for (let p = 0; p < total; p++) {
      const w = probs[r * total + p]!;
      if (w === 0) continue;
      for (let d = 0; d < dim; d++) acc[d]! += w * values[p * dim + d]!;
    }
    for (let d = 0; d < dim; d++) out[r * dim + d] = acc[d]!;
  }
  return out;
}
