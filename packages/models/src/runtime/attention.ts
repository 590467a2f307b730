import type { ModelConfig } from '../config.js';
import type { KvCache } from './kv-cache.js';
import { applyRope } from './ops.js';

/**
 * Causal multi-head (or grouped-query) attention for `batch` sequences of `seq` new tokens that follow
 * `cache.length` cached positions. q [batch * seq, heads * headDim], k and v
 * [batch * seq, kvHeads * headDim] are the projections of the new tokens (rotary positions are
 * applied here when the model has them). k and v are appended to the cache; the result is
 * [batch * seq, heads * headDim], before the output projection.
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
  const out = new Float32Array(batch * seq * qWidth);
  const scale = 1 / Math.sqrt(headDim);
  const scores = new Float64Array(start + seq);
  for (let b = 0; b < batch; b++) {
    for (let h = 0; h < numHeads; h++) {
      const kvHead = Math.floor(h / group);
      const base = cache.offset(b, kvHead, 0);
      for (let s = 0; s < seq; s++) {
        const qOffset = (b * seq + s) * qWidth + h * headDim;
        const visible = start + s + 1;
        let max = Number.NEGATIVE_INFINITY;
        for (let p = 0; p < visible; p++) {
          let dot = 0;
          const kOffset = base + p * headDim;
          for (let d = 0; d < headDim; d++) dot += q[qOffset + d]! * keys[kOffset + d]!;
          scores[p] = dot * scale;
          if (scores[p]! > max) max = scores[p]!;
        }
        let sum = 0;
        for (let p = 0; p < visible; p++) {
          scores[p] = Math.exp(scores[p]! - max);
          sum += scores[p]!;
        }
        for (let p = 0; p < visible; p++) {
          const weight = scores[p]! / sum;
          const vOffset = base + p * headDim;
          for (let d = 0; d < headDim; d++) out[qOffset + d]! += weight * values[vOffset + d]!;
        }
      }
    }
  }
  return out;
}
