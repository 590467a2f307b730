// Row-wise softmax and logsumexp in float64 (the router math is done in double precision, like the
// fp32 routers of Switch and Mixtral are done above the model's own precision).

/** softmax over each row of [rows, cols]. */
export function softmaxRows(logits: ArrayLike<number>, rows: number, cols: number): Float64Array {
  const out = new Float64Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    let max = Number.NEGATIVE_INFINITY;
    for (let c = 0; c < cols; c++) max = Math.max(max, logits[r * cols + c]!);
    let sum = 0;
    for (let c = 0; c < cols; c++) {
      const v = Math.exp(logits[r * cols + c]! - max);
      out[r * cols + c] = v;
      sum += v;
    }
    for (let c = 0; c < cols; c++) out[r * cols + c]! /= sum;
  }
  return out;
}

/** log(sum(exp(row))) of each row of [rows, cols]. */
export function logsumexpRows(logits: ArrayLike<number>, rows: number, cols: number): Float64Array {
  const out = new Float64Array(rows);
  for (let r = 0; r < rows; r++) {
    let max = Number.NEGATIVE_INFINITY;
    for (let c = 0; c < cols; c++) max = Math.max(max, logits[r * cols + c]!);
    let sum = 0;
    for (let c = 0; c < cols; c++) sum += Math.exp(logits[r * cols + c]! - max);
    out[r] = max + Math.log(sum);
  }
  return out;
}

/**
 * The indices of the k largest of `values[offset .. offset + n)`, largest first; ties go to the lower
 * index (a stable sort, descending).
 */
export function topIndices(values: ArrayLike<number>, offset: number, n: number, k: number): number[] {
  const order = Array.from({ length: n }, (_, i) => i);
  order.sort((a, b) => values[offset + b]! - values[offset + a]! || a - b);
  return order.slice(0, k);
}
