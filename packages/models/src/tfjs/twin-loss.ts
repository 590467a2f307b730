// The twin's training loss: cross-entropy plus the optional regularisers (activation L1 for
// ReLU-fication / ProSparse; a mixture's load-balancing and router z-losses), with each component.

import type * as TF from '@tensorflow/tfjs-core';
import { loadBalancingLoss, routerZLoss } from './moe-losses.js';
import type { TwinRouting } from './moe-mlp.js';

type Tfjs = typeof TF;

/** Options of `LlamaTwin.loss` and `lossTerms`: the coefficients of the terms added to the cross-entropy (default 0). */
export interface TwinLossOptions {
  /** Times the sum over blocks of the mean |act(gate)| (ProSparse's sparsity regularisation). */
  activationL1?: number;
  /** Times the load-balancing loss of the MoE layers (averaged over them; see moe-losses.ts). */
  loadBalance?: number;
  /** Times the router z-loss of the MoE layers (averaged over them). */
  routerZ?: number;
}

/** The loss and its unweighted components (scalars of the caller's tidy or gradient scope). */
export interface TwinLossTerms {
  /** crossEntropy + the weighted terms: what `loss` returns. */
  total: TF.Scalar;
  /** Mean cross-entropy (nats). */
  crossEntropy: TF.Scalar;
  /** Sum over blocks of the mean |act(gate)| (only when `activationL1` > 0). */
  activationL1?: TF.Scalar;
  /** Load-balancing loss averaged over the MoE layers (whenever the model has one). */
  loadBalance?: TF.Scalar;
  /** Router z-loss averaged over the MoE layers (whenever the model has one). */
  routerZ?: TF.Scalar;
  /** Sum of the MoE gates' own regularisers (`TwinGate` auxLoss, weighted by the gates; in `total`). */
  gate?: TF.Scalar;
}

/**
 * The mean cross-entropy of `logits` [tokens, vocab] against `targets` (any shape, `tokens` ids),
 * plus each regulariser whose coefficient is nonzero: `taps` are the blocks' act(gate), `routing` the
 * MoE layers' routing.
 */
export function combineLossTerms(
  tf: Tfjs,
  logits: TF.Tensor2D,
  targets: TF.Tensor,
  taps: readonly TF.Tensor[],
  routing: readonly TwinRouting[],
  options: TwinLossOptions,
): TwinLossTerms {
  const l1 = options.activationL1 ?? 0;
  const labels = tf.cast(tf.oneHot(tf.reshape(targets, [-1]), logits.shape[1]), 'float32');
  const logProbs = tf.logSoftmax(logits);
  const crossEntropy = tf.neg(tf.mean(tf.sum(tf.mul(labels, logProbs), -1))) as TF.Scalar;
  const terms: TwinLossTerms = { total: crossEntropy, crossEntropy };
  const weighted: TF.Tensor[] = [crossEntropy];
  const add = (coefficient: number, value: TF.Scalar) => {
    if (coefficient !== 0) weighted.push(tf.mul(coefficient, value));
    return value;
  };
  if (l1 > 0) terms.activationL1 = add(l1, tf.addN(taps.map((t) => tf.mean(tf.abs(t)))) as TF.Scalar);
  if (routing.length > 0) {
    const mean = (losses: TF.Scalar[]) => tf.div(tf.addN(losses), losses.length) as TF.Scalar;
    terms.loadBalance = add(options.loadBalance ?? 0, mean(routing.map((r) => loadBalancingLoss(tf, r))));
    terms.routerZ = add(options.routerZ ?? 0, mean(routing.map((r) => routerZLoss(tf, r))));
    const own = routing.flatMap((r) => (r.auxLoss === undefined ? [] : [r.auxLoss]));
    if (own.length > 0) terms.gate = add(1, tf.addN(own) as TF.Scalar);
  }
  if (weighted.length > 1) terms.total = tf.addN(weighted) as TF.Scalar;
  return terms;
}
