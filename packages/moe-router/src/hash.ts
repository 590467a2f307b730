// Hash routing (Roller et al. 2021, Hash Layers): a fixed hash picks one expert per token, weight 1;
// nothing is learned and the load is balanced by construction. Hash Layers hash the token id; core's
// `RouterInput` has no token ids, so the default key here is a locality-sensitive hash of the hidden
// state (seeded random hyperplanes), or the position in the call, or ids a caller supplies.
import {
  InvalidArgumentError,
  Rng,
  type Router,
  type RouterInput,
  ShapeMismatchError,
} from '@sparsekit/core';
import type { RouteResult } from './route-result.js';
import { inputTokens, positiveInteger } from './validate.js';

/** A 32-bit integer mix (the murmur3 finaliser), then modulo `numExperts`. */
export function hashExpert(key: number, numExperts: number, seed = 0): number {
  let h = (key ^ Math.imul(seed, 0x9e3779b1)) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  h = (h ^ (h >>> 16)) >>> 0;
  return h % numExperts;
}

/**
 * What is hashed. 'hidden': the sign pattern of the hidden state against `bits` seeded random
 * hyperplanes (similar states share an expert; not the token id, so a token's expert depends on its
 * context). 'position': the token's index in the call (at decode every call is position 0: use it
 * for prefill studies only). A function: integer keys per token (token ids, absolute positions).
 */
export type HashKey = 'hidden' | 'position' | ((input: RouterInput) => ArrayLike<number>);

export interface HashRouterOptions {
  numExperts: number;
  /** Default 'hidden'. */
  key?: HashKey;
  /** Hyperplanes of the 'hidden' key (default 16, at most 31). */
  bits?: number;
  seed?: number;
}

export class HashRouter implements Router {
  readonly numExperts: number;
  readonly k = 1;
  last: RouteResult | undefined;
  private readonly bits: number;
  private planes: Float64Array | undefined;

  constructor(readonly options: HashRouterOptions) {
    this.numExperts = positiveInteger('numExperts', options.numExperts);
    this.bits = positiveInteger('bits', options.bits ?? 16);
    if (this.bits > 31) throw new InvalidArgumentError('bits', this.bits, 'must be at most 31');
    const key = options.key ?? 'hidden';
    if (key !== 'hidden' && key !== 'position' && typeof key !== 'function')
      throw new InvalidArgumentError('key', key, "must be 'hidden', 'position' or a function");
  }

  private keys(input: RouterInput, tokens: number): ArrayLike<number> {
    const key = this.options.key ?? 'hidden';
    if (key === 'position') return Int32Array.from({ length: tokens }, (_, t) => t);
    if (typeof key === 'function') {
      const ids = key(input);
      if (ids.length !== tokens) throw new ShapeMismatchError([tokens], [ids.length], 'hash keys');
      for (let t = 0; t < tokens; t++)
        if (!Number.isInteger(ids[t]!))
          throw new InvalidArgumentError('hash key', ids[t], 'must be an integer');
      return ids;
    }
    const width = input.hidden.shape[1]!;
    if (this.planes === undefined || this.planes.length !== this.bits * width)
      this.planes = Float64Array.from(new Rng(this.options.seed ?? 0).normalArray(this.bits * width));
    const x = input.hidden.data;
    const out = new Int32Array(tokens);
    for (let t = 0; t < tokens; t++) {
      let code = 0;
      for (let b = 0; b < this.bits; b++) {
        let s = 0;
        for (let i = 0; i < width; i++) s += x[t * width + i]! * this.planes[b * width + i]!;
        if (s > 0) code |= 1 << b;
      }
      out[t] = code;
    }
    return out;
  }

  route(input: RouterInput): RouteResult {
    const E = this.numExperts;
    const tokens = inputTokens(input, E);
    const keys = this.keys(input, tokens);
    const experts = new Int32Array(tokens);
    const probs = new Float64Array(tokens * E);
    for (let t = 0; t < tokens; t++) {
      experts[t] = hashExpert(keys[t]!, E, this.options.seed ?? 0);
      probs[t * E + experts[t]!] = 1;
    }
    this.last = {
      k: 1,
      experts,
      weights: new Float32Array(tokens).fill(1),
      numExperts: E,
      tokens,
      probs,
      logits: Float64Array.from(input.logits.data),
      chosen: experts.slice(),
      capacity: undefined,
      dropped: 0,
      layout: 'ranked',
    };
    return this.last;
  }
}

export function hashRouter(options: HashRouterOptions): HashRouter {
  return new HashRouter(options);
}
