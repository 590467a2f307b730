// Quest (Tang et al., 2024; mit-han-lab/Quest evaluation/quest_attention.py): query-aware page
// selection at decode. Each page of a lane keeps the elementwise max and min of its keys; a page's
// score is an upper bound of q . k over it, sum_d max(q_d max_d, q_d min_d); the top pages are read
// exactly. Page metadata is a dense matrix [pages, 2 headDim] = [max | min] per row, so scoring every
// page is one GEMV with [max(q, 0) | min(q, 0)], and it is kept up to date by reading only the
// entries that arrived since the last step.
import {
  f16BitsToF32,
  f32ToF16Bits,
  InvalidArgumentError,
  type KvLane,
  type KvPolicy,
  type KvQuery,
} from '@sparsekit/core';
import { type Backend, highestIndices } from '@sparsekit/sparse-formats';
import { integerOption, LaneMark, laneKey } from './lanes.js';
import { checkQuery } from './probabilities.js';

export interface QuestOptions {
  /** Token budget per lane and step: k = min(max(3, floor(budget / pageSize)), pages) pages are read. */
  budget: number;
  /** Entries per page; must equal the cache's page size (default 16, Quest's and vLLM's). */
  pageSize?: number;
  /** Layers below this read every entry (default 2, as the reference keeps layers 0 and 1 dense). */
  skipLayers?: number;
  /**
   * A backend to score pages on: the page metadata then lives in its storage (`allocate`) and the
   * scores are one `linear` call (the wasm backend runs it in place, SIMD, on every thread).
   * Default: a float64 loop here.
   */
  backend?: Backend;
  /**
   * With a backend, the precision the scored copy of the page bounds is kept in: 'f32' (default) or
   * 'f16' (as the reference, whose bounds are in the model's f16; max rounded up and min down, so
   * each score stays an upper bound of q . k over its page). f16 reads half the bytes, but on the
   * wasm kernels converting halves costs more than the bytes saved (`node build/bench/decode.js
   * --contexts 32768 --budgets 16`: page selection 2.29 ms per layer step with f16, 2.00 ms with
   * f32), so f32 is the default.
   */
  boundsDtype?: 'f16' | 'f32';
}

/** f16 bits of x rounded up (dir 1) or down (dir -1): the nearest half on that side of x. */
export function halfToward(x: number, dir: 1 | -1): number {
  let h = f32ToF16Bits(x);
  const v = f16BitsToF32(h);
  if (v === x || Number.isNaN(x) || (dir === 1 ? v > x : v < x)) return h;
  // One step along the half line toward dir (signed zeros step to the smallest subnormal).
  const negative = (h & 0x8000) !== 0;
  if ((h & 0x7fff) === 0) return dir === 1 ? 0x0001 : 0x8001;
  h = negative === (dir === 1) ? h - 1 : h + 1;
  return h;
}

/** The [max | min] page metadata of keys [length, dim] from scratch: [pages, 2 dim], max first. */
export function questPageMetadata(
  keys: ArrayLike<number>,
  length: number,
  dim: number,
  pageSize: number,
): Float32Array {
  const pages = Math.ceil(length / pageSize);
  const meta = new Float32Array(pages * 2 * dim);
  extendMetadata(meta, keys, 0, length, dim, pageSize);
  return meta;
}

/** Fold entries [from, to) of `keys` into the page rows of `meta` (rows of entries < from hold already). */
function extendMetadata(
  meta: Float32Array,
  keys: ArrayLike<number>,
  from: number,
  to: number,
  dim: number,
  pageSize: number,
): void {
  const width = 2 * dim;
  for (let e = from; e < to; e++) {
    const row = Math.floor(e / pageSize) * width;
    const ko = e * dim;
    if (e % pageSize === 0) {
      for (let d = 0; d < dim; d++) {
        const k = keys[ko + d]!;
        meta[row + d] = k;
        meta[row + dim + d] = k;
      }
      continue;
    }
    for (let d = 0; d < dim; d++) {
      const k = keys[ko + d]!;
      if (k > meta[row + d]!) meta[row + d] = k;
      if (k < meta[row + dim + d]!) meta[row + dim + d] = k;
    }
  }
}

/**
 * The page-scoring vector of query heads q [heads, dim] (the first `heads` rows): [sum_h max(q_h, 0)
 * | sum_h min(q_h, 0)], so that row . vector = sum_h sum_d max(q_hd max_d, q_hd min_d) for a row
 * [max | min]. Summing over the heads of a group scores a page by the sum of its heads' bounds.
 */
export function questQueryVector(
  q: ArrayLike<number>,
  heads: number,
  dim: number,
  stride = dim,
): Float64Array {
  const x = new Float64Array(2 * dim);
  for (let h = 0; h < heads; h++) {
    for (let d = 0; d < dim; d++) {
      const v = q[h * stride + d]!;
      if (v > 0) x[d] = x[d]! + v;
      else x[dim + d] = x[dim + d]! + v;
    }
  }
  return x;
}

/** scores[p] = meta row p . x for `pages` rows of `width` (a plain GEMV, accumulated in float64). */
export function pageScores(
  meta: Float32Array,
  pages: number,
  x: Float64Array,
  out = new Float64Array(pages),
) {
  const width = x.length;
  for (let p = 0; p < pages; p++) {
    let s = 0;
    const o = p * width;
    for (let i = 0; i < width; i++) s += meta[o + i]! * x[i]!;
    out[p] = s;
  }
  return out;
}

/**
 * Quest's page scores for one query q [dim] over keys [length, dim] in pages of `pageSize` (the last
 * one partial): sum_d max(q_d max_d, q_d min_d) over each page's elementwise max and min.
 */
export function questPageScores(
  q: ArrayLike<number>,
  keys: ArrayLike<number>,
  length: number,
  dim: number,
  pageSize: number,
): Float64Array {
  integerOption('pageSize', pageSize, 1);
  const meta = questPageMetadata(keys, length, dim, pageSize);
  return pageScores(meta, Math.ceil(length / pageSize), questQueryVector(q, 1, dim));
}

/** Pages to read: k = min(max(3, floor(budget / pageSize)), pages) (the reference's count). */
export function questPageCount(budget: number, pageSize: number, pages: number): number {
  return Math.min(Math.max(3, Math.floor(budget / pageSize)), pages);
}

interface LaneMeta {
  mark: LaneMark;
  /** [allocated pages, 2 headDim] rows [max | min]; rows of pages not reached yet are garbage. */
  meta: Float32Array;
  /** The f16 copy that is scored (bounds rounded outward), in the backend's storage, and its storage. */
  half?: Uint16Array;
  halfStore?: Float32Array;
  /** 2 headDim. */
  width: number;
}

/** Quest as a `KvPolicy` (`select` only); keeps page metadata per lane between steps. */
export class QuestPolicy implements KvPolicy {
  readonly budget: number;
  readonly pageSize: number;
  readonly skipLayers: number;
  readonly backend: Backend | undefined;
  readonly boundsDtype: 'f16' | 'f32';
  private readonly lanes = new Map<string, LaneMeta>();

  constructor(options: QuestOptions) {
    this.backend = options.backend;
    this.boundsDtype = options.boundsDtype ?? 'f32';
    if (this.boundsDtype !== 'f16' && this.boundsDtype !== 'f32')
      throw new InvalidArgumentError('boundsDtype', this.boundsDtype, "must be 'f16' or 'f32'");
    this.budget = integerOption('budget', options.budget, 1);
    this.pageSize = integerOption('pageSize', options.pageSize ?? 16, 1);
    this.skipLayers = integerOption('skipLayers', options.skipLayers ?? 2, 0);
  }

  /** Forget every lane's metadata (a new generation on a new cache). */
  reset(): void {
    for (const state of this.lanes.values()) this.release(state);
    this.lanes.clear();
  }

  private release(state: LaneMeta): void {
    this.backend?.free?.(state.meta);
    if (state.halfStore !== undefined) this.backend?.free?.(state.halfStore);
  }

  /** Whether the scored copy is f16 (with a backend that offers storage). */
  private get halfBounds(): boolean {
    return this.boundsDtype === 'f16' && this.backend?.allocate !== undefined;
  }

  /** Metadata storage: the backend's when it offers storage, else an ordinary array. */
  private allocate(length: number): Float32Array {
    return this.backend?.allocate?.(length) ?? new Float32Array(length);
  }

  /**
   * The page metadata of a lane as kept now ([pages, 2 headDim], [max | min] per page), or undefined
   * if the policy has not read that lane. For tests and inspection: a view, valid until the next step.
   */
  metadata(layer: number, sequence: number, kvHead: number): Float32Array | undefined {
    const state = this.lanes.get(`${layer}/${sequence}/${kvHead}`);
    if (state === undefined) return undefined;
    return state.meta.subarray(0, Math.ceil(state.mark.length / this.pageSize) * state.width);
  }

  /** Bring the lane's page metadata up to its current length, reading only the new entries. */
  private update(lane: KvLane): LaneMeta {
    const key = laneKey(lane);
    const width = 2 * lane.headDim;
    let state = this.lanes.get(key);
    if (state === undefined || state.width !== width || !state.mark.continues(lane)) {
      if (state !== undefined) this.release(state);
      state = { mark: new LaneMark(), meta: new Float32Array(0), width };
      this.lanes.set(key, state);
    }
    const pages = Math.ceil(lane.length / this.pageSize);
    const half = this.halfBounds;
    if (state.meta.length < pages * width) {
      const rows = Math.max(pages, 2 * (state.meta.length / width), 4);
      // The f32 bounds are scored only without an f16 copy; then they live in the backend's storage.
      const grown = half ? new Float32Array(rows * width) : this.allocate(rows * width);
      grown.set(state.meta);
      if (!half) this.backend?.free?.(state.meta);
      state.meta = grown;
      if (half) {
        const store = this.allocate(Math.ceil((rows * width) / 2));
        const bits = new Uint16Array(store.buffer, store.byteOffset, rows * width);
        if (state.half !== undefined) bits.set(state.half);
        if (state.halfStore !== undefined) this.backend?.free?.(state.halfStore);
        state.half = bits;
        state.halfStore = store;
      }
    }
    const from = state.mark.length;
    extendMetadata(state.meta, lane.keys, from, lane.length, lane.headDim, this.pageSize);
    if (half && lane.length > from) {
      // Refresh the f16 rows of the pages that changed: max rounded up, min down.
      const d = lane.headDim;
      const bits = state.half!;
      for (let p = Math.floor(from / this.pageSize); p < pages; p++) {
        const o = p * width;
        for (let i = 0; i < d; i++) {
          bits[o + i] = halfToward(state.meta[o + i]!, 1);
          bits[o + d + i] = halfToward(state.meta[o + d + i]!, -1);
        }
      }
    }
    state.mark.record(lane);
    return state;
  }

  select(lane: KvLane, query: KvQuery): Int32Array | undefined {
    if (lane.pageSize !== this.pageSize)
      throw new InvalidArgumentError(
        'pageSize',
        this.pageSize,
        `must equal the KV cache's page size (${lane.pageSize}): Quest's pages are the cache's pages`,
      );
    if (lane.layer < this.skipLayers || query.seq !== 1) return undefined;
    checkQuery(lane, query);
    const state = this.update(lane);
    const pages = Math.ceil(lane.length / this.pageSize);
    const k = questPageCount(this.budget, this.pageSize, pages);
    // A budget covering the lane reads it all (the reference's floor(min(length, budget) / page)
    // would drop a page when the last one is partial).
    if (this.budget >= lane.length || k >= pages) return undefined;
    const x = questQueryVector(query.q, query.heads, lane.headDim);
    const scores =
      this.backend === undefined
        ? pageScores(state.meta, pages, x)
        : this.backend.linear(
            Float32Array.from(x),
            1,
            state.half === undefined
              ? {
                  format: 'dense',
                  dtype: 'f32',
                  rows: pages,
                  cols: state.width,
                  values: state.meta.subarray(0, pages * state.width),
                }
              : {
                  format: 'dense',
                  dtype: 'f16',
                  rows: pages,
                  cols: state.width,
                  values: state.half.subarray(0, pages * state.width),
                },
          );
    const chosen = highestIndices(scores, k, pages);
    const last = chosen[chosen.length - 1]!;
    const entries = new Int32Array(
      chosen.length * this.pageSize - (last === pages - 1 ? pages * this.pageSize - lane.length : 0),
    );
    let n = 0;
    for (const p of chosen)
      for (let e = p * this.pageSize; e < Math.min(lane.length, (p + 1) * this.pageSize); e++)
        entries[n++] = e;
    return entries;
  }
}

/**
 * Quest: at decode, each lane's queries read the top k = min(max(3, floor(budget / pageSize)),
 * pages) pages by their Quest score (summed over the query heads sharing the lane), exactly. Layers
 * below `skipLayers` and prefill read everything; a budget covering the lane reads everything.
 */
export function quest(options: QuestOptions): QuestPolicy {
  return new QuestPolicy(options);
}
