// Rotary position parameters of Llama-family configs: transformers 5's `rope_parameters`
// ({ rope_theta, rope_type, ... }) or transformers 4's top-level `rope_theta` with `rope_scaling`.
// Types implemented: default, linear, llama3; any other is refused by name (never ignored).
import { InvalidArgumentError } from '@sparsekit/core';
import { UnsupportedModelError } from './errors.js';

/** How the inverse frequencies are rescaled (Hugging Face's `ROPE_INIT_FUNCTIONS`). */
export type RopeScaling =
  | { type: 'linear'; factor: number }
  | {
      type: 'llama3';
      factor: number;
      lowFreqFactor: number;
      highFreqFactor: number;
      originalMaxPositions: number;
    };

type Json = Record<string, unknown>;

function positive(params: Json, key: string, where: string): number {
  const v = params[key];
  if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0)
    throw new InvalidArgumentError(`config.json ${where}.${key}`, v, 'must be a positive number');
  return v;
}

/** The base and the scaling a config.json gives, whichever of the two layouts it uses. */
export function ropeFromHf(json: Json): { theta: number; scaling?: RopeScaling } {
  const parameters = json.rope_parameters;
  const scaling = json.rope_scaling;
  let params: Json | undefined;
  let where: string;
  let theta: unknown = json.rope_theta;
  if (parameters !== undefined && parameters !== null) {
    if (typeof parameters !== 'object' || Array.isArray(parameters))
      throw new InvalidArgumentError('config.json rope_parameters', parameters, 'must be an object');
    params = parameters as Json;
    where = 'rope_parameters';
    if (
      params.rope_theta === undefined &&
      Object.values(params).some((v) => typeof v === 'object' && v !== null)
    )
      throw new UnsupportedModelError('rope_parameters per attention type', Object.keys(params).join(', '));
    theta = params.rope_theta ?? theta;
  } else if (scaling !== undefined && scaling !== null) {
    if (typeof scaling !== 'object' || Array.isArray(scaling))
      throw new InvalidArgumentError('config.json rope_scaling', scaling, 'must be an object');
    params = scaling as Json;
    where = 'rope_scaling';
  } else where = '';
  const base = theta ?? 10000;
  if (typeof base !== 'number' || !Number.isFinite(base) || base <= 1)
    throw new InvalidArgumentError('config.json rope_theta', base, 'must be a number above 1');
  const type = params === undefined ? 'default' : (params.rope_type ?? params.type ?? 'default');
  switch (type) {
    case 'default':
      return { theta: base };
    case 'linear':
      return { theta: base, scaling: { type: 'linear', factor: positive(params!, 'factor', where) } };
    case 'llama3': {
      const p = params!;
      const low = positive(p, 'low_freq_factor', where);
      const high = positive(p, 'high_freq_factor', where);
      if (!(high > low))
        throw new InvalidArgumentError(
          `config.json ${where}.high_freq_factor`,
          high,
          `must exceed low_freq_factor (${low})`,
        );
      return {
        theta: base,
        scaling: {
          type: 'llama3',
          factor: positive(p, 'factor', where),
          lowFreqFactor: low,
          highFreqFactor: high,
          originalMaxPositions: positive(p, 'original_max_position_embeddings', where),
        },
      };
    }
    default:
      throw new UnsupportedModelError(`rope type '${String(type)}'`, 'implemented: default, linear, llama3');
  }
}

/**
 * The rope fields of a config.json for a runtime config: `rope_theta`, and with a scaling both
 * transformers 4's `rope_scaling` and transformers 5's `rope_parameters`.
 */
export function ropeToHf(theta: number, scaling: RopeScaling | undefined): Json {
  if (scaling === undefined) return { rope_theta: theta };
  const p: Json =
    scaling.type === 'linear'
      ? { rope_type: 'linear', factor: scaling.factor }
      : {
          rope_type: 'llama3',
          factor: scaling.factor,
          low_freq_factor: scaling.lowFreqFactor,
          high_freq_factor: scaling.highFreqFactor,
          original_max_position_embeddings: scaling.originalMaxPositions,
        };
  return { rope_theta: theta, rope_scaling: p, rope_parameters: { ...p, rope_theta: theta } };
}

/**
 * inv_freq [headDim / 2]: theta^(-2i / headDim) (computed in float64, rounded once to float32), then
 * rescaled: linear divides by the factor; llama3 divides the low frequencies (wavelength above
 * original / low_freq_factor) by the factor, keeps the high ones (below original / high_freq_factor)
 * and blends the band between (`_compute_llama3_parameters`).
 */
export function inverseFrequencies(headDim: number, theta: number, scaling?: RopeScaling): Float32Array {
  const half = headDim / 2;
  const inv = new Float32Array(half);
  for (let i = 0; i < half; i++) inv[i] = 1 / theta ** ((2 * i) / headDim);
  if (scaling === undefined) return inv;
  if (scaling.type === 'linear') return inv.map((f) => f / scaling.factor);
  const { factor, lowFreqFactor, highFreqFactor, originalMaxPositions: old } = scaling;
  const lowWavelength = old / lowFreqFactor;
  const highWavelength = old / highFreqFactor;
  return inv.map((f) => {
    const wavelength = (2 * Math.PI) / f;
    const scaled = wavelength > lowWavelength ? f / factor : f;
    if (wavelength < highWavelength || wavelength > lowWavelength) return scaled;
    const smooth = (old / wavelength - lowFreqFactor) / (highFreqFactor - lowFreqFactor);
    return (1 - smooth) * (scaled / factor) + smooth * scaled;
  });
}
