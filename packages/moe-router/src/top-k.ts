// Tokens choose experts: softmax over the logits, the k largest per token (Mixtral, GShard), then
// capacity dropping in GShard order. Switch's top-1 router is the k = 1 case with its own defaults.
import { InvalidArgumentError, Rng, type Router, type RouterInput } from '@sparsekit/core';
import {
  type Capacity,
  checkCapacity,
  dropOverCapacity,
  expertCapacity,
  neededCapacity,
} from './capacity.js';
import { checkNoise, type GateOptions, gateLogits, keepGateExperts } from './gate-logits.js';
import type { RouteResult } from './route-result.js';
import { softmaxRows, topIndices } from './softmax.js';
import { expertsPerToken, inputTokens, logitsTokens, positiveInteger } from './validate.js';

/**
 * How the k kept probabilities become combine weights. 'none': the raw softmax probabilities
 * (Switch, GShard as the fixtures have it); 'topk': divided by their sum over the k choices before
 * any is dropped (Mixtral's `norm_topk_prob`, Tutel's `normalize_gate`); 'kept': divided by the sum
 * over the slots that survive capacity (DeepSpeed's top-2 gating).
 */
export type Normalize = 'none' | 'topk' | 'kept';

export interface TopKOptions {
  /** Choices per token (default 2). */
  k?: number;
  /** Default 'topk'. */
  normalize?: Normalize;
  /** Default 'dropless'. */
  capacity?: Capacity;
}

export interface TopKRouterOptions extends TopKOptions, GateOptions {
  numExperts: number;
  /** Noise and jitter apply only while true (default false: inference). */
  training?: boolean;
  /** Seed of the noise (default 0). */
  seed?: number;
}

function checkNormalize(normalize: Normalize): Normalize {
  if (!['none', 'topk', 'kept'].includes(normalize))
    throw new InvalidArgumentError('normalize', normalize, "must be 'none', 'topk' or 'kept'");
  return normalize;
}

/**
 * Top-k routing of float64 logits [tokens, numExperts] (`selection`: the logits to choose on, when
 * noise makes them differ). Ties go to the lower expert id.
 */
export function routeTopK(
  logits: ArrayLike<number>,
  numExperts: number,
  options: TopKOptions = {},
  selection: ArrayLike<number> = logits,
): RouteResult {
  const E = positiveInteger('numExperts', numExperts);
  const tokens = logitsTokens(logits, E);
  const k = expertsPerToken(options.k ?? 2, E);
  const normalize = checkNormalize(options.normalize ?? 'topk');
  const capacitySpec = checkCapacity(options.capacity ?? 'dropless');
  const probs = softmaxRows(logits, tokens, E);
  const chosen = new Int32Array(tokens * k);
  const raw = new Float64Array(tokens * k);
  for (let t = 0; t < tokens; t++) {
    const order = topIndices(selection, t * E, E, k);
    let sum = 0;
    for (let j = 0; j < k; j++) sum += probs[t * E + order[j]!]!;
    for (let j = 0; j < k; j++) {
      const p = probs[t * E + order[j]!]!;
      chosen[t * k + j] = order[j]!;
      raw[t * k + j] = normalize === 'topk' ? p / sum : p;
    }
  }
  const capacity = expertCapacity(capacitySpec, {
    tokens,
    numExperts: E,
    k,
    needed: neededCapacity(chosen, E),
  });
  const { experts, weights, dropped } = dropOverCapacity(chosen, raw, k, E, capacity);
  if (normalize === 'kept')
    for (let t = 0; t < tokens; t++) {
      let sum = 0;
      for (let j = 0; j < k; j++) if (experts[t * k + j]! >= 0) sum += raw[t * k + j]!;
      for (let j = 0; j < k; j++) if (experts[t * k + j]! >= 0) weights[t * k + j] = raw[t * k + j]! / sum;
    }
  return {
    k,
    experts,
    weights,
    numExperts: E,
    tokens,
    probs,
    logits: Float64Array.from(logits),
    chosen,
    capacity,
    dropped,
    layout: 'ranked',
  };
}

/** A core `Router`: softmax top-k over the gate logits (Mixtral / GShard), with optional noise and capacity. */
export class SoftmaxTopKRouter implements Router {
  readonly numExperts: number;
  readonly k: number;
  /** Noise and jitter apply only while true. */
  training: boolean;
  /** The last routing, for metrics and losses. */
  last: RouteResult | undefined;
  private readonly rng: Rng;

  constructor(readonly options: TopKRouterOptions) {
    this.numExperts = positiveInteger('numExperts', options.numExperts);
    this.k = expertsPerToken(options.k ?? 2, this.numExperts);
    checkNormalize(options.normalize ?? 'topk');
    checkCapacity(options.capacity ?? 'dropless');
    checkNoise(options.noise, this.numExperts, options.gateWeight !== undefined);
    this.training = options.training ?? false;
    this.rng = new Rng(options.seed ?? 0);
  }

  route(input: RouterInput): RouteResult {
    const tokens = inputTokens(input, this.numExperts);
    const { logits, selection } = gateLogits(
      input,
      tokens,
      this.numExperts,
      this.options,
      this.training,
      this.rng,
    );
    this.last = routeTopK(logits, this.numExperts, { ...this.options, k: this.k }, selection);
    return this.last;
  }

  /**
   * The router of a layer that keeps experts `kept` (expert pruning): gate and noise weights keep
   * their rows, k is clamped to the experts left, and the noise restarts from the seed.
   */
  withExperts(kept: readonly number[]): SoftmaxTopKRouter {
    return new SoftmaxTopKRouter({
      ...keepGateExperts(this.options, this.numExperts, kept),
      numExperts: kept.length,
      k: Math.min(this.k, kept.length),
      training: this.training,
    });
  }
}

/** Softmax top-k (Mixtral's router by default: k 2, renormalised over the top k, dropless). */
export function softmaxTopK(options: TopKRouterOptions): SoftmaxTopKRouter {
  return new SoftmaxTopKRouter(options);
}

export interface SwitchRouterOptions extends Omit<TopKRouterOptions, 'k' | 'normalize' | 'noise'> {
  /** Input jitter U(1 - eps, 1 + eps) while training (default 0.01, HF Switch's `router_jitter_noise`); needs `gateWeight` when > 0. */
  jitterEps?: number;
}

/**
 * Switch Transformer's top-1 router: the expert with the largest probability, its output scaled by
 * that probability (not renormalised), capacity factor 1 under the 'switch' convention by default,
 * tokens over capacity dropped in token order (they ride the residual), input jitter when training.
 */
export function switchRouter(options: SwitchRouterOptions): SoftmaxTopKRouter {
  const eps = options.jitterEps ?? 0.01;
  const training = options.training ?? false;
  const jitter = training && eps > 0;
  if (jitter && options.gateWeight === undefined)
    throw new InvalidArgumentError(
      'jitterEps',
      eps,
      'jitter while training needs the router to hold `gateWeight` (or pass jitterEps: 0)',
    );
  return new SoftmaxTopKRouter({
    ...options,
    k: 1,
    normalize: 'none',
    capacity: options.capacity ?? { factor: 1, convention: 'switch' },
    ...(options.gateWeight === undefined ? {} : { noise: { kind: 'jitter', eps } }),
  });
}
