// MInference's vertical-slash pattern (Jiang et al., 2024), with the defaults Sparse Frontier uses:
// estimate from the last queries which key columns (vertical lines) and which diagonals (slash lines,
// offset q - kv) carry the attention, then attend causally to those columns and diagonals only.
import { InvalidArgumentError } from '@sparsekit/core';
import { highestIndices } from '@sparsekit/sparse-formats';
import type { BlockKind, MaskMod } from './mask-mods.js';
import {
  checkInteger,
  checkQk,
  countInRange,
  headOf,
  lowerBound,
  type QkShape,
  sortedPositions,
} from './pattern-helpers.js';

export interface VerticalSlashOptions extends QkShape {
  /** Queries the estimate reads: the last `lastQ` (default 256, Sparse Frontier's approximation size). */
  lastQ?: number;
  /** Key columns kept per head (default 512; at most seqLen). */
  vertical?: number;
  /** Diagonals kept per head (default 512; at most seqLen). */
  slash?: number;
  /** The first columns, always kept (default 4, as Sparse Frontier; MInference keeps 30). */
  forcedColumns?: number;
  /** The nearest diagonals (offsets 0, 1, ...), always kept (default 64, as Sparse Frontier; MInference 100). */
  forcedDiagonals?: number;
  /** Only causal attention is supported (the estimate reads the last queries over the keys before them). */
  causal?: true;
}

export interface VerticalSlash {
  /** Query q attends key kv of head h iff kv <= q and (kv is a column of h or q - kv a diagonal of h). */
  mask: MaskMod;
  /** The kept key columns of each head, ascending. */
  columns: Int32Array[];
  /** The kept diagonals (offsets q - kv >= 0) of each head, ascending. */
  diagonals: Int32Array[];
}

/**
 * Estimate a vertical-slash pattern per head from q and k, Float32Arrays laid out
 * [heads, seqLen, headDim]: the exact causal softmax (scale 1 / sqrt(headDim)) of the last `lastQ`
 * queries over all keys is summed per key column and per diagonal; the first `forcedColumns` columns
 * and the `forcedDiagonals` nearest diagonals are always kept, then the largest sums fill `vertical`
 * columns and `slash` diagonals (ties to the lower index).
 */
export function estimateVerticalSlash(
  q: Float32Array,
  k: Float32Array,
  options: VerticalSlashOptions,
): VerticalSlash {
  checkQk(q, k, options);
  const { heads, seqLen, headDim } = options;
  const { lastQ = 256, vertical = 512, slash = 512, forcedColumns = 4, forcedDiagonals = 64 } = options;
  checkInteger('lastQ', lastQ, 1);
  checkInteger('vertical', vertical, 0);
  checkInteger('slash', slash, 0);
  checkInteger('forcedColumns', forcedColumns, 0);
  checkInteger('forcedDiagonals', forcedDiagonals, 0);
  if ((options.causal as boolean | undefined) === false)
    throw new InvalidArgumentError(
      'causal',
      false,
      'vertical-slash is causal only (it is estimated from the last queries over the keys before them)',
    );
  const last = Math.min(lastQ, seqLen);
  const nColumns = Math.min(vertical, seqLen);
  const nDiagonals = Math.min(slash, seqLen);
  const scale = 1 / Math.sqrt(headDim);
  const columns: Int32Array[] = [];
  const diagonals: Int32Array[] = [];
  const row = new Float64Array(seqLen);
  for (let h = 0; h < heads; h++) {
    const columnSums = new Float64Array(seqLen);
    const diagonalSums = new Float64Array(seqLen);
    const base = h * seqLen * headDim;
    for (let i = seqLen - last; i < seqLen; i++) {
      const qo = base + i * headDim;
      let max = Number.NEGATIVE_INFINITY;
      for (let kv = 0; kv <= i; kv++) {
        const ko = base + kv * headDim;
        let dot = 0;
        for (let d = 0; d < headDim; d++) dot += q[qo + d]! * k[ko + d]!;
        row[kv] = dot * scale;
        if (row[kv]! > max) max = row[kv]!;
      }
      let sum = 0;
      for (let kv = 0; kv <= i; kv++) {
        row[kv] = Math.exp(row[kv]! - max);
        sum += row[kv]!;
      }
      for (let kv = 0; kv <= i; kv++) {
        const p = row[kv]! / sum;
        columnSums[kv]! += p;
        diagonalSums[i - kv]! += p;
      }
    }
    columnSums.fill(Number.POSITIVE_INFINITY, 0, Math.min(forcedColumns, nColumns));
    diagonalSums.fill(Number.POSITIVE_INFINITY, 0, Math.min(forcedDiagonals, nDiagonals));
    columns.push(highestIndices(columnSums, nColumns));
    diagonals.push(highestIndices(diagonalSums, nDiagonals));
  }
  return { mask: verticalSlashMask(columns, diagonals), columns, diagonals };
}

/**
 * The causal vertical-slash mask of given per-head key columns and diagonals (offsets q - kv; any
 * order, repeats dropped). Its block rule is exact and costs O(columns + diagonals) per block at most (binary
 * searches over the two sets).
 */
export function verticalSlashMask(
  columnSets: readonly ArrayLike<number>[],
  diagonalSets: readonly ArrayLike<number>[],
): MaskMod {
  const heads = columnSets.length;
  if (heads < 1)
    throw new InvalidArgumentError('columns', heads, 'must hold one set per head (at least one)');
  if (diagonalSets.length !== heads)
    throw new InvalidArgumentError('diagonals', diagonalSets.length, `must hold one set per head (${heads})`);
  const columns = columnSets.map((c, h) => sortedPositions(`columns[${h}]`, Array.from(c)));
  const diagonals = diagonalSets.map((d, h) => sortedPositions(`diagonals[${h}]`, Array.from(d)));
  const has = (sorted: Int32Array, x: number) => countInRange(sorted, x, x) === 1;
  const pair = (_b: number, h: number, q: number, kv: number) => {
    const head = headOf(h, heads);
    return kv <= q && (has(columns[head]!, kv) || has(diagonals[head]!, q - kv));
  };
  const block = (_b: number, h: number, q0: number, q1: number, kv0: number, kv1: number): BlockKind => {
    const head = headOf(h, heads);
    const cols = columns[head]!;
    const diags = diagonals[head]!;
    const qLast = q1 - 1;
    const kvLast = kv1 - 1;
    if (kv0 > qLast) return 'empty';
    // Any pair: a column some query of the block reaches, or a diagonal crossing the block (every
    // offset in [q0 - kvLast, qLast - kv0] crosses it).
    const any =
      countInRange(cols, kv0, Math.min(kvLast, qLast)) > 0 ||
      countInRange(diags, Math.max(0, q0 - kvLast), qLast - kv0) > 0;
    if (!any) return 'empty';
    if (kvLast > q0) return 'partial';
    // Every pair: the keys outside the columns form runs [a, b]; all offsets of a run, [q0 - b, qLast - a],
    // must be diagonals.
    let a = kv0;
    for (let i = lowerBound(cols, kv0); a <= kvLast; i++) {
      const next = i < cols.length && cols[i]! <= kvLast ? cols[i]! : kvLast + 1;
      if (next > a) {
        const lo = q0 - (next - 1);
        const hi = qLast - a;
        if (countInRange(diags, lo, hi) !== hi - lo + 1) return 'partial';
      }
      a = next + 1;
    }
    return 'full';
  };
  const label = `vertical-slash (${columns[0]!.length} columns, ${diagonals[0]!.length} diagonals)`;
  return Object.assign(pair, { block, label });
}
