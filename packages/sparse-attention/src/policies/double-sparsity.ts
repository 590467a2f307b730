// Double Sparsity (Yang et al., 2024; andy-yang-1/DoubleSparse LongBench/modify_llama.py): token
// sparsity chosen with channel sparsity. Offline, each head's channels are ranked by how much they
// contribute to q . k (see double-sparsity-calibrate.ts); at decode, a label cache holds every key's
// top headDim / groupFactor channels (quantised to labelBits), approximate scores q_label . k_label /
// sqrt(headDim / groupFactor) pick the `heavyConst` heaviest tokens, and exact attention reads only
// them.
import {
  InvalidArgumentError,
  type KvLane,
  type KvPolicy,
  type KvQuery,
  ShapeMismatchError,
} from '@sparsekit/core';
import { type Backend, highestIndices } from '@sparsekit/sparse-formats';
import { integerOption, LaneMark, laneKey } from './lanes.js';
import { checkQuery } from './probabilities.js';

/** Which calibration statistic ranks the channels: mean |q . k| (default), mean |q| or mean |k|. */
export type LabelSource = 'qk' | 'q' | 'k';
export const LABEL_SOURCES: readonly LabelSource[] = ['qk', 'q', 'k'];

/**
 * Each head's channels, most important first, per layer: the rows are query heads for 'qk' and 'q'
 * (a query head's labels read its own channels of the shared key), key/value heads for 'k'.
 * `layers[l]` is undefined for a layer the file does not cover.
 */
export interface LabelChannels {
  readonly source: LabelSource;
  readonly headDim: number;
  readonly layers: readonly (readonly Int32Array[] | undefined)[];
}

export interface DoubleSparsityOptions {
  /** The calibrated channel order (`calibrateDoubleSparsity` + `labelChannels`, or `loadLabelChannels`). */
  channels: LabelChannels;
  /** Tokens each decode step reads per lane (default 256, the reference's). */
  heavyConst?: number;
  /** Label channels are headDim / groupFactor (default 8, the reference's; must divide headDim). */
  groupFactor?: number;
  /** Bits of the labels (default 4, the reference's); 16 keeps them unquantised, as the reference. */
  labelBits?: number;
  /** Layers below this read every entry (default 2, as the reference). */
  skipLayers?: number;
  /**
   * A backend to score on: the label cache then lives in its storage (`allocate`) and the scores are
   * one `linear` call (the wasm backend runs it in place). Default: a loop here.
   */
  backend?: Backend;
}

/**
 * The reference's `pseudo_quantize` of `x[from, from + n)` in place: asymmetric, `bits` bits over
 * that row's own min and max (a constant row is left as it is), rounded half to even as torch.round.
 */
export function pseudoQuantize(x: Float32Array, from: number, n: number, bits: number): void {
  const levels = 2 ** bits - 1;
  let min = Number.POSITIVE_INFINITY;
  let max = Number.NEGATIVE_INFINITY;
  for (let i = from; i < from + n; i++) {
    const v = x[i]!;
    if (v < min) min = v;
    if (v > max) max = v;
  }
  const range = max - min === 0 ? 1 : max - min;
  const scale = levels / range;
  for (let i = from; i < from + n; i++) {
    const level = Math.min(levels, Math.max(0, roundHalfEven((x[i]! - min) * scale)));
    x[i] = level / scale + min;
  }
}

function roundHalfEven(v: number): number {
  const r = Math.round(v);
  return Math.abs(v % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

interface LabelState {
  mark: LaneMark;
  /**
   * [allocated entries, labelHeads * width]: each entry's labels for each query head of the group,
   * or once for all of them when they share their channels (source 'k': one order per key/value head).
   */
  labels: Float32Array;
  heads: number;
  labelHeads: number;
  width: number;
}

/** Double Sparsity as a `KvPolicy` (`select` only); keeps a label cache per lane. */
export class DoubleSparsityPolicy implements KvPolicy {
  readonly channels: LabelChannels;
  readonly heavyConst: number;
  readonly groupFactor: number;
  readonly labelBits: number;
  readonly skipLayers: number;
  /** Label channels per head: headDim / groupFactor. */
  readonly labelWidth: number;
  readonly backend: Backend | undefined;
  private readonly lanes = new Map<string, LabelState>();

  constructor(options: DoubleSparsityOptions) {
    const { channels } = options;
    this.backend = options.backend;
    if (channels === undefined || !Array.isArray(channels.layers))
      throw new InvalidArgumentError('channels', channels, 'must be label channels (see labelChannels)');
    this.channels = channels;
    this.heavyConst = integerOption('heavyConst', options.heavyConst ?? 256, 1);
    this.groupFactor = integerOption('groupFactor', options.groupFactor ?? 8, 1);
    this.labelBits = integerOption('labelBits', options.labelBits ?? 4, 1);
    if (this.labelBits > 16)
      throw new InvalidArgumentError('labelBits', this.labelBits, 'must be at most 16');
    this.skipLayers = integerOption('skipLayers', options.skipLayers ?? 2, 0);
    if (channels.headDim % this.groupFactor !== 0)
      throw new InvalidArgumentError(
        'groupFactor',
        this.groupFactor,
        `must divide the head dimension (${channels.headDim})`,
      );
    this.labelWidth = channels.headDim / this.groupFactor;
  }

  /** Forget every lane's label cache. */
  reset(): void {
    for (const state of this.lanes.values()) this.backend?.free?.(state.labels);
    this.lanes.clear();
  }

  /** The label channels of query head `i` of a lane's group of `heads`. */
  private channelsOf(lane: KvLane, heads: number, i: number): Int32Array {
    const rows = this.channels.layers[lane.layer];
    if (rows === undefined)
      throw new InvalidArgumentError(
        'channels',
        `layer ${lane.layer}`,
        'has no calibrated channels: calibrate every layer the policy reads (or raise skipLayers)',
      );
    const row = this.channels.source === 'k' ? lane.kvHead : lane.kvHead * heads + i;
    const order = rows[row];
    if (order === undefined)
      throw new ShapeMismatchError(
        [row + 1],
        [rows.length],
        `label channels of layer ${lane.layer} (heads calibrated vs heads the lane serves)`,
      );
    return order;
  }

  /** Labels of entries [from, to) of the lane into `state` (each head's channels, quantised). */
  private label(lane: KvLane, state: LabelState, from: number, to: number): void {
    const { heads, labelHeads, width } = state;
    const d = lane.headDim;
    const stride = labelHeads * width;
    for (let i = 0; i < labelHeads; i++) {
      const order = this.channelsOf(lane, heads, i);
      for (let e = from; e < to; e++) {
        const o = e * stride + i * width;
        for (let j = 0; j < width; j++) state.labels[o + j] = lane.keys[e * d + order[j]!]!;
        if (this.labelBits < 16) pseudoQuantize(state.labels, o, width, this.labelBits);
      }
    }
  }

  private update(lane: KvLane, heads: number): LabelState {
    const key = laneKey(lane);
    const width = this.labelWidth;
    // With one channel order per key/value head the group's labels are the same: kept once.
    const labelHeads = this.channels.source === 'k' ? 1 : heads;
    let state = this.lanes.get(key);
    if (state === undefined || state.heads !== heads || !state.mark.continues(lane)) {
      if (state !== undefined) this.backend?.free?.(state.labels);
      state = { mark: new LaneMark(), labels: new Float32Array(0), heads, labelHeads, width };
      this.lanes.set(key, state);
    }
    const stride = labelHeads * width;
    if (state.labels.length < lane.length * stride) {
      const n = Math.max(lane.length, 2 * (state.labels.length / stride), 64) * stride;
      const grown = this.backend?.allocate?.(n) ?? new Float32Array(n);
      grown.set(state.labels);
      this.backend?.free?.(state.labels);
      state.labels = grown;
    }
    this.label(lane, state, state.mark.length, lane.length);
    state.mark.record(lane);
    return state;
  }

  /**
   * The approximate scores of every entry of the lane for the decode query, summed over the query
   * heads of the group: sum_h q_label_h . k_label_h / sqrt(headDim / groupFactor).
   */
  approximateScores(lane: KvLane, query: KvQuery): Float64Array | Float32Array {
    if (lane.headDim !== this.channels.headDim)
      throw new ShapeMismatchError(
        [this.channels.headDim],
        [lane.headDim],
        'head dimension of the label channels',
      );
    checkQuery(lane, query);
    const { heads } = query;
    const state = this.update(lane, heads);
    const width = this.labelWidth;
    const stride = state.labelHeads * width;
    const d = lane.headDim;
    // Each head's quantised label query; heads sharing their labels add theirs into one vector.
    const qLabels = new Float32Array(stride);
    const one = new Float32Array(width);
    for (let i = 0; i < heads; i++) {
      const order = this.channelsOf(lane, heads, i);
      for (let j = 0; j < width; j++) one[j] = query.q[i * query.seq * d + order[j]!]!;
      if (this.labelBits < 16) pseudoQuantize(one, 0, width, this.labelBits);
      const at = state.labelHeads === 1 ? 0 : i * width;
      for (let j = 0; j < width; j++) qLabels[at + j] = qLabels[at + j]! + one[j]!;
    }
    const scale = 1 / Math.sqrt(width);
    if (this.backend !== undefined) {
      const scores = this.backend.linear(qLabels, 1, {
        format: 'dense',
        dtype: 'f32',
        rows: lane.length,
        cols: stride,
        values: state.labels.subarray(0, lane.length * stride),
      });
      for (let e = 0; e < scores.length; e++) scores[e] = scores[e]! * scale;
      return scores;
    }
    const scores = new Float64Array(lane.length);
    for (let e = 0; e < lane.length; e++) {
      let s = 0;
      const o = e * stride;
      for (let j = 0; j < stride; j++) s += qLabels[j]! * state.labels[o + j]!;
      scores[e] = s * scale;
    }
    return scores;
  }

  select(lane: KvLane, query: KvQuery): Int32Array | undefined {
    if (lane.layer < this.skipLayers || query.seq !== 1 || this.heavyConst >= lane.length) return undefined;
    return highestIndices(this.approximateScores(lane, query), this.heavyConst, lane.length);
  }
}

/**
 * Double Sparsity: at decode, each lane's queries read the `heavyConst` entries with the highest
 * approximate scores from the label cache (the group's heads' scores summed), exactly. Layers below
 * `skipLayers` and prefill read everything, as does a lane of at most heavyConst entries.
 */
export function doubleSparsity(options: DoubleSparsityOptions): DoubleSparsityPolicy {
  return new DoubleSparsityPolicy(options);
}
