// Measurements of a pruned layer, counted from the data.

/**
 * PQ Index (Diao et al., 2023) with p = 1, q = 2: 1 - d^(1/q - 1/p) ||w||_1 / ||w||_2, in [0, 1);
 * 0 for a vector of equal magnitudes, near 1 when a few entries dominate (sparser).
 */
export function pqIndex(values: ArrayLike<number>): number {
  let l1 = 0;
  let l2 = 0;
  for (let i = 0; i < values.length; i++) {
    l1 += Math.abs(values[i]!);
    l2 += values[i]! * values[i]!;
  }
  if (l2 === 0) return 0;
  return 1 - (values.length ** (0.5 - 1) * l1) / Math.sqrt(l2);
}

/**
 * sum over calibration tokens of ||x (W - W')^T||^2, from SparseGPT's H = (2/n) X^T X:
 * (n / 2) sum_r d_r H d_r^T with d = W - W'.
 */
export function reconstructionError(
  before: ArrayLike<number>,
  after: ArrayLike<number>,
  rows: number,
  cols: number,
  hessian: Float64Array,
  samples: number,
): number {
  let total = 0;
  const d = new Float64Array(cols);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) d[c] = before[r * cols + c]! - after[r * cols + c]!;
    for (let i = 0; i < cols; i++) {
      if (d[i] === 0) continue;
      let s = 0;
      for (let j = 0; j < cols; j++) s += hessian[i * cols + j]! * d[j]!;
      total += d[i]! * s;
    }
  }
  return (samples / 2) * total;
}
