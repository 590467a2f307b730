// Router losses in float64, per layer: the load-balancing loss (Switch's top-1 form, Mixtral's top-k
// form, Megablocks' per-choice mean) and ST-MoE's router z-loss.
import { InvalidArgumentError } from '@sparsekit/core';
import type { RouteResult } from './route-result.js';
import { logsumexpRows } from './softmax.js';

/**
 * Which f_i (share of tokens routed to expert i) the loss uses, with P_i the mean router probability:
 * - 'switch': f_i = share of tokens whose first choice is i; alpha * E * sum_i f_i P_i (Switch, HF
 *   Switch's mean(f P) E^2, Tutel's gshard_loss, the fixtures);
 * - 'mixtral': f_i = share of (token, choice) pairs on i, summed over the k choices; alpha * E *
 *   sum_i f_i P_i (HF Mixtral's `load_balancing_loss_func` on one layer; k at perfect balance);
 * - 'megablocks': the 'mixtral' form divided by k (Megablocks' E / (T k) dot(counts, mean probs)).
 * f counts the choices before capacity dropping (as the references do).
 */
export type BalanceForm = 'switch' | 'mixtral' | 'megablocks';

export interface BalanceOptions {
  /** The coefficient (default 0.01, the Switch paper's; HF's router_aux_loss_coef is 0.001, Megablocks' 0.1). */
  alpha?: number;
  /** Default 'switch' for k = 1, else 'mixtral'. */
  form?: BalanceForm;
}

function checkRanked(result: RouteResult): void {
  if (result.layout !== 'ranked')
    throw new InvalidArgumentError(
      'routing layout',
      result.layout,
      'the load-balancing loss is defined for token-choice (ranked) routings; expert choice needs none',
    );
}

/** The load-balancing loss of one layer's routing. */
export function loadBalancingLoss(result: RouteResult, options: BalanceOptions = {}): number {
  checkRanked(result);
  const alpha = options.alpha ?? 0.01;
  if (!Number.isFinite(alpha)) throw new InvalidArgumentError('alpha', alpha, 'must be a finite number');
  const form = options.form ?? (result.k === 1 ? 'switch' : 'mixtral');
  if (!['switch', 'mixtral', 'megablocks'].includes(form))
    throw new InvalidArgumentError('form', form, "must be 'switch', 'mixtral' or 'megablocks'");
  const { tokens: T, numExperts: E, k, chosen, probs } = result;
  if (T === 0) return 0;
  const f = new Float64Array(E);
  const P = new Float64Array(E);
  for (let t = 0; t < T; t++) {
    const choices = form === 'switch' ? 1 : k;
    for (let j = 0; j < choices; j++) {
      const e = chosen[t * k + j]!;
      if (e >= 0) f[e]! += 1 / T;
    }
    for (let e = 0; e < E; e++) P[e]! += probs[t * E + e]! / T;
  }
  let sum = 0;
  for (let e = 0; e < E; e++) sum += f[e]! * P[e]!;
  return alpha * E * sum * (form === 'megablocks' ? 1 / k : 1);
}

/** The mean of a per-layer loss over layers (what the references' intent is; see transformers#28255). */
export function meanOverLayers(results: readonly RouteResult[], loss: (r: RouteResult) => number): number {
  if (results.length === 0) return 0;
  return results.reduce((s, r) => s + loss(r), 0) / results.length;
}

/**
 * HF Mixtral's `load_balancing_loss_func` as it is: the layers' tokens concatenated into one batch
 * before f and P are taken (transformers#28255), for comparison with `meanOverLayers`.
 */
export function concatenatedBalancingLoss(
  results: readonly RouteResult[],
  options: BalanceOptions = {},
): number {
  if (results.length === 0) return 0;
  const first = results[0]!;
  for (const r of results)
    if (r.numExperts !== first.numExperts || r.k !== first.k)
      throw new InvalidArgumentError(
        'results',
        r.numExperts,
        'every layer must have the same numExperts and k',
      );
  const tokens = results.reduce((s, r) => s + r.tokens, 0);
  const joined: RouteResult = {
    ...first,
    tokens,
    chosen: Int32Array.from(results.flatMap((r) => Array.from(r.chosen))),
    probs: Float64Array.from(results.flatMap((r) => Array.from(r.probs))),
  };
  return loadBalancingLoss(joined, options);
}

/** ST-MoE's router z-loss: coefficient * mean over tokens of logsumexp(logits)^2 (default coefficient 1). */
export function routerZLoss(
  result: Pick<RouteResult, 'logits' | 'tokens' | 'numExperts'>,
  coefficient = 1,
): number {
  if (!Number.isFinite(coefficient))
    throw new InvalidArgumentError('coefficient', coefficient, 'must be a finite number');
  if (result.tokens === 0) return 0;
  const lse = logsumexpRows(result.logits, result.tokens, result.numExperts);
  let sum = 0;
  for (const v of lse) sum += v * v;
  return (coefficient * sum) / result.tokens;
}
