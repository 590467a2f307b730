/** Plain, obviously-correct dense reference: C[m,n] = A[m,k] * B[k,n] in float64 accumulation. */
export function denseMatmul(
  a: ArrayLike<number>,
  b: ArrayLike<number>,
  m: number,
  k: number,
  n: number,
): Float64Array {
  const c = new Float64Array(m * n);
  for (let i = 0; i < m; i++) {
    for (let p = 0; p < k; p++) {
      const av = a[i * k + p]!;
      if (av === 0) continue;
      for (let j = 0; j < n; j++) c[i * n + j]! += av * b[p * n + j]!;
    }
  }
  return c;
}

/** Transpose a row-major [rows, cols] array. */
export function transposeDense(a: ArrayLike<number>, rows: number, cols: number): Float64Array {
  const t = new Float64Array(rows * cols);
  for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) t[j * rows + i] = a[i * cols + j]!;
  return t;
}

/**
 * The first `kept` columns of a random orthogonal n x n matrix, row-major [n, kept] (Gram-Schmidt
 * on samples of `normal`, a standard normal sampler such as a seeded `Rng`'s).
 */
export function randomOrthonormal(normal: () => number, n: number, kept: number): Float32Array {
  const cols: Float64Array[] = [];
  while (cols.length < kept) {
    const v = Float64Array.from({ length: n }, normal);
    for (const c of cols) {
      let d = 0;
      for (let i = 0; i < n; i++) d += c[i]! * v[i]!;
      for (let i = 0; i < n; i++) v[i]! -= d * c[i]!;
    }
    const norm = Math.hypot(...v);
    if (norm > 1e-6) cols.push(v.map((x) => x / norm));
  }
  const q = new Float32Array(n * kept);
  for (let i = 0; i < n; i++) for (let j = 0; j < kept; j++) q[i * kept + j] = cols[j]![i]!;
  return q;
}
