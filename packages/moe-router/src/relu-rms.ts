// BlockFFN's router (thunlp/BlockFFN, `norm_after_router="rms"`): ReLU of the gate logits, then an
// RMSNorm across the experts. Every expert with a nonzero weight is active, so a token gets 0..E.
import { InvalidArgumentError, type Router, type RouterInput, ShapeMismatchError } from '@sparsekit/core';
import type { RouteResult } from './route-result.js';
import { assertFiniteValues, inputTokens, logitsTokens, positiveInteger } from './validate.js';

export interface ReluRmsOptions {
  /** RMSNorm epsilon (default 1e-6). */
  eps?: number;
  /** [numExperts] the RMSNorm gain (default all ones; BlockFFN learns it). */
  normWeight?: ArrayLike<number>;
}

function check(options: ReluRmsOptions, E: number): void {
  const eps = options.eps ?? 1e-6;
  if (!(Number.isFinite(eps) && eps > 0))
    throw new InvalidArgumentError('eps', eps, 'must be a finite number > 0');
  if (options.normWeight !== undefined) {
    if (options.normWeight.length !== E)
      throw new ShapeMismatchError([E], [options.normWeight.length], 'normWeight');
    assertFiniteValues(options.normWeight, 'normWeight');
  }
}

/**
 * ReLU + RMSNorm routing of logits [tokens, numExperts]: r = ReLU(logits), w = g * r / sqrt(mean_e(r^2)
 * + eps). k = numExperts slots per token, slot j for expert j (layout 'per-expert'), -1 where w is 0.
 * `probs` holds w (the router's own weights; they are not probabilities and do not sum to 1).
 */
export function routeReluRms(
  logits: ArrayLike<number>,
  numExperts: number,
  options: ReluRmsOptions = {},
): RouteResult {
  const E = positiveInteger('numExperts', numExperts);
  const tokens = logitsTokens(logits, E);
  check(options, E);
  const eps = options.eps ?? 1e-6;
  const probs = new Float64Array(tokens * E);
  const experts = new Int32Array(tokens * E).fill(-1);
  const weights = new Float32Array(tokens * E);
  for (let t = 0; t < tokens; t++) {
    let squares = 0;
    for (let e = 0; e < E; e++) {
      const r = Math.max(0, logits[t * E + e]!);
      probs[t * E + e] = r;
      squares += r * r;
    }
    const scale = 1 / Math.sqrt(squares / E + eps);
    for (let e = 0; e < E; e++) {
      const w = probs[t * E + e]! * scale * (options.normWeight?.[e] ?? 1);
      probs[t * E + e] = w;
      if (w !== 0) {
        experts[t * E + e] = e;
        weights[t * E + e] = w;
      }
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
    capacity: undefined,
    dropped: 0,
    layout: 'per-expert',
  };
}

export interface ReluRmsRouterOptions extends ReluRmsOptions {
  numExperts: number;
}

/** A core `Router`: BlockFFN's ReLU + RMSNorm gate on the model's gate logits. */
export class ReluRmsRouter implements Router {
  readonly numExperts: number;
  last: RouteResult | undefined;

  constructor(readonly options: ReluRmsRouterOptions) {
    this.numExperts = positiveInteger('numExperts', options.numExperts);
    check(options, this.numExperts);
  }

  /** The router of a layer that keeps experts `kept` (expert pruning): the norm gain keeps its entries. */
  withExperts(kept: readonly number[]): ReluRmsRouter {
    const g = this.options.normWeight;
    return new ReluRmsRouter({
      ...this.options,
      numExperts: kept.length,
      ...(g === undefined ? {} : { normWeight: kept.map((e) => g[e]!) }),
    });
  }

  route(input: RouterInput): RouteResult {
    inputTokens(input, this.numExperts);
    this.last = routeReluRms(input.logits.data, this.numExperts, this.options);
    return this.last;
  }
}

export function reluRms(options: ReluRmsRouterOptions): ReluRmsRouter {
  return new ReluRmsRouter(options);
}
