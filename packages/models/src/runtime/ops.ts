// Elementwise and normalization ops on [rows, width] row-major Float32Arrays, in place where the
// name says so. Accumulations are in float64 (JS numbers), as the reference ports compute in f32 or
// better.

import type { Activation } from '../config.js';

/** LayerNorm of each row: (x - mean) / sqrt(var + eps) * weight + bias (biased variance). */
export function layerNorm(
  x: Float32Array,
  width: number,
  weight: Float32Array,
  bias: Float32Array | undefined,
  eps: number,
  out = new Float32Array(x.length),
): Float32Array {
  for (let r = 0; r < x.length; r += width) {
    let mean = 0;
    for (let i = 0; i < width; i++) mean += x[r + i]!;
    mean /= width;
    let variance = 0;
    for (let i = 0; i < width; i++) {
      const d = x[r + i]! - mean;
      variance += d * d;
    }
    const scale = 1 / Math.sqrt(variance / width + eps);
    for (let i = 0; i < width; i++) {
      out[r + i] = (x[r + i]! - mean) * scale * weight[i]! + (bias === undefined ? 0 : bias[i]!);
    }
  }
  return out;
}

/**
 * RMSNorm of each row (Llama): x / sqrt(sum(x^2) / divisor + eps) * weight, where the divisor is the
 * width unless given (a sliced residual stream keeps dividing by its original width, as SliceGPT does).
 */
export function rmsNorm(
  x: Float32Array,
  width: number,
  weight: Float32Array,
  eps: number,
  out = new Float32Array(x.length),
  divisor = width,
): Float32Array {
  for (let r = 0; r < x.length; r += width) {
    let squares = 0;
    for (let i = 0; i < width; i++) squares += x[r + i]! * x[r + i]!;
    const scale = 1 / Math.sqrt(squares / divisor + eps);
    for (let i = 0; i < width; i++) out[r + i] = Math.fround(x[r + i]! * scale) * weight[i]!;
  }
  return out;
}

const SQRT_2_OVER_PI = Math.sqrt(2 / Math.PI);

/** erf from the Chebyshev fit of erfc in Numerical Recipes (fractional error < 1.2e-7, below f32's). */
function erf(x: number): number {
  const sign = x < 0 ? -1 : 1;
  const a = Math.abs(x);
  const t = 1 / (1 + 0.5 * a);
  const y =
    1 -
    t *
      Math.exp(
        -a * a -
          1.26551223 +
          t *
            (1.00002368 +
              t *
                (0.37409196 +
                  t *
                    (0.09678418 +
                      t *
                        (-0.18628806 +
                          t *
                            (0.27886807 +
                              t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277)))))))),
      );
  return sign * y;
}

/** Apply an activation in place. */
export function activate(x: Float32Array, kind: Activation): Float32Array {
  switch (kind) {
    case 'relu':
      for (let i = 0; i < x.length; i++) if (x[i]! < 0) x[i] = 0;
      break;
    case 'gelu_new':
      for (let i = 0; i < x.length; i++) {
        const v = x[i]!;
        x[i] = 0.5 * v * (1 + Math.tanh(SQRT_2_OVER_PI * (v + 0.044715 * v * v * v)));
      }
      break;
    case 'gelu':
      for (let i = 0; i < x.length; i++) {
        const v = x[i]!;
        x[i] = 0.5 * v * (1 + erf(v / Math.SQRT2));
      }
      break;
    case 'silu':
      for (let i = 0; i < x.length; i++) {
        const v = x[i]!;
        x[i] = v / (1 + Math.exp(-v));
      }
      break;
  }
  return x;
}

/** a += b, elementwise. */
export function addInPlace(a: Float32Array, b: Float32Array): Float32Array {
  for (let i = 0; i < a.length; i++) a[i]! += b[i]!;
  return a;
}

/** a *= b, elementwise. */
export function mulInPlace(a: Float32Array, b: Float32Array): Float32Array {
  for (let i = 0; i < a.length; i++) a[i]! *= b[i]!;
  return a;
}

/**
 * Rotary tables for positions [0, length): cos and sin [length, headDim / 2] from the inverse
 * frequencies `invFreq` [headDim / 2] (see `inverseFrequencies`).
 */
export function ropeTables(length: number, invFreqs: Float32Array): { cos: Float32Array; sin: Float32Array } {
  const half = invFreqs.length;
  const cos = new Float32Array(length * half);
  const sin = new Float32Array(length * half);
  for (let i = 0; i < half; i++) {
    const invFreq = invFreqs[i]!;
    for (let p = 0; p < length; p++) {
      const angle = Math.fround(p * invFreq);
      cos[p * half + i] = Math.cos(angle);
      sin[p * half + i] = Math.sin(angle);
    }
  }
  return { cos, sin };
}

/**
 * Rotate one head vector in place at `offset` for position `p` (rotate_half convention:
 * pairs (i, i + headDim / 2)).
 */
export function applyRope(
  x: Float32Array,
  offset: number,
  headDim: number,
  p: number,
  cos: Float32Array,
  sin: Float32Array,
): void {
  const half = headDim / 2;
  for (let i = 0; i < half; i++) {
    const c = cos[p * half + i]!;
    const s = sin[p * half + i]!;
    const a = x[offset + i]!;
    const b = x[offset + i + half]!;
    x[offset + i] = a * c - b * s;
    x[offset + i + half] = b * c + a * s;
  }
}

/**
 * The indices of the nonzero entries of `x` when at least `minZeroShare` of them are exact zeros
 * (else undefined: too few for the sparse decode paths to pay).
 */
export function nonzeroIndices(x: Float32Array, minZeroShare: number): Int32Array | undefined {
  let nonzero = 0;
  for (let i = 0; i < x.length; i++) if (x[i] !== 0) nonzero++;
  if (x.length - nonzero < minZeroShare * x.length) return undefined;
  const active = new Int32Array(nonzero);
  for (let i = 0, n = 0; i < x.length; i++) if (x[i] !== 0) active[n++] = i;
  return active;
}
