import { dense } from '@sparsekit/sparse-formats';
import type { ModelConfig } from '../config.js';
import type { KvCache } from './kv-cache.js';
import type { LinearKernel } from './linear.js';
import { applyRope } from './ops.js';

/** From this many new tokens per sequence, the score and value products run on the kernel. */
const KERNEL_MIN_SEQ = 8;

/**
 * Causal multi-head (or grouped-query) attention for `batch` sequences of `seq` new tokens that follow
 * `cache.length` cached positions. q [batch * seq, heads * headDim], k and v
 * [batch * seq, kvHeads * headDim] are the projections of the new tokens (rotary positions are
 * applied here when the model has them). k and v are appended to the cache; the result is
 * [batch * seq, heads * headDim], before the output projection. With a `kernel` and at least
 * KERNEL_MIN_SEQ new tokens (a prefill, a calibration or evaluation pass), the products Q K^T and
 * P V run on it, one pair per sequence and key/value head; decoding single tokens stays in loops.
 */
export function attend(
  config: ModelConfig,
  layer: number,
  q: Float32Array,
  k: Float32Array,
  v: Float32Array,
  batch: number,
  seq: number,
  cache: KvCache,
  rope: { cos: Float32Array; sin: Float32Array } | undefined,
  kernel?: LinearKernel,
): Float32Array {
  const { numHeads, numKvHeads, headDim } = config;
  const start = cache.length;
  const group = numHeads / numKvHeads;
  const keys = cache.keys[layer]!;
  const values = cache.values[layer]!;
  const qWidth = numHeads * headDim;
  const kvWidth = numKvHeads * headDim;
  if (rope !== undefined) {
    for (let t = 0; t < batch * seq; t++) {
      const p = start + (t % seq);
      for (let h = 0; h < numHeads; h++)
        applyRope(q, t * qWidth + h * headDim, headDim, p, rope.cos, rope.sin);
      for (let h = 0; h < numKvHeads; h++)
        applyRope(k, t * kvWidth + h * headDim, headDim, p, rope.cos, rope.sin);
    }
  }
  for (let b = 0; b < batch; b++) {
    for (let s = 0; s < seq; s++) {
      const t = b * seq + s;
      for (let h = 0; h < numKvHeads; h++) {
        const at = cache.offset(b, h, start + s);
        keys.set(k.subarray(t * kvWidth + h * headDim, t * kvWidth + (h + 1) * headDim), at);
        values.set(v.subarray(t * kvWidth + h * headDim, t * kvWidth + (h + 1) * headDim), at);
      }
    }
  }
  if (kernel !== undefined && seq >= KERNEL_MIN_SEQ) {
    return attendOnKernel(config, q, keys, values, batch, seq, start, cache, kernel);
  }
  const out = new Float32Array(batch * seq * qWidth);
  const scale = 1 / Math.sqrt(headDim);
  const scores = new Float64Array(start + seq);
  // The query row (scaled) and the weighted sum of values, in float64 locals.
  const query = new Float64Array(headDim);
  const acc = new Float64Array(headDim);
  for (let b = 0; b < batch; b++) {
    for (let h = 0; h < numHeads; h++) {
      const kvHead = Math.floor(h / group);
      const base = cache.offset(b, kvHead, 0);
      for (let s = 0; s < seq; s++) {
        const qOffset = (b * seq + s) * qWidth + h * headDim;
        for (let d = 0; d < headDim; d++) query[d] = q[qOffset + d]! * scale;
        const visible = start + s + 1;
        let max = Number.NEGATIVE_INFINITY;
        for (let p = 0; p < visible; p++) {
          let dot = 0;
          const kOffset = base + p * headDim;
          for (let d = 0; d < headDim; d++) dot += query[d]! * keys[kOffset + d]!;
          scores[p] = dot;
          if (dot > max) max = dot;
        }
        let sum = 0;
        acc.fill(0);
        for (let p = 0; p < visible; p++) {
          const weight = Math.exp(scores[p]! - max);
          sum += weight;
          const vOffset = base + p * headDim;
          for (let d = 0; d < headDim; d++) acc[d]! += weight * values[vOffset + d]!;
        }
        for (let d = 0; d < headDim; d++) out[qOffset + d] = acc[d]! / sum;
      }
    }
  }
  return out;
}

/**
 * The same attention with its products on `kernel` (f32): for each sequence and key/value head, the
 * group's scaled queries [group * seq, headDim] times the cached keys [total, headDim]^T give the
 * scores; a causal softmax per row (in float64) gives P; P times the values gives the output.
 */
function attendOnKernel(
  config: ModelConfig,
  q: Float32Array,
  keys: Float32Array,
  values: Float32Array,
  batch: number,
  seq: number,
  start: number,
  cache: KvCache,
  kernel: LinearKernel,
): Float32Array {
  const { numHeads, numKvHeads, headDim } = config;
  const group = numHeads / numKvHeads;
  const qWidth = numHeads * headDim;
  const total = start + seq;
  const rows = group * seq;
  const scale = 1 / Math.sqrt(headDim);
  const out = new Float32Array(batch * seq * qWidth);
  const queries = new Float32Array(rows * headDim);
  const valuesT = new Float32Array(headDim * total);
  for (let b = 0; b < batch; b++) {
    for (let g = 0; g < numKvHeads; g++) {
      const base = cache.offset(b, g, 0);
      for (let i = 0; i < group; i++) {
        const h = g * group + i;
        for (let s = 0; s < seq; s++) {
          const from = (b * seq + s) * qWidth + h * headDim;
          const to = (i * seq + s) * headDim;
          for (let d = 0; d < headDim; d++) queries[to + d] = q[from + d]! * scale;
        }
      }
      const k = dense({ rows: total, cols: headDim, values: keys.subarray(base, base + total * headDim) });
      const scores = kernel.linear(queries, rows, k);
      for (let r = 0; r < rows; r++) {
        const row = r * total;
        const visible = start + (r % seq) + 1;
        let max = Number.NEGATIVE_INFINITY;
        for (let p = 0; p < visible; p++) if (scores[row + p]! > max) max = scores[row + p]!;
        let sum = 0;
        for (let p = 0; p < visible; p++) {
          const e = Math.exp(scores[row + p]! - max);
          scores[row + p] = e;
          sum += e;
        }
        for (let p = 0; p < visible; p++) scores[row + p] = scores[row + p]! / sum;
        scores.fill(0, row + visible, row + total);
      }
      for (let p = 0; p < total; p++) {
        for (let d = 0; d < headDim; d++) valuesT[d * total + p] = values[base + p * headDim + d]!;
      }
      const o = kernel.linear(scores, rows, dense({ rows: headDim, cols: total, values: valuesT }));
      for (let i = 0; i < group; i++) {
        const h = g * group + i;
        for (let s = 0; s < seq; s++) {
          const to = (b * seq + s) * qWidth + h * headDim;
          out.set(o.subarray((i * seq + s) * headDim, (i * seq + s + 1) * headDim), to);
        }
      }
    }
  }
  return out;
}
