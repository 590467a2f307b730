// The geometric median of rows (Weiszfeld's iteration from the mean), as openai/sparse_autoencoder
// and SAELens 5 initialise b_dec: weights 1 / max(||p - m||, 1e-6), at most `iterations` steps,
// stopping when the objective changes by less than `tolerance` of itself.
import { InvalidArgumentError } from '@sparsekit/core';

export function geometricMedian(
  rows: Float32Array,
  width: number,
  options: { iterations?: number; tolerance?: number } = {},
): Float32Array {
  const n = rows.length / width;
  if (!Number.isInteger(n) || n < 1)
    throw new InvalidArgumentError('rows', rows.length, `must hold a positive number of rows of ${width}`);
  const iterations = options.iterations ?? 100;
  const tolerance = options.tolerance ?? 1e-20;
  const m = new Float64Array(width);
  for (let r = 0; r < n; r++) for (let d = 0; d < width; d++) m[d]! += rows[r * width + d]! / n;
  const distances = new Float64Array(n);
  const objective = () => {
    let s = 0;
    for (let r = 0; r < n; r++) {
      let q = 0;
      for (let d = 0; d < width; d++) q += (rows[r * width + d]! - m[d]!) ** 2;
      distances[r] = Math.sqrt(q);
      s += distances[r]!;
    }
    return s;
  };
  let previous = objective();
  for (let it = 0; it < iterations; it++) {
    const next = new Float64Array(width);
    let total = 0;
    for (let r = 0; r < n; r++) {
      const w = 1 / Math.max(distances[r]!, 1e-6);
      total += w;
      for (let d = 0; d < width; d++) next[d]! += w * rows[r * width + d]!;
    }
    for (let d = 0; d < width; d++) m[d] = next[d]! / total;
    const value = objective();
    if (Math.abs(previous - value) <= tolerance * value) break;
    previous = value;
  }
  return Float32Array.from(m);
}
