// H2O, heavy-hitter oracle (Zhang et al., 2023; FMInference/H2O h2o_hf/utils_real_drop
// `H2OKVCache_LayerWise`): every held key accumulates the attention probability the queries give it;
// after each call a lane keeps its `heavy` highest-scoring keys outside the recent window, and the
// `recent` latest ones.
import { InvalidArgumentError, type KvLane, type KvPolicy, type KvQuery } from '@sparsekit/core';
import { highestIndices } from '@sparsekit/sparse-formats';
import { complement, integerOption, LaneMark, laneKey, scaleOption, withRange } from './lanes.js';
import { addProbabilities } from './probabilities.js';

export interface H2oOptions {
  /** Heavy hitters kept outside the recent window (default 4, the reference's hh_size). */
  heavy?: number;
  /** Latest entries always kept (default 512, the reference's recent_size). */
  recent?: number;
  /**
   * A total held after each call, split evenly (heavy = floor(budget / 2), the rest recent) as the
   * paper's equal heavy and recent ratios; instead of `heavy` and `recent`.
   */
  budget?: number;
  /** Score scale of the model's attention (default 1 / sqrt(headDim)). */
  scale?: number;
}

interface Scores {
  mark: LaneMark;
  /** Accumulated probability of each held entry, summed over the group's heads. */
  scores: Float64Array;
}

/** H2O as a `KvPolicy` (`evict` only); keeps accumulated scores per lane. */
export class H2oPolicy implements KvPolicy {
  readonly heavy: number;
  readonly recent: number;
  readonly scale: number | undefined;
  private readonly lanes = new Map<string, Scores>();

  constructor(options: H2oOptions = {}) {
    if (options.budget !== undefined) {
      if (options.heavy !== undefined || options.recent !== undefined)
        throw new InvalidArgumentError(
          'budget',
          options.budget,
          'is instead of heavy and recent, not with them',
        );
      const budget = integerOption('budget', options.budget, 1);
      this.heavy = Math.floor(budget / 2);
      this.recent = budget - this.heavy;
    } else {
      this.heavy = integerOption('heavy', options.heavy ?? 4, 0);
      this.recent = integerOption('recent', options.recent ?? 512, 0);
      if (this.heavy + this.recent < 1)
        throw new InvalidArgumentError('heavy + recent', 0, 'must keep at least one entry');
    }
    this.scale = scaleOption(options.scale);
  }

  /** Entries a lane holds at most after each call: heavy + recent (the next step reads one more). */
  get held(): number {
    return this.heavy + this.recent;
  }

  /** Forget every lane's scores. */
  reset(): void {
    this.lanes.clear();
  }

  /** The accumulated score of each entry of a lane as kept now (for inspection), or undefined. */
  scores(layer: number, sequence: number, kvHead: number): Float64Array | undefined {
    const state = this.lanes.get(`${layer}/${sequence}/${kvHead}`);
    return state?.scores.subarray(0, state.mark.length);
  }

  /**
   * After every call (prefill included): add the call's attention probabilities to the held keys'
   * scores, then keep topk(scores of all but the last `recent`, heavy) and the last `recent`.
   */
  evict(lane: KvLane, query: KvQuery): Int32Array | undefined {
    const key = laneKey(lane);
    let state = this.lanes.get(key);
    if (state === undefined || !state.mark.continues(lane)) {
      // A lane seen for the first time (or not the one seen): scores count from this call on.
      state = { mark: new LaneMark(), scores: new Float64Array(0) };
      this.lanes.set(key, state);
    }
    const n = lane.length;
    const scores = new Float64Array(n);
    scores.set(state.scores.subarray(0, Math.min(state.mark.length, n)));
    addProbabilities(lane, query, scores, { scale: this.scale });
    if (n <= this.held) {
      state.scores = scores;
      state.mark.record(lane);
      return undefined;
    }
    const older = n - this.recent;
    const keep = withRange(highestIndices(scores, this.heavy, older), older, n);
    state.scores = Float64Array.from(keep, (e) => scores[e]!);
    state.mark.record(lane, keep);
    return complement(keep, n);
  }
}

/**
 * H2O: after every call each lane keeps its `heavy` heaviest keys by accumulated attention
 * probability (summed over the query heads sharing the lane) among all but the latest `recent`,
 * and the latest `recent`. Scores are recomputed from the queries and the held keys, so the cache
 * must hold keys as attention reads them (positions 'original').
 */
export function h2o(options: H2oOptions = {}): H2oPolicy {
  return new H2oPolicy(options);
}
