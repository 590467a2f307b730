// A sparse autoencoder: f = act(enc(x)), x_hat = f W_dec + b_dec, with SAELens' parameter names and
// shapes (W_enc [d_in, d_sae], b_enc [d_sae], W_dec [d_sae, d_in], b_dec [d_in]; JumpReLU and
// BatchTopK's `threshold` [d_sae]; gated's b_gate, r_mag, b_mag [d_sae]). Forward passes run on a
// sparse-formats backend (dense matmuls; `decodeSparse` decodes CSR latents through spmm).
import { InvalidArgumentError, ShapeMismatchError, Tensor } from '@sparsekit/core';
import {
  type Backend,
  type CsrMatrix,
  fromDense,
  highestIndices,
  referenceBackend,
} from '@sparsekit/sparse-formats';

/**
 * - standard: ReLU(pre)
 * - topk: the k largest pre-activations of each row, ReLU'd (openai/sparse_autoencoder, SAELens)
 * - batchtopk: in training the k * rows largest of the batch; saved and run as JumpReLU with its
 *   EMA threshold
 * - jumprelu: pre where pre > threshold, else 0
 * - gated: 1[pi_gate > 0] * ReLU(pi_mag), pi_gate = x W_enc + b_gate, pi_mag = x (W_enc * exp(r_mag)) + b_mag
 * - feature-choice: each feature takes the m = k * rows / d_sae rows of the batch with the largest
 *   pre-activation for it (Ayonrinde, arXiv 2411.02124)
 * - mutual-choice: one budget of k * rows (row, feature) pairs, the largest pre-activations of the
 *   batch (the same paper)
 */
export type SaeArchitecture =
  | 'standard'
  | 'topk'
  | 'batchtopk'
  | 'jumprelu'
  | 'gated'
  | 'feature-choice'
  | 'mutual-choice';

export const SAE_ARCHITECTURES: readonly SaeArchitecture[] = [
  'standard',
  'topk',
  'batchtopk',
  'jumprelu',
  'gated',
  'feature-choice',
  'mutual-choice',
];

export interface SaeParams {
  /** [dIn, dSae] */
  wEnc: Float32Array;
  /** [dSae] */
  bEnc: Float32Array;
  /** [dSae, dIn] */
  wDec: Float32Array;
  /** [dIn] */
  bDec: Float32Array;
  /** [dSae] jumprelu, batchtopk (the EMA threshold it runs with at inference). */
  threshold?: Float32Array;
  /** [dSae] gated: the gate path's bias, the magnitude path's log-scale and bias. */
  bGate?: Float32Array;
  rMag?: Float32Array;
  bMag?: Float32Array;
}

export interface SaeOptions {
  architecture: SaeArchitecture;
  dIn: number;
  dSae: number;
  /** Latents per row: topk, batchtopk, feature-choice and mutual-choice (their average). */
  k?: number;
  /** Subtract b_dec from the input before encoding (SAELens' default true). */
  applyBDecToInput?: boolean;
  /**
   * SAELens' per-token input normalisation, undone on the reconstruction by `forward`:
   * 'constant_norm_rescale' scales each row to norm sqrt(d_in); 'layer_norm' subtracts the row's
   * mean and divides by its (unbiased) std + 1e-5. Default 'none'. (SAELens' dataset-wide
   * 'expected_average_only_in' is folded into the weights by training, leaving 'none'.)
   */
  normalize?: 'none' | 'constant_norm_rescale' | 'layer_norm';
}

/** Per-row statistics of the input normalisation, to undo it. */
export interface RowNorm {
  scale: Float64Array;
  shift: Float64Array;
}

/**
 * Rows of `x` [rows, d] normalised as SAELens does per token: 'constant_norm_rescale' to norm
 * sqrt(d); 'layer_norm' (x - mean) / (std + 1e-5) with the unbiased std. 'none' returns x itself.
 */
export function normalizeRows(
  x: Float32Array,
  d: number,
  mode: 'none' | 'constant_norm_rescale' | 'layer_norm',
): { x: Float32Array; norm: RowNorm | undefined } {
  if (mode === 'none') return { x, norm: undefined };
  const rows = x.length / d;
  const out = new Float32Array(x.length);
  const scale = new Float64Array(rows);
  const shift = new Float64Array(rows);
  for (let r = 0; r < rows; r++) {
    const row = x.subarray(r * d, (r + 1) * d);
    let mean = 0;
    if (mode === 'layer_norm') for (const v of row) mean += v / d;
    let squares = 0;
    for (const v of row) squares += (v - mean) ** 2;
    const s =
      mode === 'layer_norm'
        ? 1 / (Math.sqrt(squares / Math.max(1, d - 1)) + 1e-5)
        : Math.sqrt(d) / Math.sqrt(squares || 1);
    scale[r] = s;
    shift[r] = mean;
    for (let j = 0; j < d; j++) out[r * d + j] = (row[j]! - mean) * s;
  }
  return { x: out, norm: { scale, shift } };
}

function checkLength(name: string, a: Float32Array | undefined, n: number): void {
  if (a === undefined) throw new InvalidArgumentError(name, undefined, 'is required by this architecture');
  if (a.length !== n) throw new ShapeMismatchError([n], [a.length], `SAE ${name}`);
  for (let i = 0; i < a.length; i++)
    if (!Number.isFinite(a[i]!))
      throw new InvalidArgumentError(`SAE ${name}[${i}]`, a[i], 'must be finite (NaN or Inf in the weights)');
}

/** What an encode gives: pre-activations and latents, both [rows, dSae] dense. */
export interface Encoded {
  rows: number;
  pre: Float32Array;
  latents: Float32Array;
}

export class Sae {
  readonly architecture: SaeArchitecture;
  readonly dIn: number;
  readonly dSae: number;
  readonly k: number | undefined;
  readonly applyBDecToInput: boolean;
  readonly normalize: 'none' | 'constant_norm_rescale' | 'layer_norm';
  readonly params: SaeParams;

  constructor(options: SaeOptions, params: SaeParams) {
    const { architecture, dIn, dSae } = options;
    if (!SAE_ARCHITECTURES.includes(architecture))
      throw new InvalidArgumentError(
        'architecture',
        architecture,
        `must be one of ${SAE_ARCHITECTURES.join(', ')}`,
      );
    for (const [name, v] of [
      ['dIn', dIn],
      ['dSae', dSae],
    ] as const)
      if (!Number.isInteger(v) || v < 1)
        throw new InvalidArgumentError(name, v, 'must be a positive integer');
    const needsK = ['topk', 'batchtopk', 'feature-choice', 'mutual-choice'].includes(architecture);
    if (needsK) {
      const k = options.k;
      if (k === undefined || !Number.isInteger(k) || k < 1 || k > dSae)
        throw new InvalidArgumentError(
          'k',
          k,
          `must be an integer in [1, dSae = ${dSae}] for ${architecture}`,
        );
    }
    checkLength('W_enc', params.wEnc, dIn * dSae);
    checkLength('b_enc', params.bEnc, dSae);
    checkLength('W_dec', params.wDec, dSae * dIn);
    checkLength('b_dec', params.bDec, dIn);
    if (architecture === 'jumprelu') checkLength('threshold', params.threshold, dSae);
    if (architecture === 'batchtopk' && params.threshold !== undefined)
      checkLength('threshold', params.threshold, dSae);
    if (architecture === 'gated') {
      checkLength('b_gate', params.bGate, dSae);
      checkLength('r_mag', params.rMag, dSae);
      checkLength('b_mag', params.bMag, dSae);
    }
    this.architecture = architecture;
    this.dIn = dIn;
    this.dSae = dSae;
    this.k = needsK ? options.k : undefined;
    this.applyBDecToInput = options.applyBDecToInput ?? true;
    this.normalize = options.normalize ?? 'none';
    if (!['none', 'constant_norm_rescale', 'layer_norm'].includes(this.normalize))
      throw new InvalidArgumentError(
        'normalize',
        this.normalize,
        "must be 'none', 'constant_norm_rescale' or 'layer_norm'",
      );
    this.params = params;
  }

  private rowsOf(x: Float32Array): number {
    if (x.length % this.dIn !== 0)
      throw new ShapeMismatchError([-1, this.dIn], [x.length], 'SAE input (rows x d_in values)');
    for (let i = 0; i < x.length; i++)
      if (!Number.isFinite(x[i]!)) throw new InvalidArgumentError(`SAE input[${i}]`, x[i], 'must be finite');
    return x.length / this.dIn;
  }

  /** The input normalised per row (`normalize`), and what undoes it; x itself when 'none'. */
  normalizeRows(x: Float32Array): { x: Float32Array; norm: RowNorm | undefined } {
    return normalizeRows(x, this.dIn, this.normalize);
  }

  /** Undo `normalizeRows` on a reconstruction (in place). */
  private denormalize(xHat: Float32Array, norm: RowNorm | undefined): Float32Array {
    if (norm === undefined) return xHat;
    const d = this.dIn;
    for (let r = 0; r < norm.scale.length; r++)
      for (let j = 0; j < d; j++) xHat[r * d + j] = xHat[r * d + j]! / norm.scale[r]! + norm.shift[r]!;
    return xHat;
  }

  /** The encoder's input: x - b_dec when `applyBDecToInput`. */
  private centred(x: Float32Array, rows: number): Float32Array {
    if (!this.applyBDecToInput) return x;
    const out = new Float32Array(x.length);
    const { bDec } = this.params;
    for (let r = 0; r < rows; r++)
      for (let d = 0; d < this.dIn; d++) out[r * this.dIn + d] = x[r * this.dIn + d]! - bDec[d]!;
    return out;
  }

  /** x W (+ bias per column) for W [dIn, dSae]. */
  private project(x: Float32Array, rows: number, w: Float32Array, bias: Float32Array, backend: Backend) {
    const out = backend.matmul(x, w, rows, this.dIn, this.dSae);
    for (let r = 0; r < rows; r++) for (let j = 0; j < this.dSae; j++) out[r * this.dSae + j]! += bias[j]!;
    return out;
  }

  /**
   * Encode x [rows, dIn]. `training` selects the batch-level rule of batchtopk (the k * rows largest
   * of the batch) instead of its inference threshold; feature-choice and mutual-choice always
   * allocate over the rows given.
   */
  encode(x: Float32Array, options: { backend?: Backend; training?: boolean } = {}): Encoded {
    const backend = options.backend ?? referenceBackend;
    const rows = this.rowsOf(x);
    const E = this.dSae;
    const input = this.centred(this.normalizeRows(x).x, rows);
    const p = this.params;
    if (this.architecture === 'gated') {
      const gate = this.project(input, rows, p.wEnc, p.bGate!, backend);
      const scaled = new Float32Array(p.wEnc.length);
      for (let d = 0; d < this.dIn; d++)
        for (let j = 0; j < E; j++) scaled[d * E + j] = p.wEnc[d * E + j]! * Math.exp(p.rMag![j]!);
      const mag = this.project(input, rows, scaled, p.bMag!, backend);
      const latents = new Float32Array(rows * E);
      for (let i = 0; i < latents.length; i++) latents[i] = gate[i]! > 0 ? Math.max(0, mag[i]!) : 0;
      return { rows, pre: gate, latents };
    }
    const pre = this.project(input, rows, p.wEnc, p.bEnc, backend);
    return { rows, pre, latents: this.activate(pre, rows, options.training ?? false) };
  }

  /** The activation of pre-activations [rows, dSae] under this architecture. */
  activate(pre: Float32Array, rows: number, training = false): Float32Array {
    const E = this.dSae;
    const out = new Float32Array(pre.length);
    const keepPositive = (i: number) => {
      if (pre[i]! > 0) out[i] = pre[i]!;
    };
    switch (this.architecture) {
      case 'standard':
        for (let i = 0; i < pre.length; i++) keepPositive(i);
        return out;
      case 'topk':
        for (let r = 0; r < rows; r++) {
          const row = pre.subarray(r * E, (r + 1) * E);
          for (const j of highestIndices(row, this.k!)) keepPositive(r * E + j);
        }
        return out;
      case 'batchtopk':
        if (!training && this.params.threshold !== undefined)
          return this.jump(pre, rows, this.params.threshold);
        for (const i of highestIndices(pre, Math.min(pre.length, this.k! * rows))) keepPositive(i);
        return out;
      case 'mutual-choice':
        for (const i of highestIndices(pre, Math.min(pre.length, this.k! * rows))) keepPositive(i);
        return out;
      case 'feature-choice': {
        // Each feature's m rows: m = k * rows / dSae (at least 1).
        const m = Math.max(1, Math.min(rows, Math.round((this.k! * rows) / E)));
        const column = new Float32Array(rows);
        for (let j = 0; j < E; j++) {
          for (let r = 0; r < rows; r++) column[r] = pre[r * E + j]!;
          for (const r of highestIndices(column, m)) keepPositive(r * E + j);
        }
        return out;
      }
      case 'jumprelu':
        return this.jump(pre, rows, this.params.threshold!);
      case 'gated':
        throw new InvalidArgumentError('architecture', 'gated', 'activates inside encode (two paths)');
    }
  }

  private jump(pre: Float32Array, rows: number, threshold: Float32Array): Float32Array {
    const E = this.dSae;
    const out = new Float32Array(pre.length);
    for (let r = 0; r < rows; r++)
      for (let j = 0; j < E; j++) {
        const v = pre[r * E + j]!;
        if (v > threshold[j]! && v > 0) out[r * E + j] = v;
      }
    return out;
  }

  /** x_hat [rows, dIn] = latents [rows, dSae] W_dec + b_dec. */
  decode(latents: Float32Array, options: { backend?: Backend; bias?: boolean } = {}): Float32Array {
    const backend = options.backend ?? referenceBackend;
    if (latents.length % this.dSae !== 0)
      throw new ShapeMismatchError([-1, this.dSae], [latents.length], 'SAE latents');
    const rows = latents.length / this.dSae;
    const out = backend.matmul(latents, this.params.wDec, rows, this.dSae, this.dIn);
    if (options.bias ?? true)
      for (let r = 0; r < rows; r++)
        for (let d = 0; d < this.dIn; d++) out[r * this.dIn + d]! += this.params.bDec[d]!;
    return out;
  }

  /** Latents [rows, dSae] as CSR: only the nonzeros (a TopK row holds at most k). */
  sparseLatents(latents: Float32Array): CsrMatrix {
    if (latents.length % this.dSae !== 0)
      throw new ShapeMismatchError([-1, this.dSae], [latents.length], 'SAE latents');
    return fromDense(new Tensor('f32', [latents.length / this.dSae, this.dSae], latents), 'csr', {
      threshold: 0,
    });
  }

  /**
   * x_hat [rows, dIn] = latents W_dec + b_dec for CSR latents, through the backend's spmm: each row
   * reads only the decoder rows of its nonzero latents.
   */
  decodeSparse(latents: CsrMatrix, options: { backend?: Backend; bias?: boolean } = {}): Float32Array {
    const backend = options.backend ?? referenceBackend;
    if (latents.cols !== this.dSae)
      throw new ShapeMismatchError([latents.rows, this.dSae], [latents.rows, latents.cols], 'SAE latents');
    const out = backend.spmm(latents, this.params.wDec, this.dIn);
    if (options.bias ?? true)
      for (let r = 0; r < latents.rows; r++)
        for (let d = 0; d < this.dIn; d++) out[r * this.dIn + d]! += this.params.bDec[d]!;
    return out;
  }

  /** Encode then decode (normalisation undone): the reconstruction and the latents. */
  forward(x: Float32Array, options: { backend?: Backend; training?: boolean } = {}) {
    const encoded = this.encode(x, options);
    const norm = this.normalize === 'none' ? undefined : this.normalizeRows(x).norm;
    return { ...encoded, reconstruction: this.denormalize(this.decode(encoded.latents, options), norm) };
  }
}
