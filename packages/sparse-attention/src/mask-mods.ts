// Mask mods (FlexAttention's `mask_mod(b, h, q_idx, kv_idx) -> bool`, true = attend), each with an
// optional block rule: what it is over a whole rectangle of queries and keys, so that a block mask
// is built per block, never per (query, key) pair.
import { InvalidArgumentError } from '@sparsekit/core';

/** What a mask is over a rectangle of queries [q0, q1) and keys [kv0, kv1). */
export type BlockKind = 'empty' | 'full' | 'partial';

export interface MaskMod {
  (b: number, h: number, q: number, kv: number): boolean;
  /**
   * The mask over queries [q0, q1) and keys [kv0, kv1) of sequence b and head h, without looking at
   * each pair. Mods without it are evaluated pair by pair (stopping once a block is seen mixed).
   */
  block?: (b: number, h: number, q0: number, q1: number, kv0: number, kv1: number) => BlockKind;
  /**
   * The keys queries [q0, q1) may attend, as sorted disjoint [start, end) ranges (a superset is
   * fine; never a subset): `createBlockMask` then asks the block rule only about key blocks that
   * meet them, so building takes time in proportion to the blocks listed, not to all block pairs.
   */
  keyRanges?: (b: number, h: number, q0: number, q1: number) => number[];
  /** A name for drawings and errors. */
  label?: string;
}

/** The intersection of two sorted disjoint range lists ([start, end) pairs, flattened). */
function intersectRanges(a: number[], b: number[]): number[] {
  const out: number[] = [];
  let i = 0;
  let j = 0;
  while (i < a.length && j < b.length) {
    const start = Math.max(a[i]!, b[j]!);
    const end = Math.min(a[i + 1]!, b[j + 1]!);
    if (start < end) out.push(start, end);
    if (a[i + 1]! < b[j + 1]!) i += 2;
    else j += 2;
  }
  return out;
}

/** The union of sorted disjoint range lists, sorted and merged. */
function uniteRanges(lists: number[][]): number[] {
  const pairs: Array<[number, number]> = [];
  for (const l of lists) for (let i = 0; i < l.length; i += 2) pairs.push([l[i]!, l[i + 1]!]);
  pairs.sort((x, y) => x[0] - y[0]);
  const out: number[] = [];
  for (const [start, end] of pairs) {
    if (start >= end) continue;
    if (out.length > 0 && start <= out[out.length - 1]!)
      out[out.length - 1] = Math.max(out[out.length - 1]!, end);
    else out.push(start, end);
  }
  return out;
}

function mod(
  label: string,
  pair: (b: number, h: number, q: number, kv: number) => boolean,
  block: NonNullable<MaskMod['block']>,
  keyRanges?: NonNullable<MaskMod['keyRanges']>,
): MaskMod {
  return Object.assign(pair, { block, label, ...(keyRanges === undefined ? {} : { keyRanges }) });
}

/** The kind of a block where the allowed keys of query q are the interval [lo(q), hi(q)] (inclusive). */
function intervalKind(
  q0: number,
  q1: number,
  kv0: number,
  kv1: number,
  lo: (q: number) => number,
  hi: (q: number) => number,
): BlockKind {
  // lo and hi are non-decreasing in q: the extreme queries decide.
  const first = q0;
  const last = q1 - 1;
  if (hi(last) < kv0 || lo(first) > kv1 - 1) return 'empty';
  if (lo(last) <= kv0 && hi(first) >= kv1 - 1) return 'full';
  return 'partial';
}

/** Causal: query q attends to keys kv <= q (positions aligned at 0). */
export function causal(): MaskMod {
  return mod(
    'causal',
    (_b, _h, q, kv) => kv <= q,
    (_b, _h, q0, q1, kv0, kv1) =>
      intervalKind(
        q0,
        q1,
        kv0,
        kv1,
        () => 0,
        (q) => q,
      ),
    (_b, _h, _q0, q1) => [0, q1],
  );
}

/** Sliding window: causal, and kv > q - window (the window counts the query itself). */
export function slidingWindow(window: number): MaskMod {
  if (!Number.isInteger(window) || window < 1)
    throw new InvalidArgumentError('window', window, 'must be a positive integer');
  return mod(
    `window ${window}`,
    (_b, _h, q, kv) => kv <= q && kv > q - window,
    (_b, _h, q0, q1, kv0, kv1) =>
      intervalKind(
        q0,
        q1,
        kv0,
        kv1,
        (q) => q - window + 1,
        (q) => q,
      ),
    (_b, _h, q0, q1) => [Math.max(0, q0 - window + 1), q1],
  );
}

/** Attention sinks: every query attends to the first `count` keys (StreamingLLM keeps 4). */
export function sinks(count: number): MaskMod {
  if (!Number.isInteger(count) || count < 0)
    throw new InvalidArgumentError('sinks', count, 'must be a non-negative integer');
  return mod(
    `sinks ${count}`,
    (_b, _h, _q, kv) => kv < count,
    (_b, _h, _q0, _q1, kv0, kv1) => (kv0 >= count ? 'empty' : kv1 <= count ? 'full' : 'partial'),
    () => (count === 0 ? [] : [0, count]),
  );
}

/**
 * Documents packed into one sequence (jagged batches): a query attends only to keys of its own
 * document; `lengths` are the documents' token counts, in order. Combine with `causal()`.
 */
export function documents(lengths: readonly number[]): MaskMod {
  const starts = [0];
  for (const [i, n] of lengths.entries()) {
    if (!Number.isInteger(n) || n < 1)
      throw new InvalidArgumentError(`lengths[${i}]`, n, 'must be a positive integer');
    starts.push(starts.at(-1)! + n);
  }
  const total = starts.at(-1)!;
  const doc = new Int32Array(total);
  for (let d = 0; d < lengths.length; d++) doc.fill(d, starts[d]!, starts[d + 1]!);
  const docOf = (i: number) => (i < total ? doc[i]! : -1 - i); // positions past the end: no document
  return mod(
    `documents (${lengths.length})`,
    (_b, _h, q, kv) => docOf(q) === docOf(kv) && docOf(q) >= 0,
    (_b, _h, q0, q1, kv0, kv1) => {
      const qa = docOf(q0);
      const qb = docOf(q1 - 1);
      const ka = docOf(kv0);
      const kb = docOf(kv1 - 1);
      if (qa >= 0 && qa === qb && qa === ka && ka === kb) return 'full';
      // Documents are contiguous and ordered: the rectangle is empty unless their ranges overlap.
      const qLo = qa < 0 ? Number.POSITIVE_INFINITY : qa;
      const qHi = qb < 0 ? (qa < 0 ? -1 : lengths.length - 1) : qb;
      const kLo = ka < 0 ? Number.POSITIVE_INFINITY : ka;
      const kHi = kb < 0 ? (ka < 0 ? -1 : lengths.length - 1) : kb;
      return qHi < kLo || kHi < qLo ? 'empty' : 'partial';
    },
    (_b, _h, q0, q1) => {
      // The keys of the documents the queries lie in (queries past the end see nothing).
      const first = docOf(q0);
      if (first < 0) return [];
      const last = docOf(q1 - 1);
      return [starts[first]!, starts[(last < 0 ? lengths.length - 1 : last) + 1]!];
    },
  );
}

/**
 * A mod combining `mods` pair by pair with `every` (and) or `some` (or), and block by block when each
 * has a block rule: `decisive` is the kind that settles the block at once (empty for and, full for
 * or), and `uniform` is what the block is when no mod is partial (full for and, empty for or).
 */
function combine(
  mods: MaskMod[],
  join: 'every' | 'some',
  decisive: BlockKind,
  uniform: BlockKind,
  separator: string,
): MaskMod {
  const pair = (b: number, h: number, q: number, kv: number) => mods[join]((m) => m(b, h, q, kv));
  const block = mods.every((m) => m.block !== undefined)
    ? (b: number, h: number, q0: number, q1: number, kv0: number, kv1: number): BlockKind => {
        let partial = false;
        for (const m of mods) {
          const k = m.block!(b, h, q0, q1, kv0, kv1);
          if (k === decisive) return decisive;
          if (k === 'partial') partial = true;
        }
        // For or, two partial mods may still cover the block together; 'partial' stays correct (masked).
        return partial ? 'partial' : uniform;
      }
    : undefined;
  // and: the keys every ranged mod allows (mods without ranges allow anything); or: the keys any
  // mod allows, known only when every mod has ranges.
  const ranged = mods.filter((m) => m.keyRanges !== undefined);
  const keyRanges =
    join === 'every'
      ? ranged.length === 0
        ? undefined
        : (b: number, h: number, q0: number, q1: number) =>
            ranged.map((m) => m.keyRanges!(b, h, q0, q1)).reduce(intersectRanges)
      : ranged.length === mods.length && mods.length > 0
        ? (b: number, h: number, q0: number, q1: number) =>
            uniteRanges(mods.map((m) => m.keyRanges!(b, h, q0, q1)))
        : undefined;
  return Object.assign(pair, {
    label: mods.map((m) => m.label ?? 'mod').join(separator),
    ...(block === undefined ? {} : { block }),
    ...(keyRanges === undefined ? {} : { keyRanges }),
  });
}

/** A query attends where every mod allows it (FlexAttention's `and_masks`, folding from true). */
export function andMasks(...mods: MaskMod[]): MaskMod {
  return combine(mods, 'every', 'empty', 'full', ' & ');
}

/** A query attends where any mod allows it (FlexAttention's `or_masks`, folding from false). */
export function orMasks(...mods: MaskMod[]): MaskMod {
  return combine(mods, 'some', 'full', 'empty', ' | ');
}
