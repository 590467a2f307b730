// Training a sparse autoencoder on tfjs. The choice of which latents fire is made by the same code
// that runs at inference (`Sae.activate`, on the batch's pre-activations read back), so training and
// inference agree; the values and the losses are tfjs ops with gradients:
//   standard      mse + l1 * mean_t sum_j f_j ||W_dec_j||                      (SAELens)
//   topk, batchtopk, feature-choice, mutual-choice
//                 mse + auxK * min(dead / kAux, 1) * nmse(e_hat, e)            (openai AuxK)
//   jumprelu      mse + l0 * mean_t sum_j H(pre - theta), straight-through to theta with a
//                 rectangle kernel of width `bandwidth` (SAELens' step mode; theta = exp(log theta))
//   gated         mse + l1 * mean_t sum_j relu(pi_gate)_j ||W_dec_j|| + mean_t ||relu(pi_gate) W_dec + b_dec - x||^2
// with mse = mean_t sum_d (x_hat - x)^2. The references' training details: W_dec rows drawn
// Kaiming-uniform and set to unit norm, W_enc = W_dec^T, b_dec = the geometric median of the first
// batch; after every gradient the component of each W_dec row's gradient along the row is removed
// and the rows are set back to unit norm (openai/sparse_autoencoder); Adam; gradient norm clipped at
// 1. Features are dead when they have not fired for `deadWindow` tokens. BatchTopK, Feature Choice
// and Mutual Choice keep an EMA of the smallest positive latent (SAELens' threshold, lr 0.01), the
// threshold they run with at inference (saved as JumpReLU). Every random choice is seeded.

import { InvalidArgumentError, matMulOps, type ProgressOptions, Rng, reportProgress } from '@sparsekit/core';
import type * as TF from '@tensorflow/tfjs-core';
import { geometricMedian } from '../geometric-median.js';
import { auxKMask } from '../metrics.js';
import { normalizeRows, Sae, type SaeArchitecture, type SaeParams } from '../sae.js';
import { foldScalingFactor } from '../saelens.js';

type Tfjs = typeof TF;

export interface TrainSaeOptions extends ProgressOptions {
  architecture: SaeArchitecture;
  dIn: number;
  dSae: number;
  /** Latents per row (topk, batchtopk, feature-choice, mutual-choice). */
  k?: number;
  /** Batches of activations, each [rows, dIn] (rows may differ); training stops when they run out or at `steps`. */
  batches: Iterable<Float32Array> | AsyncIterable<Float32Array>;
  steps?: number;
  /** Adam learning rate (default 1e-3). */
  lr?: number;
  /** standard, gated: L1 coefficient (default 1, SAELens'). */
  l1?: number;
  /** jumprelu: L0 coefficient (default 1, SAELens'), bandwidth (0.05), initial threshold (0.01). */
  l0?: number;
  bandwidth?: number;
  initThreshold?: number;
  /**
   * jumprelu: SAELens' `l0_loss` mode. 'step' (default) penalises sum_j H(pre - theta), whose only
   * gradient is the straight-through one to theta; 'tanh' penalises sum_j tanh(c f_j ||W_dec_j||)
   * (c = `tanhScale`, default 4), which also reaches the encoder.
   */
  l0Mode?: 'step' | 'tanh';
  tanhScale?: number;
  /** AuxK: latents (default min(2 dIn, dSae)) and coefficient (1/32); 0 turns it off. */
  kAux?: number;
  auxK?: number;
  /**
   * Which latents the auxiliary loss draws on: 'auxk' (default) the dead ones; 'zipf' the
   * under-used ones, weighted by how far their firing rate falls below a Zipf law over the features
   * ranked by rate (see `zipfDeficits`; with only dead and healthy features it is AuxK). For the
   * choice architectures; `zipfExponent` default 1.
   */
  aux?: 'auxk' | 'zipf';
  zipfExponent?: number;
  /** Every this many steps, re-initialise dead features towards badly reconstructed inputs (default 0: never). */
  resampleEvery?: number;
  /** Tokens without firing after which a feature is dead (default 50,000). */
  deadWindow?: number;
  /** Subtract b_dec before encoding (default true). */
  applyBDecToInput?: boolean;
  /** b_dec's initial value: the geometric median of the first batch (default), its mean, or zeros. */
  bDecInit?: 'geometric-median' | 'mean' | 'zeros';
  /**
   * SAELens' input normalisation: 'expected_average_only_in' scales every row by c = sqrt(d_in) /
   * (mean row norm of the first batch) and folds c into the trained weights (the SAE then reads raw
   * activations); 'constant_norm_rescale' and 'layer_norm' normalise each row, and the SAE keeps the
   * mode (its `forward` undoes it). Default 'none'.
   */
  normalize?: 'none' | 'expected_average_only_in' | 'constant_norm_rescale' | 'layer_norm';
  /** EMA rate of the inference threshold of batch-level architectures (default 0.01). */
  thresholdLr?: number;
  seed?: number;
  /** Called every `logEvery` steps (default 25) with the step's metrics. */
  onLog?: (entry: TrainLogEntry) => void;
  logEvery?: number;
}

export interface TrainLogEntry {
  step: number;
  tokens: number;
  loss: number;
  mse: number;
  /** The architecture's sparsity or auxiliary term (unweighted). */
  aux: number;
  l0: number;
  deadFeatures: number;
}

export interface TrainedSae {
  sae: Sae;
  steps: number;
  tokens: number;
  log: TrainLogEntry[];
  /** Tokens since each feature last fired, at the end. */
  tokensSinceFired: Float64Array;
  /** Features re-initialised by resampling, in all. */
  resampled: number;
}

/**
 * The Zipf deficit of each feature: rank the features by firing rate (per token, descending); the
 * rate a Zipf law gives rank r is L r^-s / sum_i i^-s (L = the rates' sum, the mean L0), and the
 * deficit is max(0, 1 - rate / that), 1 for a feature that never fires. This package's reading of
 * the Feature/Mutual Choice paper's aux_zipf_loss (Ayonrinde, arXiv 2411.02124: an auxiliary loss
 * that generalises AuxK to under-used features); the paper's exact formula was not available.
 */
export function zipfDeficits(rates: ArrayLike<number>, exponent = 1): Float64Array {
  const E = rates.length;
  const order = Array.from({ length: E }, (_, j) => j).sort((a, b) => rates[b]! - rates[a]! || a - b);
  let total = 0;
  for (let j = 0; j < E; j++) total += rates[j]!;
  let harmonic = 0;
  for (let r = 1; r <= E; r++) harmonic += r ** -exponent;
  const out = new Float64Array(E);
  order.forEach((j, i) => {
    const target = (total * (i + 1) ** -exponent) / harmonic;
    out[j] = rates[j]! <= 0 ? 1 : target <= 0 ? 0 : Math.max(0, 1 - rates[j]! / target);
  });
  return out;
}

/** 1 where a value is > 0, else 0 (a plain loop: a mapping callback per entry is slow here). */
function positiveMask(values: ArrayLike<number>): Float32Array {
  const out = new Float32Array(values.length);
  for (let i = 0; i < values.length; i++) if (values[i]! > 0) out[i] = 1;
  return out;
}

/** A constant of the tape: `values` as a tensor no gradient flows back through. */
function constant(tf: Tfjs, values: Float32Array, shape: number[]): TF.Tensor {
  return tf.tensor(values, shape);
}

/** JumpReLU's output pre * H(pre - theta) with SAELens' straight-through gradient to theta. */
function jumpReluOp(tf: Tfjs, bandwidth: number) {
  return tf.customGrad((...args: (TF.Tensor | TF.GradSaveFunc)[]) => {
    const [pre, theta, save] = args as [TF.Tensor, TF.Tensor, TF.GradSaveFunc];
    save([pre, theta]);
    const on = tf.cast(tf.greater(pre, theta), 'float32');
    return {
      value: tf.mul(pre, on),
      gradFunc: (dy, saved) => {
        const [p, t] = saved as [TF.Tensor, TF.Tensor];
        const gate = tf.cast(tf.greater(p, t), 'float32');
        const u = tf.div(tf.sub(p, t), bandwidth);
        const kernel = tf.cast(tf.logicalAnd(tf.greater(u, -0.5), tf.less(u, 0.5)), 'float32');
        const dTheta = tf.sum(tf.mul(tf.mul(tf.neg(tf.div(t, bandwidth)), kernel), dy), 0);
        return [tf.mul(gate, dy), dTheta];
      },
    };
  }) as (pre: TF.Tensor, theta: TF.Tensor) => TF.Tensor;
}

/** The step function H(pre - theta), straight-through to theta only (SAELens' L0 'step' mode). */
function stepOp(tf: Tfjs, bandwidth: number) {
  return tf.customGrad((...args: (TF.Tensor | TF.GradSaveFunc)[]) => {
    const [pre, theta, save] = args as [TF.Tensor, TF.Tensor, TF.GradSaveFunc];
    save([pre, theta]);
    return {
      value: tf.cast(tf.greater(pre, theta), 'float32'),
      gradFunc: (dy, saved) => {
        const [p, t] = saved as [TF.Tensor, TF.Tensor];
        const u = tf.div(tf.sub(p, t), bandwidth);
        const kernel = tf.cast(tf.logicalAnd(tf.greater(u, -0.5), tf.less(u, 0.5)), 'float32');
        return [tf.zerosLike(p), tf.sum(tf.mul(tf.mul(kernel, -1 / bandwidth), dy), 0)];
      },
    };
  }) as (pre: TF.Tensor, theta: TF.Tensor) => TF.Tensor;
}

const BATCH_LEVEL: readonly SaeArchitecture[] = ['batchtopk', 'feature-choice', 'mutual-choice'];

/** Train an SAE on the batches; returns it as an inference `Sae` with the training log. */
export async function trainSae(tf: Tfjs, options: TrainSaeOptions): Promise<TrainedSae> {
  const { architecture: arch, dIn, dSae } = options;
  const k = options.k;
  // The inference SAE validates the shape options (k, architecture) before anything trains.
  const check = new Sae(
    { architecture: arch, dIn, dSae, ...(k === undefined ? {} : { k }) },
    {
      wEnc: new Float32Array(dIn * dSae),
      bEnc: new Float32Array(dSae),
      wDec: new Float32Array(dSae * dIn),
      bDec: new Float32Array(dIn),
      threshold: new Float32Array(dSae),
      bGate: new Float32Array(dSae),
      rMag: new Float32Array(dSae),
      bMag: new Float32Array(dSae),
    },
  );
  const steps = options.steps ?? Number.POSITIVE_INFINITY;
  const lr = options.lr ?? 1e-3;
  const l1 = options.l1 ?? 1;
  const l0 = options.l0 ?? 1;
  const bandwidth = options.bandwidth ?? 0.05;
  const l0Mode = options.l0Mode ?? 'step';
  const tanhScale = options.tanhScale ?? 4;
  if (l0Mode !== 'step' && l0Mode !== 'tanh')
    throw new InvalidArgumentError('l0Mode', l0Mode, "must be 'step' or 'tanh'");
  const kAux = Math.min(options.kAux ?? 2 * dIn, dSae);
  const auxCoefficient = options.auxK ?? 1 / 32;
  const deadWindow = options.deadWindow ?? 50_000;
  const thresholdLr = options.thresholdLr ?? 0.01;
  const applyBDec = options.applyBDecToInput ?? true;
  for (const [name, v, ok] of [
    ['lr', lr, lr > 0],
    ['l1', l1, l1 >= 0],
    ['l0', l0, l0 >= 0],
    ['bandwidth', bandwidth, bandwidth > 0],
    ['tanhScale', tanhScale, tanhScale > 0],
    ['auxK', auxCoefficient, auxCoefficient >= 0],
    ['deadWindow', deadWindow, deadWindow > 0],
  ] as const)
    if (!(Number.isFinite(v) && ok)) throw new InvalidArgumentError(name, v, 'is out of range');
  const rng = new Rng(options.seed ?? 0);
  const auxKind = options.aux ?? 'auxk';
  const zipfExponent = options.zipfExponent ?? 1;
  const resampleEvery = options.resampleEvery ?? 0;
  if (auxKind !== 'auxk' && auxKind !== 'zipf')
    throw new InvalidArgumentError('aux', auxKind, "must be 'auxk' or 'zipf'");
  if (!(Number.isFinite(zipfExponent) && zipfExponent > 0))
    throw new InvalidArgumentError('zipfExponent', zipfExponent, 'must be a finite number > 0');
  if (!Number.isInteger(resampleEvery) || resampleEvery < 0)
    throw new InvalidArgumentError('resampleEvery', resampleEvery, 'must be a non-negative integer');
  const rates = new Float64Array(dSae); // EMA of each feature's firing rate per token
  let ratesSeen = false;

  // Kaiming-uniform decoder rows, set to unit norm; the encoder its transpose.
  const bound = Math.sqrt(6 / dIn);
  const wDec0 = rng.uniformArray(dSae * dIn, -bound, bound);
  for (let j = 0; j < dSae; j++) {
    let n = 0;
    for (let d = 0; d < dIn; d++) n += wDec0[j * dIn + d]! ** 2;
    n = Math.sqrt(n) || 1;
    for (let d = 0; d < dIn; d++) wDec0[j * dIn + d]! /= n;
  }
  const wEnc0 = new Float32Array(dIn * dSae);
  for (let j = 0; j < dSae; j++) for (let d = 0; d < dIn; d++) wEnc0[d * dSae + j] = wDec0[j * dIn + d]!;
  const wEnc = tf.variable(tf.tensor2d(wEnc0, [dIn, dSae]), true, 'W_enc');
  const wDec = tf.variable(tf.tensor2d(wDec0, [dSae, dIn]), true, 'W_dec');
  const bEnc = tf.variable(tf.zeros([dSae]), true, 'b_enc');
  let bDec: TF.Variable | undefined;
  const logThreshold =
    arch === 'jumprelu'
      ? tf.variable(tf.fill([dSae], Math.log(options.initThreshold ?? 0.01)), true, 'log_threshold')
      : undefined;
  const gated =
    arch === 'gated'
      ? {
          bGate: tf.variable(tf.zeros([dSae]), true, 'b_gate'),
          rMag: tf.variable(tf.zeros([dSae]), true, 'r_mag'),
          bMag: tf.variable(tf.zeros([dSae]), true, 'b_mag'),
        }
      : undefined;
  const inferenceThreshold = new Float64Array(dSae); // batch-level architectures: EMA of the smallest positive latent
  let thresholdSeen = false;
  const optimizer = tf.train.adam(lr);
  const { mm } = matMulOps(tf);
  const jump = jumpReluOp(tf, bandwidth);
  const step0 = stepOp(tf, bandwidth);
  const tokensSinceFired = new Float64Array(dSae);
  const log: TrainLogEntry[] = [];
  const logEvery = options.logEvery ?? 25;
  let tokens = 0;
  let step = 0;
  let recent: TrainLogEntry[] = [];

  /**
   * Anthropic's resampling (Towards Monosemanticity): each dead feature gets a batch row drawn with
   * probability proportional to its squared reconstruction error; its decoder row becomes that row
   * (minus b_dec) normalised, its encoder column that direction times 0.2 x the mean norm of the
   * live encoder columns, its bias 0, and its dead counter restarts. (Adam's moments of those
   * entries are not reset.)
   */
  const resample = (batch: Float32Array, rows: number, latents: Float32Array) => {
    const deadIds = Array.from(tokensSinceFired.keys()).filter((j) => tokensSinceFired[j]! > deadWindow);
    if (deadIds.length === 0) return;
    const W = wDec.dataSync() as Float32Array;
    const V = wEnc.dataSync() as Float32Array;
    const B = bEnc.dataSync() as Float32Array;
    const c = bDec!.dataSync() as Float32Array;
    const dec = Float32Array.from(W);
    const enc = Float32Array.from(V);
    const bias = Float32Array.from(B);
    const errors = new Float64Array(rows);
    for (let r = 0; r < rows; r++) {
      for (let d = 0; d < dIn; d++) {
        let xh = c[d]!;
        for (let j = 0; j < dSae; j++) {
          const zj = latents[r * dSae + j]!;
          if (zj !== 0) xh += zj * W[j * dIn + d]!;
        }
        errors[r]! += (batch[r * dIn + d]! - xh) ** 2;
      }
      errors[r] = errors[r]! ** 2;
    }
    const total = errors.reduce((a, b) => a + b, 0);
    let alive = 0;
    let aliveNorm = 0;
    for (let j = 0; j < dSae; j++) {
      if (tokensSinceFired[j]! > deadWindow) continue;
      let n = 0;
      for (let d = 0; d < dIn; d++) n += V[d * dSae + j]! ** 2;
      aliveNorm += Math.sqrt(n);
      alive++;
    }
    const encNorm = alive === 0 ? 1 : aliveNorm / alive;
    for (const j of deadIds) {
      let u = rng.uniform(0, total);
      let r = 0;
      while (r < rows - 1 && u > errors[r]!) u -= errors[r++]!;
      const v = new Float64Array(dIn);
      let n = 0;
      for (let d = 0; d < dIn; d++) {
        v[d] = batch[r * dIn + d]! - c[d]!;
        n += v[d]! ** 2;
      }
      n = Math.sqrt(n) || 1;
      for (let d = 0; d < dIn; d++) {
        dec[j * dIn + d] = v[d]! / n;
        enc[d * dSae + j] = (0.2 * encNorm * v[d]!) / n;
      }
      bias[j] = 0;
      tokensSinceFired[j] = 0;
    }
    tf.tidy(() => {
      wDec.assign(tf.tensor2d(dec, [dSae, dIn]));
      wEnc.assign(tf.tensor2d(enc, [dIn, dSae]));
      bEnc.assign(tf.tensor1d(bias));
    });
    resampled += deadIds.length;
  };
  let resampled = 0;
  const normalize = options.normalize ?? 'none';
  if (!['none', 'expected_average_only_in', 'constant_norm_rescale', 'layer_norm'].includes(normalize))
    throw new InvalidArgumentError('normalize', normalize, "is not one of SAELens' normalisations");
  let scaling: number | undefined;
  for await (const raw of options.batches) {
    if (step >= steps) break;
    let batch = raw;
    options.signal?.throwIfAborted();
    if (batch.length % dIn !== 0 || batch.length === 0)
      throw new InvalidArgumentError('batch', batch.length, `must hold rows of d_in = ${dIn} values`);
    for (let i = 0; i < batch.length; i++)
      if (!Number.isFinite(batch[i]!))
        throw new InvalidArgumentError(
          `batch ${step} value ${i}`,
          batch[i],
          'must be finite (NaN or Inf in the activations)',
        );
    const rows = batch.length / dIn;
    if (normalize === 'expected_average_only_in') {
      if (scaling === undefined) {
        let norms = 0;
        for (let r = 0; r < rows; r++) {
          let q = 0;
          for (let d = 0; d < dIn; d++) q += batch[r * dIn + d]! ** 2;
          norms += Math.sqrt(q) / rows;
        }
        scaling = norms > 0 ? Math.sqrt(dIn) / norms : 1;
      }
      batch = batch.map((v) => v * scaling!);
    } else if (normalize !== 'none') batch = normalizeRows(batch, dIn, normalize).x;
    if (bDec === undefined) {
      const init =
        options.bDecInit === 'zeros'
          ? new Float32Array(dIn)
          : options.bDecInit === 'mean'
            ? geometricMedian(batch, dIn, { iterations: 0 })
            : geometricMedian(batch, dIn);
      bDec = tf.variable(tf.tensor1d(init), true, 'b_dec');
    }
    const x = tf.tensor2d(batch, [rows, dIn]);
    const dead = Array.from(tokensSinceFired, (t) => t > deadWindow);
    const deadCount = dead.filter(Boolean).length;
    // Weight of each latent in the auxiliary loss: dead ones (AuxK), or the Zipf deficits.
    const auxWeight =
      auxKind === 'zipf' && ratesSeen
        ? Array.from(zipfDeficits(rates, zipfExponent), (w, j) => (dead[j] ? 1 : w))
        : dead.map((d) => (d ? 1 : 0));
    const auxCount = auxWeight.reduce((a, b) => a + b, 0);
    const variables = [
      wEnc,
      wDec,
      bEnc,
      bDec,
      ...(logThreshold ? [logThreshold] : []),
      ...(gated ? Object.values(gated) : []),
    ];
    let latentsRead: Float32Array | undefined;
    let mseValue = 0;
    let auxValue = 0;
    const { value, grads } = tf.variableGrads(() => {
      const xc = applyBDec ? tf.sub(x, bDec!) : x;
      const decNorm = tf.sqrt(tf.sum(tf.square(wDec), 1)); // [dSae] (tf.norm runs Pow, slow on wasm)
      let f: TF.Tensor;
      let aux: TF.Tensor = tf.scalar(0);
      let extra: TF.Tensor | undefined;
      if (gated !== undefined) {
        const gate = tf.add(mm(xc, wEnc), gated.bGate);
        const on = constant(tf, positiveMask(gate.dataSync() as Float32Array), [rows, dSae]);
        const mag = tf.relu(tf.add(mm(xc, tf.mul(wEnc, tf.exp(gated.rMag))), gated.bMag));
        f = tf.mul(on, mag);
        const piGate = tf.relu(gate);
        aux = tf.mean(tf.sum(tf.mul(piGate, decNorm), 1));
        extra = tf.mean(tf.sum(tf.square(tf.sub(tf.add(mm(piGate, wDec), bDec!), x)), 1));
      } else {
        const pre = tf.add(mm(xc, wEnc), bEnc);
        if (arch === 'jumprelu') {
          const theta = tf.exp(logThreshold!);
          f = jump(tf.relu(pre), theta);
          aux =
            l0Mode === 'tanh'
              ? tf.mean(tf.sum(tf.tanh(tf.mul(tf.mul(f, decNorm), tanhScale)), 1))
              : tf.mean(tf.sum(step0(pre, theta), 1));
        } else if (arch === 'standard') {
          f = tf.relu(pre);
          aux = tf.mean(tf.sum(tf.mul(f, decNorm), 1));
        } else {
          // The choice of the inference code, on this batch (training: the batch-level rules).
          const preValues = pre.dataSync() as Float32Array;
          const chosen = check.activate(preValues, rows, true);
          const mask = constant(tf, positiveMask(chosen), [rows, dSae]);
          f = tf.mul(tf.relu(pre), mask);
          latentsRead = chosen; // the same values as f's
          if (auxCoefficient > 0 && auxCount > 0) {
            const xHatNow = tf.add(mm(f, wDec), bDec!);
            const residual = tf.tensor(tf.sub(x, xHatNow).dataSync(), [rows, dIn]); // a constant
            const auxMask = auxKMask(preValues, rows, auxWeight, kAux);
            const eHat = mm(tf.mul(tf.relu(pre), constant(tf, auxMask, [rows, dSae])), wDec);
            const centred = tf.sub(residual, tf.mean(residual, 0, true));
            const nmse = tf.div(
              tf.sum(tf.square(tf.sub(eHat, residual))),
              tf.add(tf.sum(tf.square(centred)), 1e-12),
            );
            aux = tf.mul(Math.min(auxCount / kAux, 1), nmse);
          }
        }
      }
      latentsRead ??= f.dataSync() as Float32Array;
      const xHat = tf.add(mm(f, wDec), bDec!);
      const mse = tf.mean(tf.sum(tf.square(tf.sub(xHat, x)), 1));
      mseValue = mse.dataSync()[0]!;
      auxValue = aux.dataSync()[0]!;
      const weight =
        arch === 'standard' || arch === 'gated' ? l1 : arch === 'jumprelu' ? l0 : auxCoefficient > 0 ? 1 : 0;
      let total = tf.add(mse, tf.mul(weight, aux));
      if (extra !== undefined) total = tf.add(total, extra);
      return total as TF.Scalar;
    }, variables);
    // Decoder: remove each row's gradient component along the row, clip, step, rows back to unit norm.
    const gDec = grads[wDec.name]!;
    const projected = tf.tidy(() => tf.sub(gDec, tf.mul(tf.sum(tf.mul(gDec, wDec), 1, true), wDec)));
    grads[wDec.name] = projected;
    gDec.dispose();
    const norm = Math.sqrt(
      tf.tidy(() => tf.addN(Object.values(grads).map((g) => tf.sum(tf.square(g)))).dataSync()[0]!),
    );
    const scale = Math.min(1, 1 / (norm + 1e-6));
    const clipped = Object.fromEntries(Object.entries(grads).map(([n, g]) => [n, tf.mul(g, scale)]));
    optimizer.applyGradients(clipped as unknown as Parameters<typeof optimizer.applyGradients>[0]);
    tf.tidy(() => wDec.assign(tf.div(wDec, tf.add(tf.sqrt(tf.sum(tf.square(wDec), 1, true)), 1e-12))));
    // Firing, dead features, the inference threshold.
    const z = latentsRead!;
    const counts = new Float64Array(dSae);
    let nonzero = 0;
    let smallest = Number.POSITIVE_INFINITY;
    for (let r = 0, i = 0; r < rows; r++)
      for (let j = 0; j < dSae; j++, i++) {
        const v = z[i]!;
        if (v > 0) {
          counts[j]!++;
          nonzero++;
          if (v < smallest) smallest = v;
        }
      }
    for (let j = 0; j < dSae; j++) {
      tokensSinceFired[j] = counts[j]! > 0 ? 0 : tokensSinceFired[j]! + rows;
      rates[j] = ratesSeen ? 0.99 * rates[j]! + (0.01 * counts[j]!) / rows : counts[j]! / rows;
    }
    ratesSeen = true;
    if (BATCH_LEVEL.includes(arch) && Number.isFinite(smallest)) {
      for (let j = 0; j < dSae; j++)
        inferenceThreshold[j] = thresholdSeen
          ? (1 - thresholdLr) * inferenceThreshold[j]! + thresholdLr * smallest
          : smallest;
      thresholdSeen = true;
    }
    if (resampleEvery > 0 && (step + 1) % resampleEvery === 0) resample(batch, rows, z);
    const loss = value.dataSync()[0]!;
    tf.dispose([x, value, projected, ...Object.values(grads), ...Object.values(clipped)]);
    step++;
    tokens += rows;
    recent.push({
      step,
      tokens,
      loss,
      mse: mseValue,
      aux: auxValue,
      l0: nonzero / rows,
      deadFeatures: deadCount,
    });
    if (step % logEvery === 0) {
      const mean = (key: keyof TrainLogEntry) => recent.reduce((s, e) => s + e[key], 0) / recent.length;
      const entry: TrainLogEntry = {
        step,
        tokens,
        loss: mean('loss'),
        mse: mean('mse'),
        aux: mean('aux'),
        l0: mean('l0'),
        deadFeatures: Array.from(tokensSinceFired).filter((t) => t > deadWindow).length,
      };
      log.push(entry);
      options.onLog?.(entry);
      recent = [];
    }
    reportProgress(options, {
      stage: 'train',
      current: step,
      ...(Number.isFinite(steps) ? { total: steps } : {}),
      unit: 'step',
    });
  }
  if (step === 0 || bDec === undefined)
    throw new InvalidArgumentError('batches', 0, 'need at least one batch to train on');
  const read = (v: TF.Variable) => Float32Array.from(v.dataSync() as Float32Array);
  const params: SaeParams = {
    wEnc: read(wEnc),
    bEnc: read(bEnc),
    wDec: read(wDec),
    bDec: read(bDec),
    ...(logThreshold === undefined
      ? {}
      : { threshold: Float32Array.from(logThreshold.dataSync(), Math.exp) }),
    ...(BATCH_LEVEL.includes(arch) && thresholdSeen
      ? { threshold: Float32Array.from(inferenceThreshold) }
      : {}),
    ...(gated === undefined
      ? {}
      : { bGate: read(gated.bGate), rMag: read(gated.rMag), bMag: read(gated.bMag) }),
  };
  tf.dispose([
    wEnc,
    wDec,
    bEnc,
    bDec,
    ...(logThreshold ? [logThreshold] : []),
    ...(gated ? Object.values(gated) : []),
  ]);
  optimizer.dispose();
  const sae = new Sae(
    {
      architecture: arch,
      dIn,
      dSae,
      ...(k === undefined ? {} : { k }),
      applyBDecToInput: applyBDec,
      ...(normalize === 'constant_norm_rescale' || normalize === 'layer_norm' ? { normalize } : {}),
    },
    params,
  );
  if (scaling !== undefined) foldScalingFactor(sae, scaling);
  return { sae, steps: step, tokens, log, tokensSinceFired, resampled };
}
