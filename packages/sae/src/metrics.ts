// Reconstruction metrics under SAELens' names, and the AuxK loss (openai/sparse_autoencoder), in
// float64 over float32 data.
import { ShapeMismatchError } from '@sparsekit/core';
import { highestIndices } from '@sparsekit/sparse-formats';

/** sum over rows of ||a_r - mean_rows(a)||^2: the total variance around the per-dimension mean. */
function centredSquares(a: ArrayLike<number>, rows: number, d: number): number {
  const mean = new Float64Array(d);
  for (let r = 0; r < rows; r++) for (let j = 0; j < d; j++) mean[j]! += a[r * d + j]! / rows;
  let s = 0;
  for (let r = 0; r < rows; r++) for (let j = 0; j < d; j++) s += (a[r * d + j]! - mean[j]!) ** 2;
  return s;
}

/** Normalised MSE: sum (x - x_hat)^2 / sum (x - mean_rows(x))^2 (openai's `normalized_mean_squared_error`). */
export function nmse(x: ArrayLike<number>, xHat: ArrayLike<number>, rows: number): number {
  if (x.length !== xHat.length) throw new ShapeMismatchError([x.length], [xHat.length], 'reconstruction');
  const d = x.length / rows;
  let sse = 0;
  for (let i = 0; i < x.length; i++) sse += (x[i]! - xHat[i]!) ** 2;
  return sse / centredSquares(x, rows, d);
}

export interface ReconstructionMetrics {
  /** Mean over every element of (x - x_hat)^2. */
  mse: number;
  /** 1 - nmse: the share of the input's variance (around its per-dimension mean) reconstructed. */
  explained_variance: number;
  /** Mean cosine similarity of x and x_hat per row. */
  cossim: number;
  /** Mean over rows of ||x_hat|| / ||x||. */
  l2_ratio: number;
  /** SAELens: ||x_hat||^2 summed / (x_hat . x) summed (1 when unbiased; > 1 overshoots). */
  relative_reconstruction_bias: number;
  /** Mean nonzero latents per row. */
  l0: number;
  /** Mean sum of |latents| per row. */
  l1: number;
}

/** The metrics of one batch: x and x_hat [rows, dIn], latents [rows, dSae]. */
export function reconstructionMetrics(
  x: ArrayLike<number>,
  xHat: ArrayLike<number>,
  latents: ArrayLike<number>,
  rows: number,
): ReconstructionMetrics {
  if (x.length !== xHat.length) throw new ShapeMismatchError([x.length], [xHat.length], 'reconstruction');
  const d = x.length / rows;
  let sse = 0;
  let cos = 0;
  let ratio = 0;
  let hatSquares = 0;
  let dot = 0;
  for (let r = 0; r < rows; r++) {
    let xx = 0;
    let hh = 0;
    let xh = 0;
    for (let j = 0; j < d; j++) {
      const a = x[r * d + j]!;
      const b = xHat[r * d + j]!;
      sse += (a - b) ** 2;
      xx += a * a;
      hh += b * b;
      xh += a * b;
    }
    cos += xx > 0 && hh > 0 ? xh / Math.sqrt(xx * hh) : 0;
    ratio += xx > 0 ? Math.sqrt(hh / xx) : 0;
    hatSquares += hh;
    dot += xh;
  }
  let l0 = 0;
  let l1 = 0;
  for (let i = 0; i < latents.length; i++) {
    if (latents[i] !== 0) l0++;
    l1 += Math.abs(latents[i]!);
  }
  return {
    mse: sse / x.length,
    explained_variance: 1 - sse / centredSquares(x, rows, d),
    cossim: cos / rows,
    l2_ratio: ratio / rows,
    relative_reconstruction_bias: hatSquares / dot,
    l0: l0 / rows,
    l1: l1 / rows,
  };
}

/**
 * The auxiliary latents of AuxK and its generalisations: per row, the `kAux` largest of
 * weight_j x pre_j among the latents with weight_j > 0 (ties to the lower id), as a 0/1 mask
 * [rows, dSae]. AuxK's weights are 1 on the dead latents, 0 elsewhere.
 */
export function auxKMask(
  pre: ArrayLike<number>,
  rows: number,
  weights: ArrayLike<number>,
  kAux: number,
): Float32Array {
  const dSae = weights.length;
  const mask = new Float32Array(rows * dSae);
  const ids: number[] = [];
  for (let j = 0; j < dSae; j++) if (weights[j]! > 0) ids.push(j);
  if (ids.length === 0) return mask;
  const scores = new Float64Array(ids.length);
  const k = Math.min(kAux, ids.length);
  for (let r = 0; r < rows; r++) {
    for (let i = 0; i < ids.length; i++) scores[i] = pre[r * dSae + ids[i]!]! * weights[ids[i]!]!;
    for (const i of highestIndices(scores, k)) mask[r * dSae + ids[i]!] = 1;
  }
  return mask;
}

/**
 * AuxK (openai/sparse_autoencoder): the kAux largest pre-activations among the dead latents (ReLU'd)
 * decode, without b_dec, the residual e = x - x_hat; the loss is nmse(e_hat, e). Returns the loss and
 * the auxiliary latents [rows, dSae]. With no dead latent the loss is 0.
 */
export function auxKLoss(
  pre: ArrayLike<number>,
  residual: ArrayLike<number>,
  dead: ArrayLike<boolean | number>,
  kAux: number,
  wDec: ArrayLike<number>,
  rows: number,
): { loss: number; latents: Float32Array } {
  const dSae = dead.length;
  const dIn = residual.length / rows;
  const mask = auxKMask(
    pre,
    rows,
    Array.from(dead, (d) => (d ? 1 : 0)),
    kAux,
  );
  const latents = new Float32Array(rows * dSae);
  for (let i = 0; i < latents.length; i++) if (mask[i] === 1 && pre[i]! > 0) latents[i] = pre[i]!;
  const eHat = new Float64Array(rows * dIn);
  for (let r = 0; r < rows; r++)
    for (let j = 0; j < dSae; j++) {
      const z = latents[r * dSae + j]!;
      if (z === 0) continue;
      for (let d = 0; d < dIn; d++) eHat[r * dIn + d]! += z * wDec[j * dIn + d]!;
    }
  return { loss: nmse(residual, eHat, rows), latents };
}
