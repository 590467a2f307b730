// Streaming statistics of a linear layer's inputs, accumulated batch by batch exactly as the
// reference pruning code does (SparseGPT's Hessian, Wanda's input norms), so memory is bounded by
// one batch. Shared by every method that calibrates on a layer's inputs.
import { assertFinite, InvalidArgumentError, ShapeMismatchError, type Tensor } from '@sparsekit/core';
import type { Backend } from '../backend/contract.js';
import { gram } from './linalg.js';

function checkBatch(inputs: Tensor<'f32'>, columns: number, what: string): number {
  const [tokens, width] = inputs.shape as [number, number];
  if (inputs.shape.length !== 2 || width !== columns) {
    throw new ShapeMismatchError([tokens ?? 0, columns], inputs.shape, what);
  }
  assertFinite(inputs.data, what);
  return tokens;
}

/**
 * Running means as the references keep them: before adding a batch of `tokens`, scale what was
 * accumulated over `samples` tokens by samples / (samples + tokens). Returns the new total.
 */
function rescale(accumulated: Float64Array, samples: number, tokens: number): number {
  const total = samples + tokens;
  const keep = samples / total;
  for (let i = 0; i < accumulated.length; i++) accumulated[i]! *= keep;
  return total;
}

/**
 * SparseGPT's Hessian H = (2 / n) sum_t x_t x_t^T over n calibration tokens (`SparseGPT.add_batch`:
 * rescale by n_old / n_new, then add (2 / n_new) X^T X of the batch), accumulated in float64. With a
 * `kernel`, each batch's X^T X is one product on it in float32 (the reference's precision).
 */
export class HessianAccumulator {
  readonly h: Float64Array;
  samples = 0;

  constructor(
    readonly columns: number,
    private readonly kernel?: Backend,
  ) {
    this.h = new Float64Array(columns * columns);
  }

  add(inputs: Tensor<'f32'>): void {
    const n = this.columns;
    const tokens = checkBatch(inputs, n, 'calibration inputs');
    if (tokens === 0) return;
    const total = rescale(this.h, this.samples, tokens);
    const scale = 2 / total;
    const x = inputs.data;
    if (this.kernel !== undefined) {
      // X^T X is the Gram matrix of the rows of X^T [n, tokens].
      const xt = new Float32Array(n * tokens);
      for (let t = 0; t < tokens; t++) for (let i = 0; i < n; i++) xt[i * tokens + t] = x[t * n + i]!;
      const xtx = gram(this.kernel, xt, n, tokens);
      for (let i = 0; i < n; i++) for (let j = 0; j <= i; j++) this.h[i * n + j]! += scale * xtx[i * n + j]!;
      this.samples = total;
      return;
    }
    for (let t = 0; t < tokens; t++) {
      const row = t * n;
      for (let i = 0; i < n; i++) {
        const xi = x[row + i]! * scale;
        if (xi === 0) continue;
        const hi = i * n;
        for (let j = 0; j <= i; j++) this.h[hi + j]! += xi * x[row + j]!;
      }
    }
    this.samples = total;
  }

  /** The full symmetric matrix (the accumulation fills the lower triangle). */
  matrix(): Float64Array {
    const n = this.columns;
    if (this.samples === 0)
      throw new InvalidArgumentError('calibration', 0, 'no calibration tokens were seen');
    const out = new Float64Array(this.h);
    for (let i = 0; i < n; i++) for (let j = 0; j < i; j++) out[j * n + i] = out[i * n + j]!;
    return out;
  }
}

/**
 * Wanda's input norms: scaler_row[j] = mean over tokens of x_j^2 (`WrappedGPT.add_batch`), so that
 * ||X_j||_2 is proportional to sqrt(scaler_row[j]).
 */
export class InputNormAccumulator {
  readonly scalerRow: Float64Array;
  samples = 0;

  constructor(readonly columns: number) {
    this.scalerRow = new Float64Array(columns);
  }

  add(inputs: Tensor<'f32'>): void {
    const n = this.columns;
    const tokens = checkBatch(inputs, n, 'calibration inputs');
    if (tokens === 0) return;
    const total = rescale(this.scalerRow, this.samples, tokens);
    const x = inputs.data;
    for (let t = 0; t < tokens; t++) {
      for (let j = 0; j < n; j++) this.scalerRow[j]! += (x[t * n + j]! * x[t * n + j]!) / total;
    }
    this.samples = total;
  }
}
