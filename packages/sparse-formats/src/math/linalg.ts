// Dense symmetric positive-definite algebra in float64 (SparseGPT's Hessian inverse, SliceGPT's
// PCA): n x n row-major matrices. Where a backend is given, the large products run on it in f32.

import { InvalidArgumentError } from '@sparsekit/core';
import type { Backend } from '../backend/contract.js';
import { dense } from '../formats/dense.js';

/** Rows of this many columns are factored per step when a kernel takes the trailing updates. */
const PANEL = 128;

/** x x^T for x [rows, cols] on the kernel, in f32: [rows, rows]. */
export function gram(
  kernel: Backend,
  x: Float64Array | Float32Array,
  rows: number,
  cols: number,
): Float32Array {
  const x32 = x instanceof Float32Array ? x : Float32Array.from(x);
  return kernel.linear(x32, rows, dense({ rows, cols, values: x32 }));
}

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

/**
 * Lower Cholesky factor L (A = L L^T). With a `kernel`, right-looking and blocked: panels of 128
 * columns are factored in float64 and the trailing matrix is updated as an f32 matrix product on the
 * kernel (the precision of the reference, which factors in f32 throughout).
 */
export function cholesky(a: Float64Array, n: number, what = 'Hessian', kernel?: Backend): Float64Array {
  if (kernel === undefined || n <= PANEL) return unblockedCholesky(a, n, what);
  const work = new Float64Array(a);
  const l = new Float64Array(n * n);
  for (let k0 = 0; k0 < n; k0 += PANEL) {
    const k1 = Math.min(k0 + PANEL, n);
    const b = k1 - k0;
    // The diagonal block, already updated by the panels before it.
    const block = new Float64Array(b * b);
    for (let i = 0; i < b; i++) for (let j = 0; j < b; j++) block[i * b + j] = work[(k0 + i) * n + k0 + j]!;
    const l11 = unblockedCholesky(block, b, what);
    for (let i = 0; i < b; i++) for (let j = 0; j <= i; j++) l[(k0 + i) * n + k0 + j] = l11[i * b + j]!;
    if (k1 === n) break;
    // The panel below it: L21 = A21 L11^-T, row by row (forward substitution).
    const m = n - k1;
    const panel = new Float64Array(m * b);
    for (let r = 0; r < m; r++) {
      const row = (k1 + r) * n;
      for (let j = 0; j < b; j++) {
        let s = work[row + k0 + j]!;
        for (let p = 0; p < j; p++) s -= panel[r * b + p]! * l11[j * b + p]!;
        panel[r * b + j] = s / l11[j * b + j]!;
      }
      for (let j = 0; j < b; j++) l[row + k0 + j] = panel[r * b + j]!;
    }
    // Trailing update: A22 -= L21 L21^T.
    const update = gram(kernel, panel, m, b);
    for (let r = 0; r < m; r++) {
      const row = (k1 + r) * n + k1;
      for (let c = 0; c <= r; c++) work[row + c]! -= update[r * m + c]!;
    }
  }
  return l;
}

function unblockedCholesky(a: Float64Array, n: number, what: string): Float64Array {
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

/**
 * A^-1 from A's lower Cholesky factor L (torch.cholesky_inverse): (L L^T)^-1 = L^-T L^-1. With a
 * `kernel`, the final product runs on it (in f32).
 */
export function choleskyInverse(l: Float64Array, n: number, kernel?: Backend): Float64Array {
  // A^-1 = X^T X with X = L^-1: entry (i, j) is the dot product of columns i and j of X, kept as
  // the rows of t = X^T so that every inner loop walks contiguous memory.
  const x = lowerTriangularInverse(l, n, kernel);
  const t = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let j = 0; j <= i; j++) t[j * n + i] = x[i * n + j]!;
  if (kernel !== undefined) return Float64Array.from(gram(kernel, t, n, n));
  const out = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j <= i; j++) {
      let s = 0;
      const ti = i * n;
      const tj = j * n;
      for (let k = i; k < n; k++) s += t[ti + k]! * t[tj + k]!;
      out[i * n + j] = s;
      out[j * n + i] = s;
    }
  }
  return out;
}

/** Upper Cholesky factor U with A = U^T U (torch.linalg.cholesky(A, upper=True)). */
export function upperCholesky(
  a: Float64Array,
  n: number,
  what = 'inverse Hessian',
  kernel?: Backend,
): Float64Array {
  const l = cholesky(a, n, what, kernel);
  const u = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let j = 0; j <= i; j++) u[j * n + i] = l[i * n + j]!;
  return u;
}

/**
 * L^-1 for a lower-triangular L. With a `kernel`, recursively by halves: [[A, 0], [C, D]]^-1 =
 * [[A^-1, 0], [-D^-1 C A^-1, D^-1]], the two products on the kernel in f32; blocks of at most 128
 * by forward substitution in float64.
 */
export function lowerTriangularInverse(l: Float64Array, n: number, kernel?: Backend): Float64Array {
  const out = new Float64Array(n * n);
  invertInto(l, n, 0, n, out, kernel);
  return out;
}

/** Writes the inverse of the diagonal block L[k0:k1, k0:k1] into out[k0:k1, k0:k1]. */
function invertInto(l: Float64Array, n: number, k0: number, k1: number, out: Float64Array, kernel?: Backend) {
  const size = k1 - k0;
  if (kernel === undefined || size <= PANEL) {
    // Column c of the inverse by forward substitution, kept as row c of `t` (contiguous loops).
    const t = new Float64Array(size * size);
    for (let c = 0; c < size; c++) {
      for (let i = c; i < size; i++) {
        let s = i === c ? 1 : 0;
        const li = (k0 + i) * n + k0;
        for (let k = c; k < i; k++) s -= l[li + k]! * t[c * size + k]!;
        t[c * size + i] = s / l[li + i]!;
      }
    }
    for (let c = 0; c < size; c++)
      for (let i = c; i < size; i++) out[(k0 + i) * n + k0 + c] = t[c * size + i]!;
    return;
  }
  const mid = k0 + Math.ceil(size / 2 / PANEL) * PANEL;
  invertInto(l, n, k0, mid, out, kernel);
  invertInto(l, n, mid, k1, out, kernel);
  const [n1, n2] = [mid - k0, k1 - mid];
  // C A^-1 = C times ((A^-1)^T)^T; the kernel computes x w^T with w [out, in].
  const c = new Float32Array(n2 * n1);
  for (let i = 0; i < n2; i++) for (let j = 0; j < n1; j++) c[i * n1 + j] = l[(mid + i) * n + k0 + j]!;
  const aInvT = new Float32Array(n1 * n1);
  for (let i = 0; i < n1; i++) for (let j = 0; j <= i; j++) aInvT[j * n1 + i] = out[(k0 + i) * n + k0 + j]!;
  const cA = kernel.linear(c, n2, dense({ rows: n1, cols: n1, values: aInvT }));
  // D^-1 (C A^-1): w = (C A^-1)^T [n1, n2].
  const dInv = new Float32Array(n2 * n2);
  for (let i = 0; i < n2; i++) for (let j = 0; j <= i; j++) dInv[i * n2 + j] = out[(mid + i) * n + mid + j]!;
  const cAT = new Float32Array(n1 * n2);
  for (let i = 0; i < n2; i++) for (let j = 0; j < n1; j++) cAT[j * n2 + i] = cA[i * n1 + j]!;
  const lower = kernel.linear(dInv, n2, dense({ rows: n1, cols: n2, values: cAT }));
  for (let i = 0; i < n2; i++) for (let j = 0; j < n1; j++) out[(mid + i) * n + k0 + j] = -lower[i * n1 + j]!;
}

/**
 * The upper factor U of A^-1 = U^T U, which SparseGPT takes from torch in three steps (cholesky,
 * cholesky_inverse, cholesky(upper=True)), from one factorisation: with J the reversal permutation,
 * J A J = L L^T gives A^-1 = (J L^-1 J)^T (J L^-1 J) with J L^-1 J upper triangular with a positive
 * diagonal, hence the same (unique) U.
 */
export function inverseUpperFactor(
  a: Float64Array,
  n: number,
  what = 'Hessian',
  kernel?: Backend,
): Float64Array {
  const reversed = new Float64Array(n * n);
  for (let i = 0; i < n; i++)
    for (let j = 0; j < n; j++) reversed[i * n + j] = a[(n - 1 - i) * n + n - 1 - j]!;
  const inverse = lowerTriangularInverse(cholesky(reversed, n, what, kernel), n, kernel);
  const u = new Float64Array(n * n);
  for (let i = 0; i < n; i++)
    for (let j = i; j < n; j++) u[i * n + j] = inverse[(n - 1 - i) * n + n - 1 - j]!;
  return u;
}

/**
 * Eigen-decomposition of a symmetric n x n matrix (Householder tridiagonalisation, then the
 * implicit QL algorithm: EISPACK tred2 / tql2). Returns eigenvalues in descending order and the
 * matching unit eigenvectors as the columns of `vectors` (row-major n x n). For SliceGPT's PCA.
 */
export function symmetricEigen(a: Float64Array, n: number): { values: Float64Array; vectors: Float64Array } {
  const V: number[][] = Array.from({ length: n }, (_, i) =>
    Array.from({ length: n }, (_, j) => a[i * n + j]!),
  );
  const d = new Float64Array(n);
  const e = new Float64Array(n);
  for (let j = 0; j < n; j++) d[j] = V[n - 1]![j]!;
  // tred2
  for (let i = n - 1; i > 0; i--) {
    let scale = 0;
    let h = 0;
    for (let k = 0; k < i; k++) scale += Math.abs(d[k]!);
    if (scale === 0) {
      e[i] = d[i - 1]!;
      for (let j = 0; j < i; j++) {
        d[j] = V[i - 1]![j]!;
        V[i]![j] = 0;
        V[j]![i] = 0;
      }
    } else {
      for (let k = 0; k < i; k++) {
        d[k]! /= scale;
        h += d[k]! * d[k]!;
      }
      let f = d[i - 1]!;
      let g = Math.sqrt(h);
      if (f > 0) g = -g;
      e[i] = scale * g;
      h -= f * g;
      d[i - 1] = f - g;
      for (let j = 0; j < i; j++) e[j] = 0;
      for (let j = 0; j < i; j++) {
        f = d[j]!;
        V[j]![i] = f;
        g = e[j]! + V[j]![j]! * f;
        for (let k = j + 1; k <= i - 1; k++) {
          g += V[k]![j]! * d[k]!;
          e[k]! += V[k]![j]! * f;
        }
        e[j] = g;
      }
      f = 0;
      for (let j = 0; j < i; j++) {
        e[j]! /= h;
        f += e[j]! * d[j]!;
      }
      const hh = f / (h + h);
      for (let j = 0; j < i; j++) e[j]! -= hh * d[j]!;
      for (let j = 0; j < i; j++) {
        f = d[j]!;
        g = e[j]!;
        for (let k = j; k <= i - 1; k++) V[k]![j]! -= f * e[k]! + g * d[k]!;
        d[j] = V[i - 1]![j]!;
        V[i]![j] = 0;
      }
    }
    d[i] = h;
  }
  for (let i = 0; i < n - 1; i++) {
    V[n - 1]![i] = V[i]![i]!;
    V[i]![i] = 1;
    const h = d[i + 1]!;
    if (h !== 0) {
      for (let k = 0; k <= i; k++) d[k] = V[k]![i + 1]! / h;
      for (let j = 0; j <= i; j++) {
        let g = 0;
        for (let k = 0; k <= i; k++) g += V[k]![i + 1]! * V[k]![j]!;
        for (let k = 0; k <= i; k++) V[k]![j]! -= g * d[k]!;
      }
    }
    for (let k = 0; k <= i; k++) V[k]![i + 1] = 0;
  }
  for (let j = 0; j < n; j++) {
    d[j] = V[n - 1]![j]!;
    V[n - 1]![j] = 0;
  }
  V[n - 1]![n - 1] = 1;
  e[0] = 0;
  // tql2
  for (let i = 1; i < n; i++) e[i - 1] = e[i]!;
  e[n - 1] = 0;
  let f = 0;
  let tst1 = 0;
  const eps = 2 ** -52;
  for (let l = 0; l < n; l++) {
    tst1 = Math.max(tst1, Math.abs(d[l]!) + Math.abs(e[l]!));
    let m = l;
    while (m < n && Math.abs(e[m]!) > eps * tst1) m++;
    if (m > l) {
      do {
        let g = d[l]!;
        let p = (d[l + 1]! - g) / (2 * e[l]!);
        let r = Math.hypot(p, 1);
        if (p < 0) r = -r;
        d[l] = e[l]! / (p + r);
        d[l + 1] = e[l]! * (p + r);
        const dl1 = d[l + 1]!;
        let h = g - d[l]!;
        for (let i = l + 2; i < n; i++) d[i]! -= h;
        f += h;
        p = d[m]!;
        let c = 1;
        let c2 = c;
        let c3 = c;
        const el1 = e[l + 1]!;
        let s = 0;
        let s2 = 0;
        for (let i = m - 1; i >= l; i--) {
          c3 = c2;
          c2 = c;
          s2 = s;
          g = c * e[i]!;
          h = c * p;
          r = Math.hypot(p, e[i]!);
          e[i + 1] = s * r;
          s = e[i]! / r;
          c = p / r;
          p = c * d[i]! - s * g;
          d[i + 1] = h + s * (c * g + s * d[i]!);
          for (let k = 0; k < n; k++) {
            h = V[k]![i + 1]!;
            V[k]![i + 1] = s * V[k]![i]! + c * h;
            V[k]![i] = c * V[k]![i]! - s * h;
          }
        }
        p = (-s * s2 * c3 * el1 * e[l]!) / dl1;
        e[l] = s * p;
        d[l] = c * p;
      } while (Math.abs(e[l]!) > eps * tst1);
    }
    d[l] = d[l]! + f;
    e[l] = 0;
  }
  const order = Array.from({ length: n }, (_, i) => i).sort((x, y) => d[y]! - d[x]!);
  const values = Float64Array.from(order, (i) => d[i]!);
  const vectors = new Float64Array(n * n);
  for (let r = 0; r < n; r++) for (let c = 0; c < n; c++) vectors[r * n + c] = V[r]![order[c]!]!;
  return { values, vectors };
}
