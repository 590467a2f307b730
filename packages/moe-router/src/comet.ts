// COMET's tree gate (Ibrahim et al., KDD 2023: cardinality-constrained mixture of experts with trees):
// k soft decision trees over the experts, each split a smooth-step of a hyperplane, so a tree's
// probability reaches exactly 0 or 1 and the gate has at most k nonzero weights once trees are sharp.
import {
  InvalidArgumentError,
  Rng,
  type Router,
  type RouterInput,
  ShapeMismatchError,
} from '@sparsekit/core';
import type { RouteResult } from './route-result.js';
import { assertFiniteValues, inputTokens, positiveInteger } from './validate.js';

/** The smooth-step: 0 below -gamma/2, 1 above gamma/2, -2 x^3 / gamma^3 + 3 x / (2 gamma) + 1/2 between. */
export function smoothStep(x: number, gamma = 1): number {
  if (x <= -gamma / 2) return 0;
  if (x >= gamma / 2) return 1;
  return (-2 / gamma ** 3) * x ** 3 + (3 / (2 * gamma)) * x + 0.5;
}

export interface CometParams {
  /** [(numExperts - 1) * k * width] split hyperplanes: node n (heap order), tree j. */
  nodeWeight: Float32Array | Float64Array;
  /** [(numExperts - 1) * k] split biases. */
  nodeBias: Float32Array | Float64Array;
  /** [numExperts * k * width] leaf logits' weights: expert e (leaf order, left to right), tree j. */
  leafWeight: Float32Array | Float64Array;
  /** [numExperts * k] leaf biases. */
  leafBias: Float32Array | Float64Array;
}

export interface CometOptions {
  numExperts: number;
  /** Trees, the most experts a token gets once the trees are sharp (default 2). */
  k?: number;
  /** Width of the hidden states. */
  width: number;
  /** Smooth-step width (default 1). */
  gamma?: number;
  /**
   * The parameters; when absent they are drawn as the reference initialises them (splits
   * U(-gamma/100, gamma/100), leaves U(-0.05, 0.05), seeded), which routes densely until trained.
   */
  params?: CometParams;
  seed?: number;
}

export interface CometGateOutput {
  /** [tokens, numExperts] the gate g (sums to 1; at most k * 2^depth nonzero, k once sharp). */
  gate: Float64Array;
  /** [tokens, k, numExperts] each tree's probability of reaching each leaf. */
  leafProbs: Float64Array;
}

/** Leaves (heap nodes >= E - 1) in the order the reference concatenates them: left subtree first. */
function leafOrder(E: number): number[] {
  const out: number[] = [];
  const visit = (n: number): void => {
    if (n >= E - 1) out.push(n);
    else {
      visit(2 * n + 1);
      visit(2 * n + 2);
    }
  };
  visit(0);
  return out;
}

function initParams(E: number, k: number, width: number, gamma: number, seed: number): CometParams {
  const rng = new Rng(seed);
  const u = (n: number, a: number) => Float64Array.from(rng.uniformArray(n, -a, a));
  return {
    nodeWeight: u((E - 1) * k * width, gamma / 100),
    nodeBias: u((E - 1) * k, gamma / 100),
    leafWeight: u(E * k * width, 0.05),
    leafBias: u(E * k, 0.05),
  };
}

export class CometRouter implements Router {
  readonly numExperts: number;
  readonly k: number;
  readonly width: number;
  readonly gamma: number;
  readonly params: CometParams;
  last: (RouteResult & { leafProbs: Float64Array }) | undefined;
  private readonly leaves: number[];

  constructor(options: CometOptions) {
    const E = positiveInteger('numExperts', options.numExperts);
    if (E < 2) throw new InvalidArgumentError('numExperts', E, 'a tree gate needs at least 2 experts');
    this.numExperts = E;
    this.k = positiveInteger('k (trees)', options.k ?? 2);
    this.width = positiveInteger('width', options.width);
    this.gamma = options.gamma ?? 1;
    if (!(Number.isFinite(this.gamma) && this.gamma > 0))
      throw new InvalidArgumentError('gamma', this.gamma, 'must be a finite number > 0');
    this.params = options.params ?? initParams(E, this.k, this.width, this.gamma, options.seed ?? 0);
    const { k, width } = this;
    const sizes: [keyof CometParams, number][] = [
      ['nodeWeight', (E - 1) * k * width],
      ['nodeBias', (E - 1) * k],
      ['leafWeight', E * k * width],
      ['leafBias', E * k],
    ];
    for (const [name, size] of sizes) {
      const v = this.params[name];
      if (v.length !== size) throw new ShapeMismatchError([size], [v.length], `COMET ${name}`);
      assertFiniteValues(v, `COMET ${name}`);
    }
    this.leaves = leafOrder(E);
  }

  /** The gate on x [tokens, width]. */
  gate(x: ArrayLike<number>, tokens: number): CometGateOutput {
    const { numExperts: E, k, width, gamma, params } = this;
    const gate = new Float64Array(tokens * E);
    const leafProbs = new Float64Array(tokens * k * E);
    const nodeProb = new Float64Array((2 * E - 1) * k);
    const scores = new Float64Array(k * E);
    const dot = (w: ArrayLike<number>, row: number, t: number) => {
      let s = 0;
      for (let i = 0; i < width; i++) s += w[row * width + i]! * x[t * width + i]!;
      return s;
    };
    for (let t = 0; t < tokens; t++) {
      for (let j = 0; j < k; j++) nodeProb[j] = 1;
      for (let n = 0; n < E - 1; n++)
        for (let j = 0; j < k; j++) {
          const s = smoothStep(dot(params.nodeWeight, n * k + j, t) + params.nodeBias[n * k + j]!, gamma);
          const p = nodeProb[n * k + j]!;
          nodeProb[(2 * n + 1) * k + j] = p * s;
          nodeProb[(2 * n + 2) * k + j] = p * (1 - s);
        }
      let max = Number.NEGATIVE_INFINITY;
      for (let e = 0; e < E; e++)
        for (let j = 0; j < k; j++) {
          const p = nodeProb[this.leaves[e]! * k + j]!;
          leafProbs[(t * k + j) * E + e] = p;
          // log(p + 1e-8) as the reference; a leaf a tree cannot reach gets weight exactly 0.
          const s =
            p <= 0
              ? Number.NEGATIVE_INFINITY
              : dot(params.leafWeight, e * k + j, t) + params.leafBias[e * k + j]! + Math.log(p + 1e-8);
          scores[j * E + e] = s;
          max = Math.max(max, s);
        }
      let sum = 0;
      for (let i = 0; i < k * E; i++) {
        scores[i] = Math.exp(scores[i]! - max);
        sum += scores[i]!;
      }
      for (let j = 0; j < k; j++) for (let e = 0; e < E; e++) gate[t * E + e]! += scores[j * E + e]! / sum;
    }
    return { gate, leafProbs };
  }

  route(input: RouterInput): RouteResult {
    const E = this.numExperts;
    const tokens = inputTokens(input, E);
    if (input.hidden.shape[1] !== this.width)
      throw new ShapeMismatchError([tokens, this.width], input.hidden.shape, 'router hidden states');
    const { gate, leafProbs } = this.gate(input.hidden.data, tokens);
    const experts = new Int32Array(tokens * E).fill(-1);
    const weights = new Float32Array(tokens * E);
    for (let i = 0; i < tokens * E; i++)
      if (gate[i]! > 0) {
        experts[i] = i % E;
        weights[i] = gate[i]!;
      }
    this.last = {
      k: E,
      experts,
      weights,
      numExperts: E,
      tokens,
      probs: gate,
      logits: Float64Array.from(input.logits.data),
      chosen: experts.slice(),
      capacity: undefined,
      dropped: 0,
      layout: 'per-expert',
      leafProbs,
    };
    return this.last;
  }
}

/**
 * COMET's tree gate as a core `Router`. It reads the hidden states with its own parameters and
 * ignores the model's gate logits. Per-token k follows from the trees; the permutation local search
 * is not built (the identity permutation).
 */
export function cometRouter(options: CometOptions): CometRouter {
  return new CometRouter(options);
}

/**
 * COMET's entropy regulariser: coefficient * sum over leaves of mean over tokens of
 * sum_j -p log(p + 1e-6), p the trees' leaf probabilities; it pushes trees to one leaf each.
 */
export function cometEntropy(
  leafProbs: Float64Array,
  tokens: number,
  k: number,
  numExperts: number,
  coefficient = 1,
): number {
  if (leafProbs.length !== tokens * k * numExperts)
    throw new ShapeMismatchError([tokens, k, numExperts], [leafProbs.length], 'leaf probabilities');
  if (tokens === 0) return 0;
  let sum = 0;
  for (const p of leafProbs) sum += -p * Math.log(p + 1e-6);
  return (coefficient * sum) / tokens;
}
