// The routers of this package as trainable gates for a tfjs model (models' `LlamaTwin` takes them in
// its MoE layers: `twin.setGates`). One rule for all: the choice of experts is made by the very
// router that runs on the backend (its `route` on the batch's hidden states and logits, read back
// from tfjs), so training and inference choose alike; the combine weights are then recomputed in
// tfjs from the same logits, so gradients reach the gate through them:
//   top-k (Mixtral / GShard)  softmax(logits [+ noise]) on the chosen, renormalised over the k
//   switch                    softmax(logits of the jittered input) of the chosen expert (capacity
//                             drops ride the residual)
//   expert-choice             softmax over experts, where the expert took the token
//   hash                      1 on the hashed expert (nothing to learn in the gate)
//   relu-rms (BlockFFN)       g * ReLU(l) / sqrt(mean(ReLU(l)^2) + eps), g a learned gain
//   comet                     the tree gate on its own learned parameters (smooth-step splits,
//                             leaf logits plus log leaf probabilities, softmax over trees x leaves)
// Regularisers a gate owns (COMET's entropy, BlockFFN's locality and chunk sparsification) come back
// as `auxLoss`, already multiplied by their coefficients.

import { InvalidArgumentError, Rng, type Router, Tensor, transposeValues } from '@sparsekit/core';
import type * as TF from '@tensorflow/tfjs-core';
import { CometRouter } from '../comet.js';
import { reluRms } from '../relu-rms.js';
import type { RouteResult } from '../route-result.js';
import { ROUTERS, type RouterName, type RouterSettings } from '../router-table.js';

type Tfjs = typeof TF;

/** What a tfjs MoE layer hands its gate (see models' `TwinGate`). */
export interface TrainableGateInput {
  tf: Tfjs;
  mm: (a: TF.Tensor, b: TF.Tensor) => TF.Tensor;
  /** [tokens, hidden] the MLP's input. */
  x: TF.Tensor2D;
  /** [hidden, experts] the layer's gate weight. */
  gate: TF.Variable;
  training: boolean;
  block: number;
}

export interface TrainableGateOutput {
  /** [tokens, experts] the logits (the z-loss reads them). */
  logits: TF.Tensor2D;
  /** [tokens, experts] router probabilities (the balancing loss reads them). */
  probs: TF.Tensor2D;
  /** [tokens, experts] 1 where the expert runs for the token, else 0; no gradient. */
  mask: TF.Tensor2D;
  /** [tokens, experts] combine weights, 0 outside the mask; differentiable. */
  weights: TF.Tensor2D;
  /** Slots per token the balancing loss divides by. */
  k: number;
  /** The gate's own regulariser (coefficients applied), if it has one. */
  auxLoss?: TF.Scalar;
}

export interface TrainableGate {
  readonly name: RouterName;
  route(input: TrainableGateInput): TrainableGateOutput;
  /** Variables the gate holds beyond the layer's gate weight (BlockFFN's gain, COMET's trees). */
  variables(): TF.Variable[];
  /** The backend router with the gate's current parameters, for the runtime model. */
  toRouter(): Router;
}

export interface TrainableGateSettings extends RouterSettings {
  /** top-k: Gaussian noise of this std added to the logits in training (default 0: none). */
  noiseStd?: number;
  /** relu-rms: coefficient of BlockFFN's locality loss (default 0). */
  locality?: number;
  /** relu-rms: coefficient of BlockFFN's chunk sparsification loss (default 0) and its chunk (8). */
  chunkSparsity?: number;
  chunk?: number;
  /** comet: coefficient of the entropy regulariser (default 0) and the smooth-step width (1). */
  entropy?: number;
  gamma?: number;
}

/** The 0/1 [tokens, experts] mask of the experts a routing runs (or, `chosen`, chose before drops). */
function maskOf(r: RouteResult, which: 'experts' | 'chosen' = 'experts'): Float32Array {
  const E = r.numExperts;
  const ids = r[which];
  const mask = new Float32Array(r.tokens * E);
  for (let t = 0; t < r.tokens; t++)
    for (let j = 0; j < r.k; j++) {
      const e = ids[t * r.k + j]!;
      if (e >= 0) mask[t * E + e] = 1;
    }
  return mask;
}

/** 1 where `t` > 0, else 0, as a constant (no gradient flows back through the comparison). */
function positive(tf: Tfjs, t: TF.Tensor): TF.Tensor {
  const f = tf.customGrad((...args: (TF.Tensor | TF.GradSaveFunc)[]) => {
    const x = args[0] as TF.Tensor;
    return { value: tf.cast(tf.greater(x, 0), 'float32'), gradFunc: () => tf.zerosLike(x) };
  }) as (x: TF.Tensor) => TF.Tensor;
  return f(t);
}

/**
 * A trainable gate named as `ROUTERS` names the routers. `settings` are the router's (as `make`
 * reads them) plus the training extras above; `numExperts` and, for comet, `width` are required.
 */
export function trainableGate(tf: Tfjs, name: RouterName, settings: TrainableGateSettings): TrainableGate {
  const entry = ROUTERS.find((r) => r.name === name);
  if (entry === undefined)
    throw new InvalidArgumentError('gate', name, `must be one of ${ROUTERS.map((r) => r.name).join(', ')}`);
  const E = settings.numExperts;
  const rng = new Rng(settings.seed ?? 0);
  // The backend router chooses; noise and jitter are applied here, in tfjs, so it runs without them.
  const { noise: _noise, jitterEps: _jitter, training: _training, gateWeight: _gw, ...plain } = settings;
  const chooser = name === 'comet' ? undefined : entry.make(plain);
  const choose = (x: TF.Tensor2D, logits: TF.Tensor2D, block: number): RouteResult => {
    const [tokens, width] = x.shape;
    return chooser!.route({
      hidden: new Tensor('f32', [tokens, width], x.dataSync() as Float32Array),
      logits: new Tensor('f32', [tokens, E], logits.dataSync() as Float32Array),
      block,
    });
  };
  const constant = (values: Float32Array, shape: [number, number]) => tf.tensor2d(values, shape);
  const noiseStd = settings.noiseStd ?? 0;
  if (!(Number.isFinite(noiseStd) && noiseStd >= 0))
    throw new InvalidArgumentError('noiseStd', noiseStd, 'must be a finite number >= 0');
  switch (name) {
    case 'top-k':
    case 'switch':
    case 'expert-choice':
    case 'hash': {
      const jitter = name === 'switch' ? (settings.jitterEps ?? 0.01) : 0;
      if (!(Number.isFinite(jitter) && jitter >= 0 && jitter < 1))
        throw new InvalidArgumentError('jitterEps', jitter, 'must be a finite number in [0, 1)');
      return {
        name,
        variables: () => [],
        toRouter: () => entry.make(plain),
        route({ tf, mm, x, gate, training, block }) {
          const [tokens] = x.shape;
          // Switch: multiplicative jitter U(1 - eps, 1 + eps) on the router's input, in training.
          const input =
            training && jitter > 0
              ? tf.mul(x, constant(rng.uniformArray(x.size, 1 - jitter, 1 + jitter), [tokens, x.shape[1]]))
              : x;
          let logits = mm(input, gate) as TF.Tensor2D;
          if (training && noiseStd > 0 && name === 'top-k')
            logits = tf.add(logits, constant(rng.normalArray(tokens * E, 0, noiseStd), [tokens, E]));
          const r = choose(input as TF.Tensor2D, logits, block);
          const mask = constant(maskOf(r), [tokens, E]);
          const probs = tf.softmax(logits);
          let weights: TF.Tensor2D;
          if (name === 'hash') weights = mask;
          else {
            const kept = tf.mul(probs, mask) as TF.Tensor2D;
            const renormalise = name === 'top-k' && (settings.normalize ?? 'topk') === 'topk';
            // Renormalised over the k chosen, before capacity dropped any (as the backend router).
            const chosen = r.dropped === 0 ? kept : tf.mul(probs, constant(maskOf(r, 'chosen'), [tokens, E]));
            weights = renormalise ? tf.div(kept, tf.add(tf.sum(chosen, -1, true), 1e-20)) : kept;
          }
          const k =
            r.layout === 'ranked' ? r.k : Math.max(1, Math.round(tf.sum(mask).dataSync()[0]! / tokens));
          return { logits, probs, mask, weights, k };
        },
      };
    }
    case 'relu-rms': {
      const eps = settings.eps ?? 1e-6;
      const gain = tf.variable(tf.ones([E]));
      const locality = settings.locality ?? 0;
      const chunkCoefficient = settings.chunkSparsity ?? 0;
      const chunk = settings.chunk ?? 8;
      if (!Number.isInteger(chunk) || chunk < 1)
        throw new InvalidArgumentError('chunk', chunk, 'must be a positive integer');
      return {
        name,
        variables: () => [gain],
        toRouter: () => reluRms({ numExperts: E, eps, normWeight: Float32Array.from(gain.dataSync()) }),
        route({ tf, mm, x, gate }) {
          const logits = mm(x, gate) as TF.Tensor2D;
          const relu = tf.relu(logits);
          const scale = tf.rsqrt(tf.add(tf.mean(tf.square(relu), -1, true), eps));
          const weights = tf.mul(tf.mul(relu, scale), gain) as TF.Tensor2D;
          const mask = positive(tf, relu) as TF.Tensor2D;
          const [tokens] = logits.shape;
          // BlockFFN's losses on the scaled scores p = w / (sum_e w + 1e-5).
          const losses: TF.Tensor[] = [];
          const p = tf.div(weights, tf.add(tf.sum(weights, -1, true), 1e-5));
          if (chunkCoefficient > 0) {
            const chunks = Math.ceil(tokens / chunk);
            const padded =
              chunks * chunk === tokens
                ? p
                : tf.pad(p, [
                    [0, chunks * chunk - tokens],
                    [0, 0],
                  ]);
            const logNone = tf.sum(
              tf.reshape(tf.log(tf.add(tf.sub(1, padded), 1e-5)), [chunks, chunk, E]),
              1,
            );
            losses.push(tf.mul(chunkCoefficient, tf.sub(1, tf.mean(tf.exp(logNone)))));
          }
          if (locality > 0 && tokens > 1) {
            const steep = 100;
            const prev = tf.mul(steep, tf.slice(logits, [0, 0], [tokens - 1, E]));
            const target = tf.sigmoid(tf.mul(steep, tf.slice(logits, [1, 0], [tokens - 1, E])));
            // BCE with logits: max(x, 0) - x y + log(1 + exp(-|x|)).
            const bce = tf.add(
              tf.sub(tf.relu(prev), tf.mul(prev, target)),
              tf.log1p(tf.exp(tf.neg(tf.abs(prev)))),
            );
            losses.push(tf.mul(locality, tf.mean(bce)));
          }
          const out: TrainableGateOutput = { logits, probs: weights, mask, weights, k: E };
          if (losses.length > 0) out.auxLoss = tf.addN(losses) as TF.Scalar;
          return out;
        },
      };
    }
    case 'comet':
      return cometGate(tf, settings);
  }
}

/** COMET's tree gate in tfjs (the reference's forward; see comet.ts), with its entropy regulariser. */
function cometGate(tf: Tfjs, settings: TrainableGateSettings): TrainableGate {
  const E = settings.numExperts;
  if (settings.width === undefined)
    throw new InvalidArgumentError('width', undefined, 'the COMET gate needs the width of the hidden states');
  const W = settings.width;
  const k = settings.k ?? 2;
  const gamma = settings.gamma ?? 1;
  const entropy = settings.entropy ?? 0;
  // Initialised as the backend router initialises them (seeded), held [in, out] for tfjs.
  const init = new CometRouter({ numExperts: E, k, width: W, gamma, seed: settings.seed ?? 0 }).params;
  const nodeW = tf.variable(tf.tensor2d(transposeValues(init.nodeWeight, (E - 1) * k, W), [W, (E - 1) * k]));
  const nodeB = tf.variable(tf.tensor1d(Float32Array.from(init.nodeBias)));
  const leafW = tf.variable(tf.tensor2d(transposeValues(init.leafWeight, E * k, W), [W, E * k]));
  const leafB = tf.variable(tf.tensor1d(Float32Array.from(init.leafBias)));
  // Leaves left to right, as the reference orders them.
  const leaves: number[] = [];
  const visit = (n: number): void => {
    if (n >= E - 1) leaves.push(n);
    else {
      visit(2 * n + 1);
      visit(2 * n + 2);
    }
  };
  visit(0);
  const a = -2 / gamma ** 3;
  const b = 3 / (2 * gamma);
  return {
    name: 'comet',
    variables: () => [nodeW, nodeB, leafW, leafB],
    toRouter: () =>
      new CometRouter({
        numExperts: E,
        k,
        width: W,
        gamma,
        params: {
          nodeWeight: transposeValues(nodeW.dataSync(), W, (E - 1) * k),
          nodeBias: Float32Array.from(nodeB.dataSync()),
          leafWeight: transposeValues(leafW.dataSync(), W, E * k),
          leafBias: Float32Array.from(leafB.dataSync()),
        },
      }),
    route({ tf, mm, x, gate }) {
      const [tokens] = x.shape;
      // Smooth-step of every split: the cubic on the clipped argument is 0 / 1 outside [-g/2, g/2].
      const z = tf.clipByValue(tf.add(mm(x, nodeW), nodeB), -gamma / 2, gamma / 2);
      const s = tf.add(tf.add(tf.mul(a, tf.pow(z, 3)), tf.mul(b, z)), 0.5); // [tokens, (E-1) k]
      const prob: TF.Tensor[] = new Array(2 * E - 1);
      prob[0] = tf.ones([tokens, k]);
      for (let n = 0; n < E - 1; n++) {
        const sn = tf.slice(s, [0, n * k], [tokens, k]);
        prob[2 * n + 1] = tf.mul(prob[n]!, sn);
        prob[2 * n + 2] = tf.mul(prob[n]!, tf.sub(1, sn));
      }
      // [tokens, E, k] leaf probabilities (expert e = leaf e left to right), then [tokens, E * k]
      // in the leaf weights' order (expert e, tree j at e * k + j).
      const leafProbs = tf.stack(
        leaves.map((n) => prob[n]!),
        1,
      );
      const p = tf.reshape(leafProbs, [tokens, E * k]);
      const reachable = positive(tf, p);
      const scores = tf.add(tf.add(mm(x, leafW), leafB), tf.log(tf.add(p, 1e-8)));
      // (Subtracting the row max changes no softmax value, nor any gradient.)
      const max = tf.max(scores, -1, true);
      const ex = tf.mul(tf.exp(tf.sub(scores, max)), reachable);
      const soft = tf.div(ex, tf.sum(ex, -1, true));
      const weights = tf.sum(tf.reshape(soft, [tokens, E, k]), 2) as TF.Tensor2D;
      const mask = positive(tf, weights) as TF.Tensor2D;
      // The model's gate logits are not read by COMET; the z-loss still sees them.
      const logits = mm(x, gate) as TF.Tensor2D;
      const out: TrainableGateOutput = { logits, probs: weights, mask, weights, k };
      if (entropy > 0)
        out.auxLoss = tf.div(
          tf.mul(entropy, tf.sum(tf.mul(tf.neg(p), tf.log(tf.add(p, 1e-6))))),
          tokens,
        ) as TF.Scalar;
      return out;
    },
  };
}
