// SliceGPT (Ashkboos et al., 2024), following the reference's `rotate_and_slice_sequential`: fold
// the norms, then walk the residual stream from the embeddings to the head. At each point the
// calibration signal (as the already-sliced model produces it) gives a PCA basis: eigenvectors of
// sum_t x_t x_t^T plus 1% of its mean diagonal, by descending eigenvalue. The stream is rotated
// into that basis and cut to its leading coordinates; the shortcut matrices absorb the change of
// basis between points. Default schedule: one width everywhere, floor((1 - s) * d) rounded down to
// a multiple of 8, the stream entering the head left at full width.
import {
  InvalidArgumentError,
  type ProgressOptions,
  reportProgress,
  type SliceableLM,
  type StreamPoint,
  Tensor,
} from '@sparsekit/core';
import { HessianAccumulator, symmetricEigen } from '@sparsekit/sparse-formats';
import { checkModelWeights } from '../masks.js';

export interface SliceGptOptions extends ProgressOptions {
  /** Fraction of the hidden width to delete, in [0, 1). */
  sparsity: number;
  /** Round the kept width down to a multiple of this (the reference's `round_interval`, 8). */
  roundTo?: number;
  /** Also slice the stream entering the head (the reference's `do_slice_head`, off). */
  sliceHead?: boolean;
  /** Added to the covariance diagonal, relative to its mean (0.01). */
  damp?: number;
  /** Recorded in the report (a recipe with `method: slicegpt`). */
  recipe?: unknown;
}

export interface SlicePointReport {
  point: string;
  width: number;
  kept: number;
  /** Fraction of the calibration signal's energy (sum of eigenvalues) in the kept coordinates. */
  energyKept: number;
  /** Seconds since the previous point: the half-block producing the signal, its PCA, the rotation. */
  seconds: number;
}

export interface SliceGptReport {
  method: 'slicegpt';
  sparsity: number;
  originalWidth: number;
  slicedWidth: number;
  calibrationTokens: number;
  points: SlicePointReport[];
  /** Parameters of the whole model (embeddings, head and shortcut matrices included). */
  parameters: { before: number; after: number };
  seconds: number;
  /** The recipe the run followed, when it was given one. */
  recipe?: unknown;
}

const describe = (p: StreamPoint) => (p.at === 'embeddings' ? 'embeddings' : `layers.${p.block}.${p.at}`);

/** Principal basis of signals [.., width]: eigenvectors (columns) by descending eigenvalue. */
function principalBasis(signals: readonly Tensor<'f32'>[], width: number, damp: number) {
  const acc = new HessianAccumulator(width);
  for (const s of signals) acc.add(s.reshape([s.size / width, width]));
  const h = acc.matrix();
  let trace = 0;
  for (let i = 0; i < width; i++) trace += h[i * width + i]!;
  const shift = (damp * trace) / width;
  for (let i = 0; i < width; i++) h[i * width + i]! += shift;
  const { values, vectors } = symmetricEigen(h, width);
  return { values: values.map((v) => v - shift), vectors };
}

/** The first `kept` columns of the n x n row-major `vectors`, as f32 [n, kept]. */
function leadingColumns(vectors: Float64Array, n: number, kept: number): Tensor<'f32'> {
  const q = new Float32Array(n * kept);
  for (let i = 0; i < n; i++) for (let j = 0; j < kept; j++) q[i * kept + j] = vectors[i * n + j]!;
  return new Tensor('f32', [n, kept], q);
}

/** x [batch, seq, width] -> x Q [batch, seq, kept]. */
function project(x: Tensor<'f32'>, q: Tensor<'f32'>): Tensor<'f32'> {
  const [width, kept] = q.shape as [number, number];
  const rows = x.size / width;
  const out = new Float32Array(rows * kept);
  const acc = new Float64Array(kept);
  for (let r = 0; r < rows; r++) {
    acc.fill(0);
    for (let i = 0; i < width; i++) {
      const v = x.data[r * width + i]!;
      for (let j = 0; j < kept; j++) acc[j]! += v * q.data[i * kept + j]!;
    }
    out.set(acc, r * kept);
  }
  return new Tensor('f32', [...x.shape.slice(0, -1), kept], out);
}

/** The kept width for a slicing fraction: floor((1 - sparsity) * width), rounded down to `roundTo`. */
export function slicedWidth(width: number, sparsity: number, roundTo = 8): number {
  if (!(sparsity >= 0 && sparsity < 1)) {
    throw new InvalidArgumentError('slicing sparsity', sparsity, 'must be in [0, 1)');
  }
  if (!Number.isInteger(roundTo) || roundTo < 1) {
    throw new InvalidArgumentError('roundTo', roundTo, 'must be a positive integer');
  }
  let kept = Math.floor((1 - sparsity) * width);
  kept -= kept % roundTo;
  if (kept < 1) {
    throw new InvalidArgumentError(
      'slicing sparsity',
      sparsity,
      `leaves no coordinates of a width-${width} stream when rounded to multiples of ${roundTo}`,
    );
  }
  return kept;
}

/**
 * Slice `model` in place with calibration `batches` ([batch, seq] token ids). The result is a
 * smaller dense model; a failure leaves the model unmodified.
 */
export async function sliceGpt(
  model: SliceableLM,
  batches: readonly Tensor<'i32'>[],
  options: SliceGptOptions,
): Promise<SliceGptReport> {
  const start = performance.now();
  const width = model.hiddenSize;
  const kept = slicedWidth(width, options.sparsity, options.roundTo);
  if (batches.length === 0)
    throw new InvalidArgumentError('calibration', 0, 'SliceGPT needs calibration batches');
  const damp = options.damp ?? 0.01;
  if (!(damp >= 0)) throw new InvalidArgumentError('damp', damp, 'must be >= 0');
  let tokens = 0;
  for (const b of batches) tokens += b.size;
  if (tokens < width) {
    throw new InvalidArgumentError(
      'calibration',
      `${tokens} tokens`,
      `is too small for the PCA of a width-${width} stream: give at least ${width} calibration tokens`,
    );
  }
  checkModelWeights(model);
  const before = model.parameterCount();
  const points: SlicePointReport[] = [];
  const restore = model.checkpoint();
  try {
    model.foldNorms();
    let mark = performance.now();
    // Rotate and slice one point; returns the signals in the new basis.
    const slice = (point: StreamPoint, signals: Tensor<'f32'>[], keep: number) => {
      const n = model.streamWidth(point);
      const { values, vectors } = principalBasis(signals, n, damp);
      const q = leadingColumns(vectors, n, keep);
      model.rotateStream(point, q);
      const total = values.reduce((s, v) => s + v, 0);
      const part = values.subarray(0, keep).reduce((s, v) => s + v, 0);
      const projected = signals.map((x) => project(x, q));
      const now = performance.now();
      points.push({
        point: describe(point),
        width: n,
        kept: keep,
        energyKept: total > 0 ? part / total : 1,
        seconds: (now - mark) / 1000,
      });
      mark = now;
      return projected;
    };
    let hidden = slice(
      { at: 'embeddings' },
      batches.map((b) => model.embed(b)),
      kept,
    );
    for (let block = 0; block < model.numBlocks; block++) {
      const mid = slice(
        { at: 'attention', block },
        hidden.map((h) => model.runAttentionHalf(block, h)),
        kept,
      );
      const last = block === model.numBlocks - 1;
      const out = mid.map((m) => model.runMlpHalf(block, m));
      hidden = slice(
        { at: 'mlp', block },
        out,
        last && !options.sliceHead ? model.streamWidth({ at: 'mlp', block }) : kept,
      );
      reportProgress(options, { stage: 'slice', current: block + 1, total: model.numBlocks, unit: 'block' });
    }
  } catch (error) {
    restore();
    throw error;
  }
  return {
    method: 'slicegpt',
    sparsity: options.sparsity,
    originalWidth: width,
    slicedWidth: kept,
    calibrationTokens: tokens,
    points,
    parameters: { before, after: model.parameterCount() },
    seconds: (performance.now() - start) / 1000,
    ...(options.recipe === undefined ? {} : { recipe: options.recipe }),
  };
}
