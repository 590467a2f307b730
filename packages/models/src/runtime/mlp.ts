// The MLP slot of a block: dense (GPT-2, OPT), gated (Llama's SwiGLU) or a mixture of experts behind
// a `Router` (Mixtral). Every piece of model code that needs the MLP's layers asks this file.
import {
  InvalidArgumentError,
  type Router,
  type RouterInput,
  type Routing,
  ShapeMismatchError,
  Tensor,
} from '@sparsekit/core';
import type { ModelConfig } from '../config.js';
import type { Linear } from './linear.js';
import { activate, mulInPlace, nonzeroIndices } from './ops.js';
import type { Steps } from './steps.js';

/** up -> activation -> down. */
export interface DenseMlp {
  kind: 'dense';
  up: Linear;
  down: Linear;
}

/** act(gate) * up -> down (SwiGLU). */
export interface GatedMlp {
  kind: 'gated';
  gate: Linear;
  up: Linear;
  down: Linear;
}

export type ExpertMlp = DenseMlp | GatedMlp;

/**
 * A mixture of experts: `gate` projects the input to one logit per expert, `router` picks the
 * experts and weights of each token, and the weighted outputs of the chosen experts are summed (plus
 * a shared expert every token goes through, when there is one).
 */
export interface MoeMlp {
  kind: 'moe';
  gate: Linear;
  router: Router;
  experts: ExpertMlp[];
  sharedExpert?: ExpertMlp;
}

export type MlpParams = DenseMlp | GatedMlp | MoeMlp;

/** An expert's layers in execution order, grouped by the tensor they read. */
function expertGroups(e: ExpertMlp): Linear[][] {
  return e.kind === 'gated' ? [[e.gate, e.up], [e.down]] : [[e.up], [e.down]];
}

/** The MLP's layers grouped by the tensor they read, in execution order. */
export function mlpGroups(mlp: MlpParams): Linear[][] {
  if (mlp.kind !== 'moe') return expertGroups(mlp);
  return [
    [mlp.gate],
    ...mlp.experts.flatMap(expertGroups),
    ...(mlp.sharedExpert === undefined ? [] : expertGroups(mlp.sharedExpert)),
  ];
}

/** The experts of the slot (the slot itself when it is not a mixture). */
export function mlpExperts(mlp: MlpParams): ExpertMlp[] {
  if (mlp.kind !== 'moe') return [mlp];
  return mlp.sharedExpert === undefined ? mlp.experts : [...mlp.experts, mlp.sharedExpert];
}

/** Layers reading the MLP's input (gate and up projections; a mixture's router gate too). */
export function mlpReaders(mlp: MlpParams): Linear[] {
  const readers = mlpExperts(mlp).flatMap((e) => (e.kind === 'gated' ? [e.gate, e.up] : [e.up]));
  return mlp.kind === 'moe' ? [mlp.gate, ...readers] : readers;
}

/** Layers writing the MLP's output to the residual stream (the down projections). */
export function mlpWriters(mlp: MlpParams): Linear[] {
  return mlpExperts(mlp).map((e) => e.down);
}

/** Width of the MLP's output (its writers agree). */
export function mlpOutputWidth(mlp: MlpParams): number {
  return mlpWriters(mlp)[0]!.outFeatures;
}

/** Passes a layer group's input through the `linear.input` hooks, and records `mlp.hidden`. */
export interface MlpHooks {
  linearInput(x: Float32Array, layers: readonly Linear[], tokens: number, expert?: ExpertRows): Float32Array;
  /** act(gate) of a gated MLP, before the product with up. */
  gate(x: Float32Array, tokens: number, expert?: ExpertRows): Float32Array;
  /** The up projection's output (gated: before the product with act(gate); dense: before act). */
  up(x: Float32Array, tokens: number, expert?: ExpertRows): Float32Array;
  hidden(x: Float32Array, tokens: number, expert?: ExpertRows): Float32Array;
}

/** Which expert runs, and the token each of its rows belongs to. */
export interface ExpertRows {
  id: number;
  tokens: Int32Array;
}

function* expertSteps(
  config: ModelConfig,
  e: ExpertMlp,
  x: Float32Array,
  tokens: number,
  block: number,
  hooks: MlpHooks,
  expert?: ExpertRows,
): Steps<Float32Array> {
  let inner: Float32Array;
  if (e.kind === 'dense') {
    const input = hooks.linearInput(x, [e.up], tokens, expert);
    inner = activate(hooks.up(yield e.up.stepOf(input, tokens), tokens, expert), config.activation);
  } else {
    const input = hooks.linearInput(x, [e.gate, e.up], tokens, expert);
    // Sparse decode: a predictor may choose the channels before gate runs; up then runs only where
    // act(gate) is nonzero (act(0) = 0 for every activation here).
    const sparse = tokens === 1 ? e.gate.sparseDecode : undefined;
    const predicted = sparse?.mlpRows?.(block, input);
    const gate = yield e.gate.stepOf(input, tokens, predicted);
    const act = hooks.gate(activate(gate, config.activation), tokens, expert);
    const rows = sparse === undefined ? undefined : nonzeroIndices(act, sparse.minZeroShare);
    const up = hooks.up(yield e.up.stepOf(input, tokens, rows), tokens, expert);
    inner = mulInPlace(act, up);
  }
  const hidden = hooks.hidden(inner, tokens, expert);
  return yield e.down.stepOf(hooks.linearInput(hidden, [e.down], tokens, expert), tokens);
}

/** The MLP on `x` [tokens, width]: [tokens, outputWidth], before the residual. */
export function* mlpSteps(
  config: ModelConfig,
  mlp: MlpParams,
  x: Float32Array,
  tokens: number,
  block: number,
  hooks: MlpHooks,
): Steps<Float32Array> {
  if (mlp.kind !== 'moe') return yield* expertSteps(config, mlp, x, tokens, block, hooks);
  const width = x.length / Math.max(tokens, 1);
  const logits = yield mlp.gate.stepOf(hooks.linearInput(x, [mlp.gate], tokens), tokens);
  const routing = mlp.router.route({
    hidden: new Tensor('f32', [tokens, width], x),
    logits: new Tensor('f32', [tokens, mlp.experts.length], logits),
    block,
  });
  checkRouting(routing, tokens, mlp.experts.length);
  const outWidth = mlpOutputWidth(mlp);
  const out = new Float32Array(tokens * outWidth);
  // Dropless grouped execution: each expert runs once on the rows routed to it.
  const { k, experts, weights } = routing;
  const rows: number[][] = mlp.experts.map(() => []);
  for (let slot = 0; slot < tokens * k; slot++) {
    const e = experts[slot]!;
    if (e >= 0) rows[e]!.push(slot);
  }
  for (let e = 0; e < mlp.experts.length; e++) {
    const slots = rows[e]!;
    if (slots.length === 0) continue;
    const gathered = new Float32Array(slots.length * width);
    const rowTokens = new Int32Array(slots.length);
    slots.forEach((slot, i) => {
      const t = Math.floor(slot / k);
      rowTokens[i] = t;
      gathered.set(x.subarray(t * width, (t + 1) * width), i * width);
    });
    const y = yield* expertSteps(config, mlp.experts[e]!, gathered, slots.length, block, hooks, {
      id: e,
      tokens: rowTokens,
    });
    slots.forEach((slot, i) => {
      const t = Math.floor(slot / k);
      const w = weights[slot]!;
      for (let d = 0; d < outWidth; d++) out[t * outWidth + d]! += w * y[i * outWidth + d]!;
    });
  }
  if (mlp.sharedExpert !== undefined) {
    const y = yield* expertSteps(config, mlp.sharedExpert, x, tokens, block, hooks, {
      id: mlp.experts.length,
      tokens: Int32Array.from({ length: tokens }, (_, t) => t),
    });
    for (let i = 0; i < out.length; i++) out[i]! += y[i]!;
  }
  return out;
}

function checkRouting(r: Routing, tokens: number, numExperts: number): void {
  if (!Number.isInteger(r.k) || r.k < 1)
    throw new InvalidArgumentError('routing k', r.k, 'must be a positive integer');
  if (r.experts.length !== tokens * r.k)
    throw new ShapeMismatchError([tokens, r.k], [r.experts.length], 'routing experts');
  if (r.weights.length !== tokens * r.k)
    throw new ShapeMismatchError([tokens, r.k], [r.weights.length], 'routing weights');
  for (let i = 0; i < r.experts.length; i++) {
    const e = r.experts[i]!;
    if (!(Number.isInteger(e) && e >= -1 && e < numExperts))
      throw new InvalidArgumentError('routed expert', e, `must be -1 (dropped) or in [0, ${numExperts})`);
    if (!Number.isFinite(r.weights[i]!))
      throw new InvalidArgumentError('routing weight', r.weights[i], 'must be finite');
  }
}

/**
 * Softmax over the router logits, the k largest kept and (by default) renormalised to sum to 1:
 * Mixtral's router (`MixtralSparseMoeBlock`: softmax in float32, topk, divide by the sum). Ties go to
 * the lower expert id. The router a Mixtral checkpoint loads with; moe-router offers the others.
 */
export class TopKRouter implements Router {
  constructor(
    readonly numExperts: number,
    readonly k: number,
    readonly normalize = true,
  ) {
    if (!Number.isInteger(k) || k < 1 || k > numExperts)
      throw new InvalidArgumentError('experts per token', k, `must be in [1, ${numExperts}]`);
  }

  /** The router of a layer that keeps experts `kept`: the same k (at most the experts left). */
  withExperts(kept: readonly number[]): TopKRouter {
    return new TopKRouter(kept.length, Math.min(this.k, kept.length), this.normalize);
  }

  route({ logits }: RouterInput): Routing {
    const E = this.numExperts;
    const tokens = logits.size / E;
    const experts = new Int32Array(tokens * this.k);
    const weights = new Float32Array(tokens * this.k);
    const probs = new Float64Array(E);
    const order = Array.from({ length: E }, (_, i) => i);
    for (let t = 0; t < tokens; t++) {
      let max = Number.NEGATIVE_INFINITY;
      for (let e = 0; e < E; e++) max = Math.max(max, logits.data[t * E + e]!);
      let sum = 0;
      for (let e = 0; e < E; e++) {
        probs[e] = Math.exp(logits.data[t * E + e]! - max);
        sum += probs[e]!;
      }
      order.sort((a, b) => probs[b]! - probs[a]! || a - b);
      let kept = 0;
      for (let j = 0; j < this.k; j++) kept += probs[order[j]!]! / sum;
      for (let j = 0; j < this.k; j++) {
        experts[t * this.k + j] = order[j]!;
        const p = probs[order[j]!]! / sum;
        weights[t * this.k + j] = this.normalize ? p / kept : p;
      }
    }
    return { k: this.k, experts, weights };
  }
}
