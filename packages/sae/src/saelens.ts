// SAELens' folder layout, without file access (the node entry reads and writes folders):
// cfg.json + sae_weights.safetensors. What SAELens 6.x writes and reads, and the repairs its loader
// makes for older configs (the failures its users report get a clear error or SAELens' own default):
// - a config without a version or older than 6.0: architecture 'standard' unless
//   `activation_fn(_str)` is 'topk' with `activation_fn_kwargs.k` (then 'topk', that k); boolean
//   `normalize_activations` false -> 'none', true -> 'expected_average_only_in'; apply_b_dec_to_input
//   true; model keys (hook_name, model_name, context_size, ...) move to `metadata`.
// - 'batchtopk' is saved as 'jumprelu' with its threshold (SAELens' inference save); a 'jumprelu'
//   without `threshold` is refused, never run as ReLU (the silently dropped threshold of SAELens#608).
// - b_dec stored [1, d_in] is read as [d_in]; any other shape mismatch is refused naming the tensor.
// - gated has no b_enc (b_gate, r_mag, b_mag instead).
import { bf16ArrayToF32, f16ArrayToF32, SparsekitError, Tensor } from '@sparsekit/core';
import { Sae, type SaeArchitecture, type SaeParams } from './sae.js';

/** The SAELens release whose layout this package writes (configs say so in metadata.sae_lens_version). */
export const SAELENS_LAYOUT_VERSION = '6.18.0';

export type NormalizeActivations =
  | 'none'
  | 'expected_average_only_in'
  | 'constant_norm_rescale'
  | 'layer_norm';
const NORMALIZE: readonly NormalizeActivations[] = [
  'none',
  'expected_average_only_in',
  'constant_norm_rescale',
  'layer_norm',
];

/** The model keys SAELens keeps under `metadata` (read from the top level of older configs). */
const METADATA_KEYS = [
  'model_name',
  'hook_name',
  'model_class_name',
  'hook_head_index',
  'model_from_pretrained_kwargs',
  'prepend_bos',
  'exclude_special_tokens',
  'neuronpedia_id',
  'context_size',
  'seqpos_slice',
  'dataset_path',
  'sae_lens_version',
  'sae_lens_training_version',
] as const;

/** A malformed or unsupported SAELens folder (names the file and what is wrong). */
export class SaeFileError extends SparsekitError {
  static override readonly code = 'sae/file';
  static override readonly hint = "check the folder holds SAELens' cfg.json and sae_weights.safetensors";
  readonly file: string;
  readonly reason: string;

  constructor(file: string, reason: string) {
    super(SaeFileError.code, `${file}: ${reason}`);
    this.file = file;
    this.reason = reason;
  }
}

/** The config as this package reads it (SAELens 6.x field names; `metadata` free). */
export interface SaeLensConfig {
  architecture: 'standard' | 'topk' | 'jumprelu' | 'gated';
  d_in: number;
  d_sae: number;
  dtype: string;
  apply_b_dec_to_input: boolean;
  normalize_activations: NormalizeActivations;
  k?: number;
  rescale_acts_by_decoder_norm?: boolean;
  metadata: Record<string, unknown>;
}

const VERSION6 = /^(\d+)\./;

function positiveInt(file: string, name: string, v: unknown): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1)
    throw new SaeFileError(file, `${name} must be a positive integer, got ${JSON.stringify(v)}`);
  return v;
}

/** Parse and normalise a cfg.json object as SAELens' loader does (see the top of this file). */
export function parseSaeLensConfig(raw: unknown, file = 'cfg.json'): SaeLensConfig {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw))
    throw new SaeFileError(file, 'must hold a JSON object');
  const c = { ...(raw as Record<string, unknown>) };
  const metadata: Record<string, unknown> =
    typeof c.metadata === 'object' && c.metadata !== null ? { ...(c.metadata as object) } : {};
  const version = (c.sae_lens_version ?? metadata.sae_lens_version) as unknown;
  const major = typeof version === 'string' ? Number(VERSION6.exec(version)?.[1] ?? 0) : 0;
  if (major < 6) {
    // Older layouts: renamed fields and SAELens' defaults.
    if (c.hook_point !== undefined && c.hook_name === undefined) c.hook_name = c.hook_point;
    const fn = c.activation_fn ?? c.activation_fn_str;
    const kwargs = c.activation_fn_kwargs as { k?: unknown } | undefined;
    if (fn === 'topk' && kwargs?.k !== undefined) {
      c.architecture = 'topk';
      c.k = kwargs.k;
    }
    c.architecture ??= 'standard';
    c.apply_b_dec_to_input ??= true;
    if (c.normalize_activations === true) c.normalize_activations = 'expected_average_only_in';
    if (c.normalize_activations === false || c.normalize_activations === null)
      c.normalize_activations = 'none';
  }
  for (const key of METADATA_KEYS)
    if (c[key] !== undefined && metadata[key] === undefined) metadata[key] = c[key];
  let architecture = c.architecture;
  if (architecture === undefined)
    throw new SaeFileError(file, "has no 'architecture' (SAELens 6 configs always name one)");
  if (architecture === 'batchtopk') architecture = 'jumprelu'; // runs with its threshold
  if (!['standard', 'topk', 'jumprelu', 'gated'].includes(architecture as string))
    throw new SaeFileError(
      file,
      `architecture ${JSON.stringify(architecture)} is not one of standard, topk, jumprelu, gated (batchtopk loads as jumprelu)`,
    );
  const normalize = (c.normalize_activations ?? 'none') as NormalizeActivations;
  if (!NORMALIZE.includes(normalize))
    throw new SaeFileError(
      file,
      `normalize_activations ${JSON.stringify(normalize)} is not one of ${NORMALIZE.join(', ')}`,
    );
  const config: SaeLensConfig = {
    architecture: architecture as SaeLensConfig['architecture'],
    d_in: positiveInt(file, 'd_in', c.d_in),
    d_sae: positiveInt(file, 'd_sae', c.d_sae),
    dtype: String(c.dtype ?? 'float32').replace(/^torch\./, ''),
    apply_b_dec_to_input: c.apply_b_dec_to_input === undefined ? true : c.apply_b_dec_to_input === true,
    normalize_activations: normalize,
    metadata,
  };
  if (config.architecture === 'topk') {
    config.k = positiveInt(file, 'k', c.k ?? 100);
    if (config.k > config.d_sae) throw new SaeFileError(file, `k ${config.k} exceeds d_sae ${config.d_sae}`);
    config.rescale_acts_by_decoder_norm = c.rescale_acts_by_decoder_norm === true;
  }
  return config;
}

/** The tensors each architecture stores, with their shapes. */
function expectedTensors(c: SaeLensConfig): Record<string, number[]> {
  const { d_in: d, d_sae: s } = c;
  const base: Record<string, number[]> = { W_enc: [d, s], W_dec: [s, d], b_dec: [d] };
  if (c.architecture === 'gated') return { ...base, b_gate: [s], r_mag: [s], b_mag: [s] };
  return { ...base, b_enc: [s], ...(c.architecture === 'jumprelu' ? { threshold: [s] } : {}) };
}

function floats(t: Tensor): Float32Array {
  if (t.dtype === 'f16') return f16ArrayToF32(t.data as Uint16Array);
  if (t.dtype === 'bf16') return bf16ArrayToF32(t.data as Uint16Array);
  return Float32Array.from(t.data as ArrayLike<number>);
}

/**
 * An `Sae` from a parsed config and the tensors of sae_weights.safetensors (any float dtype; read as
 * f32). A TopK SAE saved with `rescale_acts_by_decoder_norm` has its decoder norms folded in (as
 * SAELens' own save does), so it runs as a plain TopK.
 */
export function saeFromSaeLens(
  config: SaeLensConfig,
  tensors: Readonly<Record<string, Tensor>>,
  file = 'sae_weights.safetensors',
): Sae {
  const want = expectedTensors(config);
  const got = Object.keys(tensors).filter((n) => n !== '__metadata__');
  const missing = Object.keys(want).filter((n) => !got.includes(n));
  if (missing.length > 0)
    throw new SaeFileError(
      file,
      `missing ${missing.join(', ')} for architecture ${config.architecture}${missing.includes('threshold') ? ' (a JumpReLU or BatchTopK SAE needs its threshold; without it the SAE would run as a plain ReLU)' : ''}`,
    );
  const extra = got.filter((n) => !(n in want));
  if (extra.length > 0)
    throw new SaeFileError(
      file,
      `unexpected ${extra.join(', ')} for architecture ${config.architecture} (is 'architecture' right?)`,
    );
  const values: Record<string, Float32Array> = {};
  for (const [name, shape] of Object.entries(want)) {
    const t = tensors[name]!;
    const ok =
      t.shape.length === shape.length && t.shape.every((v, i) => v === shape[i])
        ? true
        : name === 'b_dec' && t.shape.length === 2 && t.shape[0] === 1 && t.shape[1] === shape[0]; // [1, d_in]
    if (!ok)
      throw new SaeFileError(
        file,
        `${name} has shape [${t.shape.join(', ')}], expected [${shape.join(', ')}]`,
      );
    if (!['f32', 'f16', 'bf16', 'f64'].includes(t.dtype))
      throw new SaeFileError(file, `${name} is ${t.dtype}; SAE weights are floats`);
    values[name] = floats(t);
  }
  const params: SaeParams = {
    wEnc: values.W_enc!,
    bEnc: values.b_enc ?? new Float32Array(config.d_sae),
    wDec: values.W_dec!,
    bDec: values.b_dec!,
    ...(values.threshold === undefined ? {} : { threshold: values.threshold }),
    ...(config.architecture === 'gated'
      ? { bGate: values.b_gate!, rMag: values.r_mag!, bMag: values.b_mag! }
      : {}),
  };
  if (config.rescale_acts_by_decoder_norm) foldDecoderNorms(params, config.d_in, config.d_sae);
  try {
    return new Sae(
      {
        architecture: config.architecture as SaeArchitecture,
        dIn: config.d_in,
        dSae: config.d_sae,
        ...(config.k === undefined ? {} : { k: config.k }),
        applyBDecToInput: config.apply_b_dec_to_input,
        ...(config.normalize_activations === 'constant_norm_rescale' ||
        config.normalize_activations === 'layer_norm'
          ? { normalize: config.normalize_activations }
          : {}),
      },
      params,
    );
  } catch (error) {
    throw new SaeFileError(file, (error as Error).message);
  }
}

/** W_dec rows to unit norm, the norms moved into W_enc's columns and b_enc (and threshold, gated biases). */
export function foldDecoderNorms(p: SaeParams, dIn: number, dSae: number): void {
  for (let j = 0; j < dSae; j++) {
    let n = 0;
    for (let d = 0; d < dIn; d++) n += p.wDec[j * dIn + d]! ** 2;
    n = Math.sqrt(n);
    if (n === 0) continue;
    for (let d = 0; d < dIn; d++) {
      p.wDec[j * dIn + d]! /= n;
      p.wEnc[d * dSae + j]! *= n;
    }
    p.bEnc[j]! *= n;
    if (p.threshold !== undefined) p.threshold[j]! *= n;
    if (p.bGate !== undefined) p.bGate[j]! *= n;
    if (p.bMag !== undefined) p.bMag[j]! *= n;
  }
}

/**
 * The config and tensors SAELens reads for `sae`: batchtopk is written as jumprelu with its
 * threshold (SAELens' inference save), feature-choice and mutual-choice likewise when they carry a
 * threshold (they are batch-level rules, with no per-row inference form otherwise).
 */
export function saeToSaeLens(
  sae: Sae,
  options: { metadata?: Record<string, unknown>; normalizeActivations?: NormalizeActivations } = {},
): { config: Record<string, unknown>; tensors: Record<string, Tensor> } {
  const p = sae.params;
  const batchLevel = ['batchtopk', 'feature-choice', 'mutual-choice'].includes(sae.architecture);
  if (batchLevel && p.threshold === undefined)
    throw new SaeFileError(
      'sae_weights.safetensors',
      `a ${sae.architecture} SAE is saved as JumpReLU with its inference threshold, and this one has none (train it, or set params.threshold)`,
    );
  const architecture = batchLevel ? 'jumprelu' : sae.architecture;
  const { dIn: d, dSae: s } = sae;
  const f = (name: string, shape: number[], v: Float32Array) => [name, new Tensor('f32', shape, v)] as const;
  const tensors = Object.fromEntries([
    f('W_enc', [d, s], p.wEnc),
    f('W_dec', [s, d], p.wDec),
    f('b_dec', [d], p.bDec),
    ...(architecture === 'gated'
      ? [f('b_gate', [s], p.bGate!), f('r_mag', [s], p.rMag!), f('b_mag', [s], p.bMag!)]
      : [f('b_enc', [s], p.bEnc)]),
    ...(architecture === 'jumprelu' ? [f('threshold', [s], p.threshold!)] : []),
  ]);
  const config: Record<string, unknown> = {
    architecture,
    d_in: d,
    d_sae: s,
    dtype: 'float32',
    device: 'cpu',
    apply_b_dec_to_input: sae.applyBDecToInput,
    normalize_activations:
      sae.normalize !== 'none' ? sae.normalize : (options.normalizeActivations ?? 'none'),
    reshape_activations: 'none',
    ...(architecture === 'topk' ? { k: sae.k, rescale_acts_by_decoder_norm: false } : {}),
    metadata: {
      sae_lens_version: SAELENS_LAYOUT_VERSION,
      sae_lens_training_version: SAELENS_LAYOUT_VERSION,
      ...options.metadata,
      // The architecture it was trained as, when SAELens reads it as another.
      ...(batchLevel ? { sparsekit_architecture: sae.architecture, sparsekit_k: sae.k } : {}),
    },
  };
  return { config, tensors };
}

/**
 * Fold an input scaling factor c (the SAE was trained on x * c) into the weights, so it reads x:
 * W_enc *= c, W_dec /= c, b_dec /= c (SAELens' fold_activation_norm_scaling_factor).
 */
export function foldScalingFactor(sae: Sae, c: number): void {
  const p = sae.params;
  for (let i = 0; i < p.wEnc.length; i++) p.wEnc[i]! *= c;
  for (let i = 0; i < p.wDec.length; i++) p.wDec[i]! /= c;
  for (let i = 0; i < p.bDec.length; i++) p.bDec[i]! /= c;
}
