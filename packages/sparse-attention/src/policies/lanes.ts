// Pieces the KV policies share: option checks, per-lane state that notices when a lane is not the
// one it was built from, and the index helpers (top entries, the complement of a kept set).
import { InvalidArgumentError, type KvLane } from '@sparsekit/core';

/** An option that must be an integer >= `min` (NaN, fractions and infinities are refused). */
export function integerOption(name: string, value: number, min: number): number {
  if (!Number.isInteger(value) || value < min)
    throw new InvalidArgumentError(name, value, `must be an integer >= ${min}`);
  return value;
}

/** An optional score scale: a positive finite number, or undefined for 1 / sqrt(headDim). */
export function scaleOption(value: number | undefined): number | undefined {
  if (value !== undefined && !(Number.isFinite(value) && value > 0))
    throw new InvalidArgumentError(
      'scale',
      value,
      'must be a positive finite number (default 1 / sqrt(headDim))',
    );
  return value;
}

/** The key of a lane in a policy's state: one per (layer, sequence, key/value head). */
export function laneKey(lane: KvLane): string {
  return `${lane.layer}/${lane.sequence}/${lane.kvHead}`;
}

/**
 * What a policy remembers of the entries of a lane it has already read: how many, and the first and
 * last of them (original position and key), so that a lane that shrank, or a different cache or
 * sequence at the same (layer, sequence, head), is noticed without reading the whole lane again.
 */
export class LaneMark {
  /** Entries already read. */
  length = 0;
  private firstPosition = -1;
  private lastPosition = -1;
  private firstKey = new Float32Array(0);
  private lastKey = new Float32Array(0);

  /** Whether `lane` still holds the entries read so far, unchanged, at the same indices. */
  continues(lane: KvLane): boolean {
    const n = this.length;
    if (n === 0) return true;
    if (lane.length < n) return false;
    const d = lane.headDim;
    if (this.firstKey.length !== d) return false;
    if (lane.positions[0] !== this.firstPosition || lane.positions[n - 1] !== this.lastPosition) return false;
    for (let i = 0; i < d; i++)
      if (lane.keys[i] !== this.firstKey[i] || lane.keys[(n - 1) * d + i] !== this.lastKey[i]) return false;
    return true;
  }

  /**
   * Remember that entries [0, length) of `lane` are read. With `kept` (sorted indices of `lane`, the
   * entries that stay after an eviction), the first and last kept entries are remembered instead,
   * as they will sit at indices 0 and kept.length - 1 once the cache compacts the lane.
   */
  record(lane: KvLane, kept?: Int32Array): void {
    const n = kept === undefined ? lane.length : kept.length;
    this.length = n;
    if (n === 0) return;
    const d = lane.headDim;
    const first = kept === undefined ? 0 : kept[0]!;
    const last = kept === undefined ? n - 1 : kept[n - 1]!;
    if (this.firstKey.length !== d) {
      this.firstKey = new Float32Array(d);
      this.lastKey = new Float32Array(d);
    }
    this.firstKey.set(lane.keys.subarray(first * d, (first + 1) * d));
    this.lastKey.set(lane.keys.subarray(last * d, (last + 1) * d));
    this.firstPosition = lane.positions[first]!;
    this.lastPosition = lane.positions[last]!;
  }
}

/** The indices of [0, n) not in `kept` (sorted ascending, unique), ascending. */
export function complement(kept: ArrayLike<number>, n: number): Int32Array {
  const out = new Int32Array(n - kept.length);
  let o = 0;
  let j = 0;
  for (let i = 0; i < n; i++) {
    if (j < kept.length && kept[j] === i) j++;
    else out[o++] = i;
  }
  return out;
}

/** The sorted union of `a` (sorted, unique) and the range [from, to) (all above a's entries). */
export function withRange(a: Int32Array, from: number, to: number): Int32Array {
  const out = new Int32Array(a.length + Math.max(0, to - from));
  out.set(a);
  for (let i = from; i < to; i++) out[a.length + i - from] = i;
  return out;
}
