// BlockFFN's chunk-level objectives for ReLU routers (thunlp/BlockFFN, `ActivationContext`), in
// float64: the chunk sparsification loss and the activation-locality ("transfer") loss.
import { InvalidArgumentError } from '@sparsekit/core';
import type { RouteResult } from './route-result.js';

function positive(name: string, v: number): void {
  if (!(Number.isFinite(v) && v > 0)) throw new InvalidArgumentError(name, v, 'must be a finite number > 0');
}

/**
 * The router scores BlockFFN's losses read: each token's weights divided by their sum (+ 1e-5), so
 * each lies in [0, 1] (`router_score_scaled`). [tokens, numExperts].
 */
export function scaledScores(result: Pick<RouteResult, 'probs' | 'tokens' | 'numExperts'>): Float64Array {
  const { probs, tokens: T, numExperts: E } = result;
  const out = new Float64Array(T * E);
  for (let t = 0; t < T; t++) {
    let sum = 0;
    for (let e = 0; e < E; e++) sum += probs[t * E + e]!;
    for (let e = 0; e < E; e++) out[t * E + e] = probs[t * E + e]! / (sum + 1e-5);
  }
  return out;
}

/**
 * Chunk sparsification loss: with p the scaled scores, the probability that expert e is active
 * somewhere in a chunk of `chunk` consecutive tokens is 1 - prod_t (1 - p[t, e]); the loss is its
 * mean over (chunk, expert) pairs, computed as 1 - mean(exp(sum_t log(1 - p + 1e-5))) as BlockFFN does.
 * BlockFFN asserts T is a multiple of the chunk; here a last partial chunk counts as a chunk.
 */
export function chunkSparsificationLoss(
  result: Pick<RouteResult, 'probs' | 'tokens' | 'numExperts'>,
  chunk = 8,
): number {
  if (!Number.isInteger(chunk) || chunk < 1)
    throw new InvalidArgumentError('chunk', chunk, 'must be a positive integer');
  const { tokens: T, numExperts: E } = result;
  if (T === 0) return 0;
  const p = scaledScores(result);
  const chunks = Math.ceil(T / chunk);
  let sum = 0;
  for (let c = 0; c < chunks; c++)
    for (let e = 0; e < E; e++) {
      let log = 0;
      for (let t = c * chunk; t < Math.min(T, (c + 1) * chunk); t++)
        log += Math.log(1 - p[t * E + e]! + 1e-5);
      sum += Math.exp(log);
    }
  return 1 - sum / (chunks * E);
}

/** BCE with logits: -(y log sigmoid(x) + (1 - y) log(1 - sigmoid(x))), stably. */
function bceWithLogits(x: number, y: number): number {
  return Math.max(x, 0) - x * y + Math.log1p(Math.exp(-Math.abs(x)));
}

export interface LocalityOptions {
  /** The sigmoid steepness (BlockFFN's `sigmoid_steep`, default 100). */
  steep?: number;
  /** The loss coefficient (BlockFFN's `transfer_lambda`, default 1). */
  lambda?: number;
}

/**
 * Activation-locality loss ("transfer regularisation"): consecutive tokens should activate the same
 * experts. For each token t >= 1 and expert e, BCE-with-logits of steep * l[t-1, e] against the
 * target sigmoid(steep * l[t, e]), on the raw router logits l (before ReLU); averaged, times lambda.
 * The call is one segment (BlockFFN's segment boundaries are not modelled).
 */
export function localityLoss(
  result: Pick<RouteResult, 'logits' | 'tokens' | 'numExperts'>,
  options: LocalityOptions = {},
): number {
  const steep = options.steep ?? 100;
  const lambda = options.lambda ?? 1;
  positive('steep', steep);
  if (!Number.isFinite(lambda)) throw new InvalidArgumentError('lambda', lambda, 'must be a finite number');
  const { logits: l, tokens: T, numExperts: E } = result;
  if (T < 2) return 0;
  let sum = 0;
  for (let t = 1; t < T; t++)
    for (let e = 0; e < E; e++) {
      const target = 1 / (1 + Math.exp(-steep * l[t * E + e]!));
      sum += bceWithLogits(steep * l[(t - 1) * E + e]!, target);
    }
  return (lambda * sum) / ((T - 1) * E);
}

/**
 * BlockFFN's balance loss: E * sum_e importance_e * load_e, importance the mean scaled score of
 * expert e, load its share of all active (token, expert) pairs (+1e-5 in the denominator). 1 when
 * every expert is equally active and equally weighted.
 */
export function blockffnBalanceLoss(result: Pick<RouteResult, 'probs' | 'tokens' | 'numExperts'>): number {
  const { tokens: T, numExperts: E } = result;
  if (T === 0) return 0;
  const p = scaledScores(result);
  const importance = new Float64Array(E);
  const load = new Float64Array(E);
  let active = 0;
  for (let t = 0; t < T; t++)
    for (let e = 0; e < E; e++) {
      const v = p[t * E + e]!;
      importance[e]! += v / T;
      if (v > 0) {
        load[e]!++;
        active++;
      }
    }
  let sum = 0;
  for (let e = 0; e < E; e++) sum += importance[e]! * (load[e]! / (active + 1e-5));
  return E * sum;
}
