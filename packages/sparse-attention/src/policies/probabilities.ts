// The exact softmax attention of a call's queries over a lane's held keys, in float64: what H2O
// accumulates, what SnapKV's observation window votes with, and what recall is measured against.
import { InvalidArgumentError, type KvLane, type KvQuery, ShapeMismatchError } from '@sparsekit/core';

/** Check that `query` fits `lane` (q is [heads, seq, headDim], the lane holds the call's tokens). */
export function checkQuery(lane: KvLane, query: KvQuery): void {
  const { heads, seq } = query;
  if (query.q.length !== heads * seq * lane.headDim)
    throw new ShapeMismatchError([heads, seq, lane.headDim], [query.q.length], 'KV policy query');
  if (lane.length < seq)
    throw new ShapeMismatchError([-1], [lane.length], `KV lane (it must hold the call's ${seq} new entries)`);
}

/** Scratch for the score row, grown on demand (the policies run synchronously). */
let row = new Float64Array(256);

/**
 * Add to `into[e]` (e in [0, lane.length)) the attention probability of entry e for the call's
 * queries s in [fromQuery, seq), summed over the `heads` query heads: query s is the lane's entry
 * length - seq + s and reads the entries up to it (causal), with scores scaled by `scale`
 * (default 1 / sqrt(headDim)). `weight` multiplies what is added.
 */
export function addProbabilities(
  lane: KvLane,
  query: KvQuery,
  into: Float64Array,
  options: { scale?: number | undefined; fromQuery?: number; weight?: number } = {},
): void {
  checkQuery(lane, query);
  const d = lane.headDim;
  const { heads, seq, q } = query;
  const { keys } = lane;
  const scale = options.scale ?? 1 / Math.sqrt(d);
  const weight = options.weight ?? 1;
  if (row.length < lane.length) row = new Float64Array(Math.max(lane.length, 2 * row.length));
  for (let s = options.fromQuery ?? 0; s < seq; s++) {
    const visible = lane.length - seq + s + 1;
    for (let h = 0; h < heads; h++) {
      const qo = (h * seq + s) * d;
      let max = Number.NEGATIVE_INFINITY;
      for (let e = 0; e < visible; e++) {
        let dot = 0;
        const ko = e * d;
        for (let i = 0; i < d; i++) dot += q[qo + i]! * keys[ko + i]!;
        const score = dot * scale;
        row[e] = score;
        if (score > max) max = score;
      }
      let sum = 0;
      for (let e = 0; e < visible; e++) {
        const p = Math.exp(row[e]! - max);
        row[e] = p;
        sum += p;
      }
      const w = weight / sum;
      for (let e = 0; e < visible; e++) into[e] = into[e]! + row[e]! * w;
    }
  }
}

/**
 * The probability mass that exact attention puts on the `selected` entries of `lane` (sorted or
 * not; undefined: every entry), averaged over the query heads and the call's queries: 1 when the
 * selection is everything, below 1 for anything that leaves out a key the queries weigh. Each query
 * reads the held entries up to its own (at decode: all of them). For quality reports of a selection
 * policy (Quest's and Double Sparsity's "attention recall").
 */
export function attentionRecall(
  lane: KvLane,
  query: KvQuery,
  selected: ArrayLike<number> | undefined,
  options: { scale?: number } = {},
): number {
  if (selected === undefined) return 1;
  const p = new Float64Array(lane.length);
  addProbabilities(lane, query, p, { scale: options.scale, weight: 1 / (query.heads * query.seq) });
  const seen = new Uint8Array(lane.length);
  let mass = 0;
  for (let i = 0; i < selected.length; i++) {
    const e = selected[i]!;
    if (!(Number.isInteger(e) && e >= 0 && e < lane.length))
      throw new InvalidArgumentError('selected entry', e, `must be an entry index in [0, ${lane.length})`);
    if (seen[e] === 1) continue;
    seen[e] = 1;
    mass += p[e]!;
  }
  return Math.min(1, mass);
}
