// The masks of pruning during training, as TensorFlow Model Optimization computes them
// (pruning_impl.py): one magnitude threshold per weight tensor, optionally over pooled blocks, or
// N:M groups along the input axis. Masks here are keep-masks (1 = kept, 0 = pruned), the factor a
// weight is multiplied by; the one-shot pruners' masks mark the pruned entries instead.
import { assertFinite, InvalidArgumentError } from '@sparsekit/core';
import { kthSmallest } from '@sparsekit/sparse-formats';
import { checkNmPattern, checkSparsity, magnitudes } from './masks.js';

export interface ThresholdMaskOptions {
  /** Pool |w| over blocks of [rows, cols] before thresholding (rank-2 weights only; default [1, 1]). */
  blockSize?: readonly [number, number];
  /** How a block's magnitudes pool: 'avg' (default) or 'max'. */
  blockPooling?: 'avg' | 'max';
}

export interface ThresholdMask {
  keep: Float32Array;
  /** The magnitude threshold: everything with |w| (or its block's pooled |w|) >= it is kept. */
  threshold: number;
}

/** Round half to even (tf.round). */
function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/**
 * TFMOT's magnitude mask of `scores` (magnitudes) at `sparsity`: k = max(round(n (1 - s)), 1)
 * values are kept, the threshold is the k-th largest, and every score >= it is kept (so ties keep
 * more, and at least one value always survives). float32 arithmetic, as TFMOT's.
 */
export function thresholdKeep(scores: ArrayLike<number>, sparsity: number): ThresholdMask {
  checkSparsity(sparsity);
  const n = scores.length;
  const keep = new Float32Array(n);
  if (n === 0) return { keep, threshold: 0 };
  const k = Math.max(roundHalfEven(Math.fround(Math.fround(n) * Math.fround(1 - Math.fround(sparsity)))), 1);
  const threshold = kthSmallest(scores, n - Math.min(k, n));
  for (let i = 0; i < n; i++) if (scores[i]! >= threshold) keep[i] = 1;
  return { keep, threshold };
}

/**
 * The keep-mask of a weight tensor (any shape, row-major) at `sparsity`, by magnitude, TFMOT's
 * element-wise rule or its block rule: |w| pooled over blocks anchored at the origin (a partial
 * block at the end pools its valid entries), thresholded, and expanded back.
 */
export function magnitudeKeepMask(
  weight: ArrayLike<number>,
  shape: readonly number[],
  sparsity: number,
  options: ThresholdMaskOptions = {},
): ThresholdMask {
  assertFinite(weight, 'weight');
  const size = shape.reduce((a, b) => a * b, 1);
  if (size !== weight.length)
    throw new InvalidArgumentError(
      'weight shape',
      `[${shape.join(', ')}]`,
      `does not hold ${weight.length} values`,
    );
  const [bh, bw] = options.blockSize ?? [1, 1];
  const pooling = options.blockPooling ?? 'avg';
  if (pooling !== 'avg' && pooling !== 'max')
    throw new InvalidArgumentError('blockPooling', pooling, "must be 'avg' or 'max'");
  if (!(Number.isInteger(bh) && Number.isInteger(bw) && bh >= 1 && bw >= 1))
    throw new InvalidArgumentError('blockSize', `[${bh}, ${bw}]`, 'must be two integers >= 1');
  const abs = magnitudes(weight);
  if (bh === 1 && bw === 1) return thresholdKeep(abs, sparsity);
  if (shape.length !== 2)
    throw new InvalidArgumentError(
      'blockSize',
      `[${bh}, ${bw}]`,
      `block sparsity needs a 2-D weight; this one is [${shape.join(', ')}]`,
    );
  const [H, W] = shape as [number, number];
  const ph = Math.ceil(H / bh);
  const pw = Math.ceil(W / bw);
  const pooled = new Float32Array(ph * pw);
  for (let i = 0; i < ph; i++)
    for (let j = 0; j < pw; j++) {
      let acc = 0;
      let count = 0;
      for (let r = i * bh; r < Math.min(H, (i + 1) * bh); r++)
        for (let c = j * bw; c < Math.min(W, (j + 1) * bw); c++) {
          const v = abs[r * W + c]!;
          acc = pooling === 'max' ? Math.max(acc, v) : acc + v;
          count++;
        }
      pooled[i * pw + j] = pooling === 'max' ? acc : Math.fround(acc / count);
    }
  const blocks = thresholdKeep(pooled, sparsity);
  const keep = new Float32Array(H * W);
  for (let r = 0; r < H; r++)
    for (let c = 0; c < W; c++) keep[r * W + c] = blocks.keep[Math.floor(r / bh) * pw + Math.floor(c / bw)]!;
  return { keep, threshold: blocks.threshold };
}

/**
 * The N:M keep-mask of a kernel whose last two axes are [inputs, outputs] (tfjs-layers' Dense
 * [in, out], Conv2D [h, w, in, out]; an Embedding's [vocab, dim] is read the same way): in every
 * group of M consecutive inputs of one output (and one spatial position), the N largest |w| are
 * kept (ties to the lower index). When the inputs are not a multiple of M the last, shorter group
 * keeps min(N, its length), as TFMOT's zero-padded groups do. TFMOT's `sparsity_m_by_n=(m, n)`
 * counts zeros instead: its (2, 4) is 2:4 here, its (1, 4) is 3:4.
 */
export function nmKeepMask(
  weight: ArrayLike<number>,
  shape: readonly number[],
  n: number,
  m: number,
): Float32Array {
  assertFinite(weight, 'weight');
  checkNmPattern(n, m);
  if (shape.length < 2)
    throw new InvalidArgumentError(
      'weight shape',
      `[${shape.join(', ')}]`,
      'N:M needs a kernel of rank >= 2',
    );
  if (shape.reduce((a, b) => a * b, 1) !== weight.length)
    throw new InvalidArgumentError(
      'weight shape',
      `[${shape.join(', ')}]`,
      `does not hold ${weight.length} values`,
    );
  const inputs = shape.at(-2)!;
  const outputs = shape.at(-1)!;
  const positions = shape.slice(0, -2).reduce((a, b) => a * b, 1);
  const plane = inputs * outputs;
  const keep = new Float32Array(weight.length);
  // Each group's entries ordered by (|w| descending, index ascending) with an insertion sort in one
  // reused buffer: this runs every training step under dynamic N:M training.
  const order = new Int32Array(m);
  for (let p = 0; p < positions; p++)
    for (let o = 0; o < outputs; o++)
      for (let g = 0; g < inputs; g += m) {
        const size = Math.min(m, inputs - g);
        const base = p * plane + g * outputs + o;
        for (let i = 0; i < size; i++) {
          const at = base + i * outputs;
          const v = Math.abs(weight[at]!);
          let j = i;
          for (; j > 0 && Math.abs(weight[order[j - 1]!]!) < v; j--) order[j] = order[j - 1]!;
          order[j] = at;
        }
        for (let i = 0; i < Math.min(n, size); i++) keep[order[i]!] = 1;
      }
  return keep;
}

/**
 * One round of global magnitude pruning over several tensors (open_lth's sparse_global, the
 * lottery-ticket IMP step): of the weights still kept, the `fraction` with the smallest |w| across
 * all tensors are pruned (k = ceil(fraction x remaining); ties at the threshold are pruned too, as
 * open_lth's `<=`). Returns new keep-masks; `keeps` default to all ones.
 */
export function globalMagnitudeKeep(
  weights: readonly ArrayLike<number>[],
  fraction: number,
  keeps?: readonly ArrayLike<number>[],
): Float32Array[] {
  if (!(fraction > 0 && fraction < 1))
    throw new InvalidArgumentError('fraction', fraction, 'must be in (0, 1)');
  if (keeps !== undefined && keeps.length !== weights.length)
    throw new InvalidArgumentError(
      'keeps',
      keeps.length,
      `must hold one mask per weight (${weights.length})`,
    );
  const live: number[] = [];
  weights.forEach((w, t) => {
    assertFinite(w, `weight ${t}`);
    const keep = keeps?.[t];
    if (keep !== undefined && keep.length !== w.length)
      throw new InvalidArgumentError(
        `keeps[${t}]`,
        keep.length,
        `must have the weight's ${w.length} entries`,
      );
    for (let i = 0; i < w.length; i++) if (keep === undefined || keep[i] !== 0) live.push(Math.abs(w[i]!));
  });
  const out = weights.map((w, t) =>
    Float32Array.from({ length: w.length }, (_, i) => (keeps?.[t]?.[i] === 0 ? 0 : 1)),
  );
  const k = Math.ceil(fraction * live.length);
  if (k === 0) return out;
  const threshold = kthSmallest(live, k - 1);
  weights.forEach((w, t) => {
    for (let i = 0; i < w.length; i++) if (out[t]![i] === 1 && Math.abs(w[i]!) <= threshold) out[t]![i] = 0;
  });
  return out;
}

/** The share of exact zeros over several arrays together (masks or weights). */
export function zeroShare(arrays: readonly ArrayLike<number>[]): number {
  let zeros = 0;
  let total = 0;
  for (const a of arrays) {
    total += a.length;
    for (let i = 0; i < a.length; i++) if (a[i] === 0) zeros++;
  }
  return total === 0 ? 0 : zeros / total;
}

export interface KeepMaskOptions extends ThresholdMaskOptions {
  /** N:M (n kept of every m inputs) instead of the magnitude threshold. */
  nm?: readonly [number, number];
}

/** The keep-mask pruning during training uses: N:M when `nm` is given, else TFMOT's magnitude (block) rule at `sparsity`. */
export function trainingKeepMask(
  weight: ArrayLike<number>,
  shape: readonly number[],
  sparsity: number,
  options: KeepMaskOptions = {},
): ThresholdMask {
  if (options.nm !== undefined)
    return { keep: nmKeepMask(weight, shape, options.nm[0], options.nm[1]), threshold: 0 };
  return magnitudeKeepMask(weight, shape, sparsity, options);
}
