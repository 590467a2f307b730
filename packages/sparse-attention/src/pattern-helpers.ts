// Pieces the attention patterns share: argument checks, sorted-set searches, top-k selection and the
// exact block rule of a mask laid out on a grid of pattern blocks with global tokens.
import { assertFinite, InvalidArgumentError, ShapeMismatchError } from '@sparsekit/core';
import type { BlockKind } from './mask-mods.js';

/** Throw unless `value` is an integer >= `min`. */
export function checkInteger(name: string, value: number, min: number): void {
  if (!Number.isInteger(value) || value < min)
    throw new InvalidArgumentError(
      name,
      value,
      min === 0 ? 'must be a non-negative integer' : `must be an integer >= ${min}`,
    );
}

/**
 * Token positions as a sorted Int32Array without repeats; each must be a non-negative integer and,
 * when `seqLen` is given, below it.
 */
export function sortedPositions(name: string, positions: readonly number[], seqLen?: number): Int32Array {
  for (const [i, p] of positions.entries()) {
    if (!Number.isInteger(p) || p < 0 || (seqLen !== undefined && p >= seqLen))
      throw new InvalidArgumentError(
        `${name}[${i}]`,
        p,
        seqLen === undefined ? 'must be a non-negative integer' : `must be an integer in [0, ${seqLen})`,
      );
  }
  const sorted = Int32Array.from(positions).sort();
  let n = 0;
  for (let i = 0; i < sorted.length; i++)
    if (i === 0 || sorted[i] !== sorted[i - 1]) sorted[n++] = sorted[i]!;
  return sorted.slice(0, n);
}

/** The first index i with sorted[i] >= x (sorted.length if none). */
export function lowerBound(sorted: ArrayLike<number>, x: number): number {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (sorted[mid]! < x) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** How many entries of a sorted set without repeats lie in [lo, hi]. */
export function countInRange(sorted: ArrayLike<number>, lo: number, hi: number): number {
  return hi < lo ? 0 : lowerBound(sorted, hi + 1) - lowerBound(sorted, lo);
}

/** The smallest position in [a, b] that is not in the sorted set, or b + 1 if every one is. */
export function firstOutside(sorted: ArrayLike<number>, a: number, b: number): number {
  let x = a;
  for (let i = lowerBound(sorted, a); i < sorted.length && sorted[i] === x && x <= b; i++) x++;
  return x;
}

/** The largest position in [a, b] that is not in the sorted set, or a - 1 if every one is. */
export function lastOutside(sorted: ArrayLike<number>, a: number, b: number): number {
  let x = b;
  for (let i = lowerBound(sorted, b + 1) - 1; i >= 0 && sorted[i] === x && x >= a; i--) x--;
  return x;
}

export interface QkShape {
  heads: number;
  seqLen: number;
  headDim: number;
}

/** Check q and k: Float32Arrays laid out [heads, seqLen, headDim], finite, with positive sizes. */
export function checkQk(q: Float32Array, k: Float32Array, shape: QkShape): void {
  for (const name of ['heads', 'seqLen', 'headDim'] as const) checkInteger(name, shape[name], 1);
  const size = shape.heads * shape.seqLen * shape.headDim;
  for (const [name, x] of [
    ['q', q],
    ['k', k],
  ] as const) {
    if (!(x instanceof Float32Array))
      throw new InvalidArgumentError(name, x, 'must be a Float32Array laid out [heads, seqLen, headDim]');
    if (x.length !== size)
      throw new ShapeMismatchError(
        [shape.heads, shape.seqLen, shape.headDim],
        [x.length],
        `${name} (a flat [heads, seqLen, headDim] Float32Array of ${size} values)`,
      );
    assertFinite(x, name);
  }
}

/** The head whose pattern a mod call reads: every head shares head 0 when there is one. */
export function headOf(h: number, heads: number): number {
  if (heads === 1) return 0;
  if (!Number.isInteger(h) || h < 0 || h >= heads)
    throw new InvalidArgumentError(
      'h',
      h,
      `must be an integer in [0, ${heads}): the pattern has ${heads} heads`,
    );
  return h;
}

/**
 * A mask on a grid of pattern blocks of `size` tokens, plus global tokens, optionally causal: query q
 * attends key kv iff (not causal or kv <= q) and (q or kv is global, or `allowed(row(q), col(kv))`).
 * Returns what it is over queries [q0, q1) and keys [kv0, kv1), exactly, looking at each pattern
 * block the rectangle touches once.
 */
export function gridKind(
  size: number,
  globals: Int32Array,
  causal: boolean,
  allowed: (row: number, col: number) => boolean,
  q0: number,
  q1: number,
  kv0: number,
  kv1: number,
): BlockKind {
  const qLast = q1 - 1;
  const kvLast = kv1 - 1;
  if (causal && kv0 > qLast) return 'empty';
  let full = !causal || kvLast <= q0;
  let any = false;
  // A global query reads every (earlier) key; a global key is read by every (later) query.
  const gq = lowerBound(globals, q1) - 1;
  if (gq >= 0 && globals[gq]! >= q0 && (!causal || kv0 <= globals[gq]!)) any = true;
  const gk = lowerBound(globals, kv0);
  if (gk < globals.length && globals[gk]! <= kvLast && (!causal || globals[gk]! <= qLast)) any = true;
  const r1 = Math.floor(qLast / size);
  const c0 = Math.floor(kv0 / size);
  const c1 = Math.floor(kvLast / size);
  for (let r = Math.floor(q0 / size); r <= r1; r++) {
    const qa = Math.max(q0, r * size);
    const qb = Math.min(qLast, (r + 1) * size - 1);
    const plainQueries = firstOutside(globals, qa, qb) <= qb;
    for (let c = c0; c <= c1; c++) {
      const ka = Math.max(kv0, c * size);
      const kb = Math.min(kvLast, (c + 1) * size - 1);
      if (allowed(r, c)) {
        if (!causal || ka <= qb) any = true;
      } else if (full && plainQueries && firstOutside(globals, ka, kb) <= kb) full = false;
      if (any && !full) return 'partial';
    }
  }
  return full ? 'full' : any ? 'partial' : 'empty';
}
