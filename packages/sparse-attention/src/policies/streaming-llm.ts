// StreamingLLM (Xiao et al., 2024; mit-han-lab/streaming-llm `StartRecentKVCache`): keep the first
// `sinks` entries (attention sinks) and the most recent ones; everything between is evicted.
import type { KvLane, KvPolicy } from '@sparsekit/core';
import { integerOption } from './lanes.js';

export interface StreamingLlmOptions {
  /** Entries kept from the start of the lane (default 4, the reference's start_size). */
  sinks?: number;
  /** Latest entries each step reads, the new token included (default 512, the reference's recent_size). */
  recent?: number;
}

/** StreamingLLM as a `KvPolicy` (`evict` only, stateless). */
export class StreamingLlmPolicy implements KvPolicy {
  readonly sinks: number;
  readonly recent: number;

  constructor(options: StreamingLlmOptions = {}) {
    this.sinks = integerOption('sinks', options.sinks ?? 4, 0);
    this.recent = integerOption('recent', options.recent ?? 512, 1);
  }

  /** Entries a lane holds after each call: sinks + recent - 1, so the next token reads sinks + recent. */
  get held(): number {
    return this.sinks + this.recent - 1;
  }

  /**
   * After every call (prefill included): drop the entries between the sinks and the latest
   * `recent - 1`, so the next step's queries read [0, sinks) and the last `recent` entries with the
   * new one, as the reference's `evict_for_space` leaves start_size + recent_size before attention.
   */
  evict(lane: KvLane): Int32Array | undefined {
    const excess = lane.length - this.held;
    if (excess <= 0) return undefined;
    return Int32Array.from({ length: excess }, (_, i) => this.sinks + i);
  }
}

/**
 * StreamingLLM: every lane keeps its first `sinks` entries and the latest ones, so each decode step
 * reads sinks + recent entries. Works with either cache position mode; with `positions: 'shifted'`
 * (rotary models) keys take their index in the cache as position, as the reference does, and
 * generation can run past the model's context length.
 */
export function streamingLlm(options: StreamingLlmOptions = {}): StreamingLlmPolicy {
  return new StreamingLlmPolicy(options);
}
