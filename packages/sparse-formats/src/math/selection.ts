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
 * the first k of a stable descending sort, in expected linear time. Long inputs first keep the
 * candidates above a threshold estimated from an evenly spaced sample (set a little low, so that
 * they hold the k highest), then select among those; if the sample misled, the whole input is used.
 */
export function highestIndices(scores: ArrayLike<number>, k: number, n = scores.length): Int32Array {
  if (k >= n) return Int32Array.from({ length: Math.max(0, n) }, (_, i) => i);
  if (k <= 0) return new Int32Array(0);
  if (n >= 4096 && k <= n / 4) {
    const sample = 1024;
    const taken = new Float64Array(sample);
    for (let i = 0; i < sample; i++) taken[i] = -valueAt(scores, Math.floor((i * n) / sample));
    const rank = Math.min(sample - 1, Math.ceil((k / n) * sample + 4 * Math.sqrt((k / n) * sample) + 8));
    const low = -selectInPlace(taken, rank);
    const candidates = new Int32Array(n);
    let count = 0;
    for (let i = 0; i < n; i++) if (valueAt(scores, i) >= low) candidates[count++] = i;
    if (count >= k) return highestAmong(scores, candidates.subarray(0, count), k);
  }
  return highestAmong(scores, undefined, k, n);
}

function valueAt(scores: ArrayLike<number>, i: number): number {
  const v = scores[i]!;
  return Number.isNaN(v) ? Number.NEGATIVE_INFINITY : v;
}

/** The k highest among `candidates` (ascending indices), or among [0, n) when none are given. */
function highestAmong(
  scores: ArrayLike<number>,
  candidates: Int32Array | undefined,
  k: number,
  n = 0,
): Int32Array {
  const m = candidates?.length ?? n;
  const at = (c: number) => (candidates === undefined ? c : candidates[c]!);
  const negated = new Float64Array(m);
  for (let c = 0; c < m; c++) negated[c] = -valueAt(scores, at(c));
  const threshold = -selectInPlace(negated, k - 1);
  let above = 0;
  for (let c = 0; c < m; c++) if (valueAt(scores, at(c)) > threshold) above++;
  let ties = k - above;
  const out = new Int32Array(k);
  let o = 0;
  for (let c = 0; c < m && o < k; c++) {
    const i = at(c);
    const v = valueAt(scores, i);
    if (v > threshold) out[o++] = i;
    else if (v === threshold && ties > 0) {
      out[o++] = i;
      ties--;
    }
  }
  return out;
}
