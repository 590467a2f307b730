// Dense symmetric positive-definite algebra in float64 for SparseGPT: n x n row-major matrices.

import { InvalidArgumentError } from '@sparsekit/core';

/** The matrix is not positive definite (a Cholesky pivot was <= 0). */
export class NotPositiveDefiniteError extends InvalidArgumentError {
  constructor(what: string, pivot: number) {
    super(
      what,
      `pivot ${pivot}`,
      'must be positive definite; the calibration set is likely too small or degenerate for this layer (use more calibration tokens, or raise the dampening)',
    );
  }
}

/** Lower Cholesky factor L (A = L L^T), in place over a copy. */
export function cholesky(a: Float64Array, n: number, what = 'Hessian'): Float64Array {
  const l = new Float64Array(n * n);
  for (let j = 0; j < n; j++) {
    let d = a[j * n + j]!;
    for (let k = 0; k < j; k++) d -= l[j * n + k]! * l[j * n + k]!;
    if (!(d > 0)) throw new NotPositiveDefiniteError(what, d);
    const ljj = Math.sqrt(d);
    l[j * n + j] = ljj;
    for (let i = j + 1; i < n; i++) {
      let s = a[i * n + j]!;
      for (let k = 0; k < j; k++) s -= l[i * n + k]! * l[j * n + k]!;
      l[i * n + j] = s / ljj;
    }
  }
  return l;
}

/** A^-1 from A's lower Cholesky factor L (torch.cholesky_inverse): (L L^T)^-1 = L^-T L^-1. */
export function choleskyInverse(l: Float64Array, n: number): Float64Array {
  // Invert L (lower triangular) by forward substitution, column by column.
  const inv = new Float64Array(n * n);
  for (let c = 0; c < n; c++) {
    for (let i = c; i < n; i++) {
      let s = i === c ? 1 : 0;
      for (let k = c; k < i; k++) s -= l[i * n + k]! * inv[k * n + c]!;
      inv[i * n + c] = s / l[i * n + i]!;
    }
  }
  // A^-1 = inv^T inv.
  const out = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j <= i; j++) {
      let s = 0;
      for (let k = i; k < n; k++) s += inv[k * n + i]! * inv[k * n + j]!;
      out[i * n + j] = s;
      out[j * n + i] = s;
    }
  }
  return out;
}

/** Upper Cholesky factor U with A = U^T U (torch.linalg.cholesky(A, upper=True)). */
export function upperCholesky(a: Float64Array, n: number, what = 'inverse Hessian'): Float64Array {
  const l = cholesky(a, n, what);
  const u = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let j = 0; j <= i; j++) u[j * n + i] = l[i * n + j]!;
  return u;
}
