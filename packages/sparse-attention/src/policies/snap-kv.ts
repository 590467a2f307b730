// SnapKV (Li et al., 2024; FasterDecoding/SnapKV snapkv/monkeypatch/snapkv_utils.py `SnapKVCluster`):
// after the prompt, the last `window` queries (the observation window) vote for prefix keys with their
// attention probabilities; the votes are pooled along positions so that neighbours of a chosen key
// come with it, and the top capacity - window prefix keys stay, with the window itself. Decode steps
// evict nothing.
import { InvalidArgumentError, type KvLane, type KvPolicy, type KvQuery } from '@sparsekit/core';
import { highestIndices } from '@sparsekit/sparse-formats';
import { complement, integerOption, scaleOption, withRange } from './lanes.js';
import { addProbabilities } from './probabilities.js';

export type SnapKvPooling = 'max' | 'avg';

export interface SnapKvOptions {
  /** Entries a lane keeps after the prompt (default 1024: Sparse Frontier's, and SnapKV's c1024 runs). */
  capacity?: number;
  /** Observation window: the last queries of the prompt, kept and voting (default 32, the reference's). */
  window?: number;
  /** Pooling kernel, odd (default 7, the reference's published configurations). */
  kernel?: number;
  /** 'max' (default, the published configurations) or 'avg' (the code's default; padding counts as 0). */
  pooling?: SnapKvPooling;
  /** Score scale of the model's attention (default 1 / sqrt(headDim)). */
  scale?: number;
}

/** 1-D pooling with stride 1 and padding kernel // 2, as torch's max_pool1d / avg_pool1d (pads count in avg). */
export function pool1d(x: Float64Array, n: number, kernel: number, pooling: SnapKvPooling): Float64Array {
  const out = new Float64Array(n);
  const half = Math.floor(kernel / 2);
  for (let i = 0; i < n; i++) {
    const lo = Math.max(0, i - half);
    const hi = Math.min(n - 1, i + half);
    if (pooling === 'max') {
      let m = Number.NEGATIVE_INFINITY;
      for (let j = lo; j <= hi; j++) if (x[j]! > m) m = x[j]!;
      out[i] = m;
    } else {
      let s = 0;
      for (let j = lo; j <= hi; j++) s += x[j]!;
      out[i] = s / kernel;
    }
  }
  return out;
}

/** SnapKV as a `KvPolicy` (`evict` only, after a prefill). Stateless. */
export class SnapKvPolicy implements KvPolicy {
  readonly capacity: number;
  readonly window: number;
  readonly kernel: number;
  readonly pooling: SnapKvPooling;
  readonly scale: number | undefined;

  constructor(options: SnapKvOptions = {}) {
    this.capacity = integerOption('capacity', options.capacity ?? 1024, 2);
    this.window = integerOption('window', options.window ?? 32, 1);
    if (this.window >= this.capacity)
      throw new InvalidArgumentError('window', this.window, `must be below the capacity (${this.capacity})`);
    this.kernel = integerOption('kernel', options.kernel ?? 7, 1);
    if (this.kernel % 2 !== 1)
      throw new InvalidArgumentError(
        'kernel',
        this.kernel,
        'must be odd (pooling keeps one score per position)',
      );
    const pooling = options.pooling ?? 'max';
    if (pooling !== 'max' && pooling !== 'avg')
      throw new InvalidArgumentError('pooling', pooling, "must be 'max' or 'avg'");
    this.pooling = pooling;
    this.scale = scaleOption(options.scale);
  }

  /**
   * The pooled votes of a prefill's observation window for the lane's prefix entries (all but the
   * last min(window, seq)), summed over the query heads sharing the lane.
   */
  votes(lane: KvLane, query: KvQuery): Float64Array {
    const w = Math.min(this.window, query.seq);
    const raw = new Float64Array(lane.length);
    addProbabilities(lane, query, raw, { scale: this.scale, fromQuery: query.seq - w });
    return pool1d(raw, lane.length - w, this.kernel, this.pooling);
  }

  /** After a prefill longer than the capacity: keep the top voted prefix entries and the window. */
  evict(lane: KvLane, query: KvQuery): Int32Array | undefined {
    if (query.seq < 2 || lane.length <= this.capacity) return undefined;
    const w = Math.min(this.window, query.seq);
    const prefix = lane.length - w;
    const keep = withRange(
      highestIndices(this.votes(lane, query), this.capacity - w, prefix),
      prefix,
      lane.length,
    );
    return complement(keep, lane.length);
  }
}

/**
 * SnapKV: after each prefill (a call of more than one token) a lane holding more than `capacity`
 * entries keeps `capacity`: the last `window` entries and the capacity - window prefix entries
 * with the highest pooled votes of the window's queries (attention probabilities summed over the
 * window and the group's query heads). Decode steps keep everything they add.
 */
export function snapKv(options: SnapKvOptions = {}): SnapKvPolicy {
  return new SnapKvPolicy(options);
}
