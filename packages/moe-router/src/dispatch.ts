// Grouping token slots by expert. Dropless (Megablocks): kept slots sorted by expert, token order
// within an expert, with offsets per expert and no padding. Padded (GShard / Tutel / Switch): a fixed
// [numExperts, capacity] grid, each expert's slots at the position their priority gave them.
import { InvalidArgumentError, type Routing, ShapeMismatchError } from '@sparsekit/core';

export interface GroupedDispatch {
  numExperts: number;
  /** [kept] slot indices (t * k + j) sorted by expert, then by slot. */
  slots: Int32Array;
  /** [kept] the token of each row. */
  tokens: Int32Array;
  /** [kept] the combine weight of each row. */
  weights: Float32Array;
  /** [numExperts + 1] expert e's rows are offsets[e] .. offsets[e + 1]. */
  offsets: Int32Array;
}

function checkRouting(routing: Routing, numExperts: number): void {
  const { k, experts, weights } = routing;
  if (!Number.isInteger(k) || k < 1)
    throw new InvalidArgumentError('routing k', k, 'must be a positive integer');
  if (experts.length % k !== 0 || weights.length !== experts.length)
    throw new ShapeMismatchError([experts.length], [weights.length], 'routing weights');
  for (let i = 0; i < experts.length; i++) {
    const e = experts[i]!;
    if (!(Number.isInteger(e) && e >= -1 && e < numExperts))
      throw new InvalidArgumentError('routed expert', e, `must be -1 (dropped) or in [0, ${numExperts})`);
  }
}

/** The dropless grouped layout of a routing (a counting sort by expert; stable). */
export function dispatch(routing: Routing, numExperts: number): GroupedDispatch {
  checkRouting(routing, numExperts);
  const { k, experts, weights } = routing;
  const offsets = new Int32Array(numExperts + 1);
  for (const e of experts) if (e >= 0) offsets[e + 1]!++;
  for (let e = 0; e < numExperts; e++) offsets[e + 1]! += offsets[e]!;
  const kept = offsets[numExperts]!;
  const slots = new Int32Array(kept);
  const tokens = new Int32Array(kept);
  const rowWeights = new Float32Array(kept);
  const next = offsets.slice(0, numExperts);
  for (let slot = 0; slot < experts.length; slot++) {
    const e = experts[slot]!;
    if (e < 0) continue;
    const row = next[e]!++;
    slots[row] = slot;
    tokens[row] = Math.floor(slot / k);
    rowWeights[row] = weights[slot]!;
  }
  return { numExperts, slots, tokens, weights: rowWeights, offsets };
}

export interface PaddedDispatch {
  numExperts: number;
  capacity: number;
  /** [numExperts * capacity] slot index at (expert, position), -1 for padding. */
  slots: Int32Array;
  /** [numExperts * capacity] its token, -1 for padding. */
  tokens: Int32Array;
  /** Padding entries (numExperts * capacity - kept). */
  padding: number;
}

/**
 * The padded [numExperts, capacity] layout. Positions follow GShard's priority (every token's first
 * choice in token order, then the second choices...), the order capacity was assigned in. Throws
 * if an expert holds more kept slots than `capacity`.
 */
export function paddedDispatch(routing: Routing, numExperts: number, capacity: number): PaddedDispatch {
  checkRouting(routing, numExperts);
  if (!Number.isInteger(capacity) || capacity < 0)
    throw new InvalidArgumentError('capacity', capacity, 'must be a non-negative integer');
  const { k, experts } = routing;
  const tokens = experts.length / k;
  const slots = new Int32Array(numExperts * capacity).fill(-1);
  const rowTokens = new Int32Array(numExperts * capacity).fill(-1);
  const fill = new Int32Array(numExperts);
  let kept = 0;
  for (let j = 0; j < k; j++)
    for (let t = 0; t < tokens; t++) {
      const slot = t * k + j;
      const e = experts[slot]!;
      if (e < 0) continue;
      if (fill[e]! >= capacity)
        throw new InvalidArgumentError(
          'capacity',
          capacity,
          `expert ${e} holds more kept slots than that: drop over capacity first (dropOverCapacity)`,
        );
      const at = e * capacity + fill[e]!++;
      slots[at] = slot;
      rowTokens[at] = t;
      kept++;
    }
  return { numExperts, capacity, slots, tokens: rowTokens, padding: numExperts * capacity - kept };
}

/** Rows of x [tokens, width] gathered in dispatch order: [kept, width]. */
export function gatherRows(x: Float32Array, width: number, grouped: GroupedDispatch): Float32Array {
  const out = new Float32Array(grouped.tokens.length * width);
  grouped.tokens.forEach((t, row) => {
    out.set(x.subarray(t * width, (t + 1) * width), row * width);
  });
  return out;
}

/** The weighted sum back per token: y [kept, width] rows in dispatch order -> [tokens, width]. */
export function combineRows(
  y: Float32Array,
  width: number,
  grouped: GroupedDispatch,
  tokens: number,
): Float32Array {
  if (y.length !== grouped.tokens.length * width)
    throw new ShapeMismatchError([grouped.tokens.length, width], [y.length / width, width], 'expert outputs');
  const out = new Float32Array(tokens * width);
  grouped.tokens.forEach((t, row) => {
    const w = grouped.weights[row]!;
    for (let d = 0; d < width; d++) out[t * width + d]! += w * y[row * width + d]!;
  });
  return out;
}
