// Selection by rank: the k-th smallest value (quickselect) and the lowest-scoring entries, ties to
// the lower index. Mask selection in the pruners, thresholds and top-k in the activation methods,
// the heaviest pages and tokens of the KV policies.
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
  return selectInPlace(Float64Array.from(values), k);
}

/** Quickselect on `a` itself (reordered): its k-th smallest value. */
function selectInPlace(a: Float64Array, k: number): number {
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

/**
 * The indices of the `k` highest of `scores[0, n)` (ties to the lower index, NaN lowest), ascending:
 * the first k of a stable descending sort, in expected linear time (one quickselect, two passes).
 */
export function highestIndices(scores: ArrayLike<number>, k: number, n = scores.length): Int32Array {
  if (k >= n) return Int32Array.from({ length: Math.max(0, n) }, (_, i) => i);
  if (k <= 0) return new Int32Array(0);
  const value = (i: number) => {
    const v = scores[i]!;
    return Number.isNaN(v) ? Number.NEGATIVE_INFINITY : v;
  };
  const negated = new Float64Array(n);
  for (let i = 0; i < n; i++) negated[i] = -value(i);
  const threshold = -selectInPlace(negated, k - 1);
  let above = 0;
  for (let i = 0; i < n; i++) if (value(i) > threshold) above++;
  let ties = k - above;
  const out = new Int32Array(k);
  let o = 0;
  for (let i = 0; i < n && o < k; i++) {
    const v = value(i);
    if (v > threshold) out[o++] = i;
    else if (v === threshold && ties > 0) {
      out[o++] = i;
      ties--;
    }
  }
  return out;
}
