// Selection by rank: the k-th smallest value (quickselect) and the lowest-scoring entries, ties to
// the lower index. Mask selection in the pruners, thresholds and top-k in the activation methods.
import { InvalidArgumentError } from '@sparsekit/core';

/**
 * The k-th smallest of `values` (k from 0), the value `Float64Array.from(values).sort()[k]` gives, by
 * quickselect (Hoare partition, median-of-three pivot) on a copy: expected linear time instead of a
 * sort. `values` must hold no NaN.
 */
export function kthSmallest(values: ArrayLike<number>, k: number): number {
  if (!(Number.isInteger(k) && k >= 0 && k < values.length)) {
    throw new InvalidArgumentError('k', k, `must be an index into the ${values.length} values`);
  }
  const a = Float64Array.from(values);
  let lo = 0;
  let hi = a.length - 1;
  while (lo < hi) {
    const x = a[lo]!;
    const y = a[(lo + hi) >>> 1]!;
    const pivot = Math.max(Math.min(x, y), Math.min(Math.max(x, y), a[hi]!)); // median of three
    let i = lo;
    let j = hi;
    while (i <= j) {
      while (a[i]! < pivot) i++;
      while (a[j]! > pivot) j--;
      if (i <= j) {
        const t = a[i]!;
        a[i] = a[j]!;
        a[j] = t;
        i++;
        j--;
      }
    }
    // Now a[lo..j] <= pivot <= a[i..hi], and every entry strictly between j and i equals the pivot.
    if (k <= j) hi = j;
    else if (k >= i) lo = i;
    else return a[k]!;
  }
  return a[k]!;
}

/**
 * Mark in `mask` (from `offset`) the `count` lowest of `scores`, ties to the lower index (the first
 * `count` of a stable ascending sort): every score below the count-th smallest, then the scores
 * equal to it in index order.
 */
export function markLowest(scores: Float64Array, count: number, mask: Uint8Array, offset = 0): void {
  if (count <= 0) return;
  const threshold = kthSmallest(scores, Math.min(count, scores.length) - 1);
  let marked = 0;
  for (let c = 0; c < scores.length; c++) {
    if (scores[c]! < threshold) {
      mask[offset + c] = 1;
      marked++;
    }
  }
  for (let c = 0; c < scores.length && marked < count; c++) {
    if (scores[c] === threshold) {
      mask[offset + c] = 1;
      marked++;
    }
  }
}

/** The indices of the `count` lowest of `scores` (ties to the lower index), ascending. */
export function lowestIndices(scores: ArrayLike<number>, count: number): number[] {
  const mask = new Uint8Array(scores.length);
  markLowest(Float64Array.from(scores), count, mask);
  const out: number[] = [];
  for (let i = 0; i < mask.length; i++) if (mask[i] === 1) out.push(i);
  return out;
}
