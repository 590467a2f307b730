// Experts choose tokens (Zhou et al. 2022; HF flax `ExpertsChooseMaskedRouter`): each expert takes
// the `capacity` tokens with the largest router probability for it, so a token gets 0..E experts.
import { Rng, type Router, type RouterInput } from '@sparsekit/core';
import { type Capacity, checkCapacity, expertCapacity } from './capacity.js';
import { checkNoise, type GateOptions, gateLogits, keepGateExperts } from './gate-logits.js';
import type { RouteResult } from './route-result.js';
import { softmaxRows } from './softmax.js';
import { inputTokens, logitsTokens, positiveInteger } from './validate.js';

export interface ExpertChoiceOptions {
  /**
   * Tokens per expert: default { factor: 2, convention: 'switch' } = floor(2 T / E) (the paper's
   * capacity factor c = 2: on average each token goes to two experts), never more than T. 'dropless'
   * lets every expert take every token.
   */
  capacity?: Capacity;
}

/**
 * Expert-choice routing of float64 logits [tokens, numExperts]. The result has k = numExperts slots
 * per token, slot j for expert j (layout 'per-expert'): expert j and weight p[t, j] where expert j
 * took token t, else -1 and 0. Ties between tokens go to the earlier token. Nothing is "dropped"
 * (`dropped` is 0); a token no expert took rides the residual.
 */
export function routeExpertChoice(
  logits: ArrayLike<number>,
  numExperts: number,
  options: ExpertChoiceOptions = {},
): RouteResult {
  const E = positiveInteger('numExperts', numExperts);
  const tokens = logitsTokens(logits, E);
  const spec = checkCapacity(options.capacity ?? { factor: 2, convention: 'switch' });
  const probs = softmaxRows(logits, tokens, E);
  const capacity = Math.min(
    tokens,
    expertCapacity(spec, { tokens, numExperts: E, k: 1, needed: tokens }) ?? tokens,
  );
  const experts = new Int32Array(tokens * E).fill(-1);
  const weights = new Float32Array(tokens * E);
  const order = Array.from({ length: tokens }, (_, t) => t);
  for (let e = 0; e < E; e++) {
    order.sort((a, b) => probs[b * E + e]! - probs[a * E + e]! || a - b);
    for (let i = 0; i < capacity; i++) {
      const t = order[i]!;
      experts[t * E + e] = e;
      weights[t * E + e] = probs[t * E + e]!;
    }
  }
  return {
    k: E,
    experts,
    weights,
    numExperts: E,
    tokens,
    probs,
    logits: Float64Array.from(logits),
    chosen: experts.slice(),
    capacity,
    dropped: 0,
    layout: 'per-expert',
  };
}

export interface ExpertChoiceRouterOptions extends ExpertChoiceOptions, GateOptions {
  numExperts: number;
  training?: boolean;
  seed?: number;
}

/**
 * A core `Router` for expert choice. A token's experts depend on the other tokens of the call (later
 * ones included), so it is not causal: the reference warns it "should not be used in decoder blocks",
 * and at decode (one token per call) every expert with capacity >= 1 takes the token.
 */
export class ExpertChoiceRouter implements Router {
  readonly numExperts: number;
  training: boolean;
  last: RouteResult | undefined;
  private readonly rng: Rng;

  constructor(readonly options: ExpertChoiceRouterOptions) {
    this.numExperts = positiveInteger('numExperts', options.numExperts);
    checkCapacity(options.capacity ?? { factor: 2, convention: 'switch' });
    checkNoise(options.noise, this.numExperts, options.gateWeight !== undefined);
    this.training = options.training ?? false;
    this.rng = new Rng(options.seed ?? 0);
  }

  /** The router of a layer that keeps experts `kept` (expert pruning): gate and noise weights keep their rows. */
  withExperts(kept: readonly number[]): ExpertChoiceRouter {
    return new ExpertChoiceRouter({
      ...keepGateExperts(this.options, this.numExperts, kept),
      numExperts: kept.length,
      training: this.training,
    });
  }

  route(input: RouterInput): RouteResult {
    const tokens = inputTokens(input, this.numExperts);
    const { logits } = gateLogits(input, tokens, this.numExperts, this.options, this.training, this.rng);
    this.last = routeExpertChoice(logits, this.numExperts, this.options);
    return this.last;
  }
}

export function expertChoice(options: ExpertChoiceRouterOptions): ExpertChoiceRouter {
  return new ExpertChoiceRouter(options);
}
