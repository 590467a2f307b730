// Static sparse attention patterns with global tokens: Longformer (a token-level sliding window) and
// BigBird (a block-level window plus random key blocks). Each mod has an exact block rule.
import { InvalidArgumentError, Rng } from '@sparsekit/core';
import type { BlockKind, MaskMod } from './mask-mods.js';
import {
  checkInteger,
  firstOutside,
  gridKind,
  headOf,
  lastOutside,
  lowerBound,
  sortedPositions,
} from './pattern-helpers.js';

const has = (sorted: Int32Array, x: number) => {
  const i = lowerBound(sorted, x);
  return i < sorted.length && sorted[i] === x;
};

export interface LongformerOptions {
  /**
   * Longformer's `attention_window` w. Symmetric (the default): a query reads the keys within w / 2
   * on either side, |q - kv| <= w / 2 (w must be even, as Longformer requires). Causal: the last w
   * keys, the query's own included (q - w < kv <= q, as `slidingWindow(w)`).
   */
  window: number;
  /** Global positions: each attends to every key and is attended by every query (default none). */
  globals?: readonly number[];
  /** Causal: no query reads a later key, global or not (default false, as Longformer's encoder). */
  causal?: boolean;
  /** The sequence length, when known: global positions must then lie below it. */
  seqLen?: number;
}

/**
 * Longformer (Beltagy et al., 2020): a sliding window plus global tokens. Query q attends key kv iff
 * (not causal or kv <= q) and (kv is in q's window, or q or kv is global).
 */
export function longformer(options: LongformerOptions): MaskMod {
  const { window, causal = false, seqLen } = options;
  checkInteger('window', window, 1);
  if (!causal && window % 2 !== 0)
    throw new InvalidArgumentError(
      'window',
      window,
      'must be even for the symmetric window (w / 2 each side)',
    );
  if (seqLen !== undefined) checkInteger('seqLen', seqLen, 1);
  const globals = sortedPositions('globals', options.globals ?? [], seqLen);
  const half = window / 2;
  // The window of query q is the key interval [lo(q), hi(q)]; both ends are non-decreasing in q.
  const lo = causal ? (q: number) => q - window + 1 : (q: number) => q - half;
  const hi = causal ? (q: number) => q : (q: number) => q + half;
  const pair = (_b: number, _h: number, q: number, kv: number) =>
    (!causal || kv <= q) && ((kv >= lo(q) && kv <= hi(q)) || has(globals, q) || has(globals, kv));
  const block = (_b: number, _h: number, q0: number, q1: number, kv0: number, kv1: number): BlockKind => {
    const qLast = q1 - 1;
    const kvLast = kv1 - 1;
    if (causal && kv0 > qLast) return 'empty';
    // Any allowed pair: through the window (the windows of [q0, qLast] cover [lo(q0), hi(qLast)]),
    // a global query (the latest one reads the most keys) or a global key (the earliest one is read most).
    const gq = lowerBound(globals, q1) - 1;
    const gk = lowerBound(globals, kv0);
    const any =
      (hi(qLast) >= kv0 && lo(q0) <= kvLast) ||
      (gq >= 0 && globals[gq]! >= q0 && (!causal || kv0 <= globals[gq]!)) ||
      (gk < globals.length && globals[gk]! <= kvLast && (!causal || globals[gk]! <= qLast));
    if (!any) return 'empty';
    if (causal && kvLast > q0) return 'partial';
    // Every pair allowed iff the windows of the plain (non-global) queries cover the plain keys: the
    // extreme plain queries decide.
    const qa = firstOutside(globals, q0, qLast);
    const ka = firstOutside(globals, kv0, kvLast);
    if (qa > qLast || ka > kvLast) return 'full';
    const qb = lastOutside(globals, q0, qLast);
    const kb = lastOutside(globals, kv0, kvLast);
    return lo(qb) <= ka && hi(qa) >= kb ? 'full' : 'partial';
  };
  // Keys queries [q0, q1) may read: every key when one of them is global, else their windows and
  // the global keys (causal: none after the last query).
  const keyRanges = (_b: number, _h: number, q0: number, q1: number): number[] => {
    const end = causal ? q1 : Number.POSITIVE_INFINITY;
    const g = lowerBound(globals, q0);
    if (g < globals.length && globals[g]! < q1) return [0, end];
    const window = [Math.max(0, lo(q0)), Math.min(end, hi(q1 - 1) + 1)];
    const out: number[] = [];
    let placed = false;
    for (const k of globals) {
      if (k >= end) break;
      if (!placed && k >= window[0]!) {
        out.push(window[0]!, window[1]!);
        placed = true;
      }
      if (placed && k < window[1]!) continue;
      if (out.length > 0 && out[out.length - 1] === k) out[out.length - 1] = k + 1;
      else out.push(k, k + 1);
    }
    if (!placed) out.push(window[0]!, window[1]!);
    return out;
  };
  const label = `longformer (window ${window}${causal ? ', causal' : ''}, ${globals.length} globals)`;
  return Object.assign(pair, { block, label, keyRanges });
}

export interface BigBirdOptions {
  /** The sequence length (random blocks are drawn per query block of it). */
  seqLen: number;
  /** Tokens per pattern block (default 64, as BigBird's `block_size`). */
  blockSize?: number;
  /**
   * Sliding window in blocks (default 3, as BigBird: the query's block and one either side; odd).
   * Causal: the query's block and the window - 1 blocks before it.
   */
  window?: number;
  /**
   * Global positions (attend to all, attended by all). Default: the tokens of the first and the last
   * block, as BigBird's ITC layout (two global blocks).
   */
  globals?: readonly number[];
  /** Random key blocks per query block (default 3, as BigBird's `num_random_blocks`). */
  randomBlocks?: number;
  /** Seed of the random blocks (default 0). */
  seed?: number;
  /** Heads with their own random blocks (default 1: every head shares one pattern). */
  heads?: number;
  /** Causal: no query reads a later key; random blocks are drawn from earlier blocks (default false). */
  causal?: boolean;
}

export interface BigBirdMask extends MaskMod {
  /** The random key blocks of each query block, per head: random[h][row], ascending. */
  readonly random: readonly (readonly Int32Array[])[];
}

/**
 * BigBird (Zaheer et al., 2020), block-sparse as its ITC implementation: query q attends key kv iff
 * (not causal or kv <= q) and (q or kv is global, or kv's block is in the window of q's block or is
 * one of the random blocks drawn for q's block).
 */
export function bigBird(options: BigBirdOptions): BigBirdMask {
  const {
    seqLen,
    blockSize = 64,
    window = 3,
    randomBlocks = 3,
    seed = 0,
    heads = 1,
    causal = false,
  } = options;
  checkInteger('seqLen', seqLen, 1);
  checkInteger('blockSize', blockSize, 1);
  checkInteger('window', window, 1);
  checkInteger('randomBlocks', randomBlocks, 0);
  checkInteger('heads', heads, 1);
  if (!causal && window % 2 !== 1)
    throw new InvalidArgumentError(
      'window',
      window,
      'must be odd (the block itself and as many either side)',
    );
  const rows = Math.ceil(seqLen / blockSize);
  const lastStart = (rows - 1) * blockSize;
  const globals = sortedPositions(
    'globals',
    options.globals ??
      Array.from({ length: seqLen }, (_, i) => i).filter((i) => i < blockSize || i >= lastStart),
    seqLen,
  );
  const half = (window - 1) / 2;
  const inWindow = causal
    ? (r: number, c: number) => r - c >= 0 && r - c < window
    : (r: number, c: number) => Math.abs(r - c) <= half;
  // A block whose every token is global is read by every query already: never drawn.
  const allGlobal = Array.from({ length: rows }, (_, c) => {
    const end = Math.min(seqLen, (c + 1) * blockSize) - 1;
    return firstOutside(globals, c * blockSize, end) > end;
  });
  const rng = new Rng(seed);
  const random = Array.from({ length: heads }, () =>
    Array.from({ length: rows }, (_, r) => {
      if (allGlobal[r]) return new Int32Array(0);
      const candidates: number[] = [];
      for (let c = 0; c < (causal ? r + 1 : rows); c++)
        if (!inWindow(r, c) && !allGlobal[c]) candidates.push(c);
      const picks = rng.sample(candidates.length, Math.min(randomBlocks, candidates.length));
      return Int32Array.from(picks, (i) => candidates[i]!).sort();
    }),
  );
  const allowed = (head: number, r: number, c: number) =>
    inWindow(r, c) || (r < rows && random[head]![r]!.includes(c));
  const pair = (_b: number, h: number, q: number, kv: number) => {
    const head = headOf(h, heads);
    return (
      (!causal || kv <= q) &&
      (has(globals, q) ||
        has(globals, kv) ||
        allowed(head, Math.floor(q / blockSize), Math.floor(kv / blockSize)))
    );
  };
  const block = (_b: number, h: number, q0: number, q1: number, kv0: number, kv1: number): BlockKind => {
    const head = headOf(h, heads);
    return gridKind(blockSize, globals, causal, (r, c) => allowed(head, r, c), q0, q1, kv0, kv1);
  };
  const label =
    `bigbird (block ${blockSize}, window ${window}, ${randomBlocks} random, seed ${seed}` +
    `${causal ? ', causal' : ''}, ${globals.length} globals)`;
  return Object.assign(pair, { block, label, random });
}
