// The router losses of a mixture of experts, per layer, on one layer's routing (see moe-mlp.ts):
// - load balancing (Switch Transformer, in Mixtral's top-k form): experts * sum_i f_i * P_i, with
//   f_i the share of the batch's top-k assignments that go to expert i (a constant: the counts have
//   no gradient) and P_i the mean router probability of expert i. Perfectly balanced routing gives 1
//   whatever k; a router sending every token to the same k experts gives experts / k. Hugging Face's
//   `load_balancing_loss_func` counts f_i per slot without dividing by k, so its value is k times
//   this one, and it concatenates the layers' logits (transformers#28255); the twin averages the
//   per-layer losses.
// - router z-loss (ST-MoE): mean over tokens of logsumexp(logits)^2, which keeps the logits small.

import type * as TF from '@tensorflow/tfjs-core';
import type { TwinRouting } from './moe-mlp.js';

type Tfjs = typeof TF;

/** experts * sum_i f_i P_i for one layer (f_i: share of the top-k assignments; P_i: mean probability). */
export function loadBalancingLoss(tf: Tfjs, routing: TwinRouting): TF.Scalar {
  const [tokens, experts] = routing.probs.shape;
  const share = tf.div(tf.sum(routing.mask, 0), tokens * routing.k);
  const meanProbs = tf.mean(routing.probs, 0);
  return tf.mul(tf.sum(tf.mul(share, meanProbs)), experts) as TF.Scalar;
}

/** mean over tokens of logsumexp(logits)^2 for one layer. */
export function routerZLoss(tf: Tfjs, routing: TwinRouting): TF.Scalar {
  return tf.mean(tf.square(tf.logSumExp(routing.logits, -1))) as TF.Scalar;
}

/** Share of the top-k assignments each expert received, per layer: [layers][experts] (synchronous read). */
export function expertLoad(routing: readonly TwinRouting[]): number[][] {
  return routing.map((r) => {
    const [tokens, experts] = r.mask.shape;
    const m = r.mask.dataSync();
    const load = new Array<number>(experts).fill(0);
    for (let t = 0; t < tokens; t++) for (let e = 0; e < experts; e++) load[e]! += m[t * experts + e]!;
    return load.map((n) => n / (tokens * r.k));
  });
}
