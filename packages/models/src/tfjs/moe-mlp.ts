// A mixture-of-experts MLP for the tfjs twin: Mixtral's sparse MoE block on tfjs tensors with
// gradients. Router logits x W_gate in float32, softmax, the k most probable experts of each token
// kept and (by default) renormalised over the k, SwiGLU experts, dropless (every token's k chosen
// experts compute for it), output the weighted sum of the chosen experts' outputs (plus a shared
// expert every token goes through, when there is one).
//
// The choice of experts is a constant 0/1 mask (tf.topk indices -> one-hot, no gradient through the
// choice); the weights are softmax * mask / sum(softmax * mask), so gradients reach the router through
// the kept probabilities and the experts through their weighted outputs, as in Mixtral.
//
// Dense compute: every expert runs on every token (one matMul for all experts' gate projections, one
// for their up projections, one for their down projections over [tokens, experts * intermediate]); the
// rows of the experts a token did not choose are weighted 0. That costs experts / k times the work of
// grouped dispatch: it is for training tiny models. (A gathered dispatch would need tf.gather, which
// has no gradient kernel on tfjs-backend-wasm.) The runtime's MoE slot runs each expert only on the
// rows routed to it.

import type { Router } from '@sparsekit/core';
import type * as TF from '@tensorflow/tfjs-core';

type Tfjs = typeof TF;

/**
 * Another gate than Mixtral's top-k for a twin MoE layer (moe-router's `trainableGate` makes them
 * for its routers): it computes the logits from the layer's gate weight, chooses the experts (a
 * constant mask) and gives differentiable combine weights.
 */
export interface TwinGate {
  readonly name: string;
  route(input: {
    tf: Tfjs;
    mm: (a: TF.Tensor, b: TF.Tensor) => TF.Tensor;
    /** [tokens, hidden] */
    x: TF.Tensor2D;
    /** [hidden, experts] */
    gate: TF.Variable;
    training: boolean;
    block: number;
  }): {
    logits: TF.Tensor2D;
    probs: TF.Tensor2D;
    mask: TF.Tensor2D;
    weights: TF.Tensor2D;
    k: number;
    auxLoss?: TF.Scalar;
  };
  /** Its own trainable variables (beyond the layer's gate weight). */
  variables(): TF.Variable[];
  /** The runtime router with the gate's current parameters (`toParams` puts it in the MoE slot). */
  toRouter(): Router;
}

/** One gated expert's weights, [in, out] like every twin weight. */
export interface TwinExpert {
  /** [hidden, intermediate] */
  gate: TF.Variable;
  /** [hidden, intermediate] */
  up: TF.Variable;
  /** [intermediate, hidden] */
  down: TF.Variable;
}

/**
 * A mixture-of-experts MLP. The experts' weights are held side by side, expert e in columns (gate,
 * up) or rows (down) e * intermediate .. (e + 1) * intermediate - 1, so that all experts run in
 * three matMuls.
 */
export interface TwinMoe {
  /** The router's gate [hidden, experts]: logits = x gate. */
  gate: TF.Variable;
  /** Every expert's gate projection: [hidden, experts * intermediate]. */
  expertGate: TF.Variable;
  /** Every expert's up projection: [hidden, experts * intermediate]. */
  expertUp: TF.Variable;
  /** Every expert's down projection: [experts * intermediate, hidden]. */
  expertDown: TF.Variable;
  /** Experts chosen per token. */
  k: number;
  /** Renormalise the kept probabilities to sum to 1 (Mixtral); false keeps them as they are. */
  normalize: boolean;
  /** A gated expert every token goes through, added unweighted. */
  shared?: TwinExpert;
  /** Another gate than the softmax top-k above (`k` and `normalize` are then its own business). */
  router?: TwinGate;
}

/** One MoE layer's routing for a batch, as `LlamaTwin.logits` hands it out (tensors of the tidy scope). */
export interface TwinRouting {
  /** Router logits [tokens, experts] (float32). */
  logits: TF.Tensor2D;
  /** Softmax of the logits [tokens, experts]. */
  probs: TF.Tensor2D;
  /** 1 where the expert is among the token's k chosen, else 0 [tokens, experts]; no gradient. */
  mask: TF.Tensor2D;
  k: number;
  /** The gate's own regulariser (a `TwinGate`'s; coefficients applied). */
  auxLoss?: TF.Scalar;
}

/** What the MoE MLP borrows from the twin: tfjs, its matMul (custom gradient) and its activation. */
export interface MoeOps {
  tf: Tfjs;
  mm: (a: TF.Tensor, b: TF.Tensor) => TF.Tensor;
  activate: (gate: TF.Tensor) => TF.Tensor;
  /** Whether the twin is training (gates add noise or jitter then). */
  training: () => boolean;
}

/** Number of experts of a mixture. */
export function moeExperts(moe: TwinMoe): number {
  return moe.gate.shape[1]!;
}

/** The trainable variables of a mixture. */
export function moeVariables(moe: TwinMoe): TF.Variable[] {
  const s = moe.shared;
  return [
    moe.gate,
    moe.expertGate,
    moe.expertUp,
    moe.expertDown,
    ...(s === undefined ? [] : [s.gate, s.up, s.down]),
    ...(moe.router?.variables() ?? []),
  ];
}

/** The 0/1 mask of the k largest entries of each row of `probs` (ties to the lower index); no gradient. */
export function topKMask(tf: Tfjs, probs: TF.Tensor2D, k: number): TF.Tensor2D {
  const [, experts] = probs.shape;
  const constant = tf.customGrad((...args: (TF.Tensor | TF.GradSaveFunc)[]) => {
    const p = args[0] as TF.Tensor2D;
    // (tf.oneHot needs a depth of 2 or more: with every expert chosen, the mask is all ones.)
    const mask =
      k >= experts
        ? tf.onesLike(p)
        : tf.sum(tf.cast(tf.oneHot(tf.topk(p, k).indices, experts), 'float32'), 1);
    return { value: mask, gradFunc: () => tf.zerosLike(p) };
  }) as (p: TF.Tensor2D) => TF.Tensor2D;
  return constant(probs);
}

/**
 * The mixture on `x` [tokens, hidden]: [tokens, hidden], before the residual. Pushes the layer's
 * routing to `routing` and, when given, the chosen experts' act(gate) [tokens, experts *
 * intermediate] (zeros where an expert was not chosen; the shared expert's is not tapped) to `taps`.
 */
export function moeMlp(
  ops: MoeOps,
  moe: TwinMoe,
  x: TF.Tensor,
  routing?: TwinRouting[],
  taps?: TF.Tensor[],
  block = 0,
): TF.Tensor {
  const { tf, mm, activate } = ops;
  const tokens = x.shape[0]!;
  const experts = moeExperts(moe);
  const inner = moe.expertGate.shape[1]! / experts;
  let weights: TF.Tensor;
  let mask: TF.Tensor2D;
  if (moe.router !== undefined) {
    const r = moe.router.route({
      tf,
      mm,
      x: x as TF.Tensor2D,
      gate: moe.gate,
      training: ops.training(),
      block,
    });
    mask = r.mask;
    weights = r.weights;
    routing?.push({
      logits: r.logits,
      probs: r.probs,
      mask,
      k: r.k,
      ...(r.auxLoss === undefined ? {} : { auxLoss: r.auxLoss }),
    });
  } else {
    const logits = mm(x, moe.gate) as TF.Tensor2D;
    const probs = tf.softmax(logits);
    mask = topKMask(tf, probs, moe.k);
    routing?.push({ logits, probs, mask, k: moe.k });
    const kept = tf.mul(probs, mask);
    weights = moe.normalize ? tf.div(kept, tf.sum(kept, -1, true)) : kept;
  }
  // Scale each expert's block of hidden columns by its weight: [tokens, experts, intermediate].
  const perExpert = (t: TF.Tensor, w: TF.Tensor) =>
    tf.reshape(tf.mul(tf.reshape(t, [tokens, experts, inner]), tf.reshape(w, [tokens, experts, 1])), [
      tokens,
      experts * inner,
    ]);
  const act = activate(mm(x, moe.expertGate));
  if (taps !== undefined) taps.push(perExpert(act, mask));
  const hidden = tf.mul(act, mm(x, moe.expertUp));
  // sum_e w_e (h_e W_down_e) = [w_1 h_1, ..., w_E h_E] [W_down_1; ...; W_down_E].
  let out = mm(perExpert(hidden, weights), moe.expertDown);
  const s = moe.shared;
  if (s !== undefined) out = tf.add(out, mm(tf.mul(activate(mm(x, s.gate)), mm(x, s.up)), s.down));
  return out;
}
