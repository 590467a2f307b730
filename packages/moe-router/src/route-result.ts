// What this package's routers return: core's `Routing` (what a model dispatches) plus what the
// metrics and losses read (router probabilities, the choices before dropping, the capacity).
import type { Routing } from '@sparsekit/core';

export interface RouteResult extends Routing {
  readonly numExperts: number;
  readonly tokens: number;
  /**
   * [tokens, numExperts] the router's probabilities in float64: the softmax of the logits it used
   * (after noise or jitter, when training); for a ReLU router, its normalised weights.
   */
  readonly probs: Float64Array;
  /** [tokens, numExperts] the logits it used (after noise or jitter), float64. */
  readonly logits: Float64Array;
  /** [tokens * k] the experts chosen before capacity dropped any (-1 where nothing was chosen). */
  readonly chosen: Int32Array;
  /** Slots per expert, or undefined when nothing bounds it (dropless). */
  readonly capacity: number | undefined;
  /** Slots chosen and then dropped for capacity. */
  readonly dropped: number;
  /**
   * How slots map to experts. 'ranked': slot j of a token is its j-th choice (top-k routers, hash).
   * 'per-expert': k = numExperts and slot j is expert j or -1 (expert choice, ReLU routers: a token
   * may get 0..numExperts experts).
   */
  readonly layout: 'ranked' | 'per-expert';
}
