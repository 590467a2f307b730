// Test helpers: lanes made of random keys, and a small driver that runs a policy over a lane the way
// the model's attention does (append the call's entries, select at decode, evict after the call).
import type { KvLane, KvPolicy, KvQuery, Rng } from '@sparsekit/core';

export function randomArray(rng: Rng, n: number, scale = 1): Float32Array {
  return Float32Array.from({ length: n }, () => rng.normal() * scale);
}

/** A lane over the first `length` rows of keys and values [*, dim]. */
export function laneOf(
  keys: Float32Array,
  values: Float32Array,
  length: number,
  dim: number,
  options: {
    layer?: number;
    sequence?: number;
    kvHead?: number;
    pageSize?: number;
    positions?: Int32Array;
  } = {},
): KvLane {
  return {
    layer: options.layer ?? 2,
    sequence: options.sequence ?? 0,
    kvHead: options.kvHead ?? 0,
    headDim: dim,
    pageSize: options.pageSize ?? 16,
    length,
    keys: keys.subarray(0, length * dim),
    values: values.subarray(0, length * dim),
    positions: options.positions?.subarray(0, length) ?? Int32Array.from({ length }, (_, i) => i),
  };
}

export function queryOf(q: Float32Array, heads: number, seq: number, position = 0, block = 2): KvQuery {
  return { q, heads, seq, position, block };
}

/**
 * A growing lane with eviction, as the model's paged cache keeps one: `step` appends a call's
 * entries, asks `select` (one new entry) and `evict`, compacts, and returns what the queries read.
 */
export class LaneDriver {
  keys: Float32Array;
  values: Float32Array;
  positions: Int32Array;
  length = 0;
  next = 0;

  constructor(
    readonly dim: number,
    capacity: number,
    readonly options: { layer?: number; pageSize?: number } = {},
  ) {
    this.keys = new Float32Array(capacity * dim);
    this.values = new Float32Array(capacity * dim);
    this.positions = new Int32Array(capacity);
  }

  lane(): KvLane {
    return laneOf(this.keys, this.values, this.length, this.dim, {
      ...this.options,
      positions: this.positions,
    });
  }

  /** Append keys/values [seq, dim]; run the policy with queries q [heads, seq, dim]. */
  step(
    policy: KvPolicy,
    keys: Float32Array,
    values: Float32Array,
    q: Float32Array,
    heads: number,
  ): { read: Int32Array; positions: Int32Array } {
    const seq = keys.length / this.dim;
    const position = this.next;
    for (let s = 0; s < seq; s++) {
      this.keys.set(keys.subarray(s * this.dim, (s + 1) * this.dim), this.length * this.dim);
      this.values.set(values.subarray(s * this.dim, (s + 1) * this.dim), this.length * this.dim);
      this.positions[this.length] = this.next++;
      this.length++;
    }
    const lane = this.lane();
    const query = queryOf(q, heads, seq, position, this.options.layer ?? 2);
    const chosen = seq === 1 ? policy.select?.(lane, query) : undefined;
    const read = chosen ?? Int32Array.from({ length: this.length }, (_, i) => i);
    const positions = Int32Array.from(read, (e) => this.positions[e]!);
    const evicted = policy.evict?.(lane, query);
    if (evicted !== undefined && evicted.length > 0) this.compact(evicted);
    return { read, positions };
  }

  private compact(evicted: Int32Array): void {
    const drop = new Uint8Array(this.length);
    for (const e of evicted) drop[e] = 1;
    let kept = 0;
    const d = this.dim;
    for (let e = 0; e < this.length; e++) {
      if (drop[e] === 1) continue;
      this.keys.copyWithin(kept * d, e * d, (e + 1) * d);
      this.values.copyWithin(kept * d, e * d, (e + 1) * d);
      this.positions[kept] = this.positions[e]!;
      kept++;
    }
    this.length = kept;
  }
}

/** Exact attention of q [heads, dim] over the `read` entries of keys/values: [heads, dim] (float64). */
export function denseAttention(
  q: Float32Array,
  heads: number,
  keys: Float32Array,
  values: Float32Array,
  read: ArrayLike<number>,
  dim: number,
): Float64Array {
  const out = new Float64Array(heads * dim);
  for (let h = 0; h < heads; h++) {
    const scores = Array.from(read, (e) => {
      let s = 0;
      for (let i = 0; i < dim; i++) s += q[h * dim + i]! * keys[e * dim + i]!;
      return s / Math.sqrt(dim);
    });
    const max = Math.max(...scores);
    const w = scores.map((s) => Math.exp(s - max));
    const sum = w.reduce((a, b) => a + b, 0);
    Array.from(read).forEach((e, j) => {
      for (let i = 0; i < dim; i++)
        out[h * dim + i] = out[h * dim + i]! + (w[j]! / sum) * values[e * dim + i]!;
    });
  }
  return out;
}
