import type { AttentionArgs } from '@sparsekit/sparse-formats';
import { attentionWeights, weightedValues } from '@sparsekit/sparse-formats';
import type { ModelConfig } from '../config.js';
import type { KvCache } from './kv-cache.js';
import { applyRope } from './ops.js';
import { hookAt, type Pass } from './pass.js';
import type { Steps } from './steps.js';

/**
 * Multi-head (or grouped-query) attention for `batch` sequences of `seq` new tokens that follow the
 * cached ones. q [batch * seq, heads * headDim], k and v [batch * seq, kvHeads * headDim] are the
 * projections of the new tokens (rotary positions are applied here when the model has them). k and
 * v are appended to the cache; the result is [batch * seq, heads * headDim], before the output
 * projection. Each (sequence, key/value head) lane is one `attention` operation of the backend; at
 * decode (one new token) a `KvPolicy` may choose the entries it reads, and after the step the entries
 * to evict.
 */
export function* attendSteps(
  config: ModelConfig,
  layer: number,
  q: Float32Array,
  k: Float32Array,
  v: Float32Array,
  cache: KvCache,
  rope: { cos: Float32Array; sin: Float32Array } | undefined,
  call: Pass,
  block: number,
): Steps<Float32Array> {
  const { numHeads, numKvHeads, headDim } = config;
  const { batch, seq } = call;
  const start = cache.length;
  const group = numHeads / numKvHeads;
  const qWidth = numHeads * headDim;
  const kvWidth = numKvHeads * headDim;
  const shifted = cache.positionMode === 'shifted';
  const scale = attentionScale(config, block);
  if (rope !== undefined && !shifted) {
    for (let t = 0; t < batch * seq; t++) {
      const p = start + (t % seq);
      for (let h = 0; h < numHeads; h++)
        applyRope(q, t * qWidth + h * headDim, headDim, p, rope.cos, rope.sin);
      for (let h = 0; h < numKvHeads; h++)
        applyRope(k, t * kvWidth + h * headDim, headDim, p, rope.cos, rope.sin);
    }
    q = hookAt(call, 'attention.q.rotated', block, q);
    k = hookAt(call, 'attention.k.rotated', block, k);
  }
  if (shifted && rope !== undefined) {
    // Queries take the index their token gets in each lane (StreamingLLM's positions in the cache).
    for (let t = 0; t < batch * seq; t++) {
      const b = Math.floor(t / seq);
      for (let h = 0; h < numHeads; h++) {
        const p = cache.positionOf(layer, b, Math.floor(h / group), t % seq);
        applyRope(q, t * qWidth + h * headDim, headDim, p, rope.cos, rope.sin);
      }
    }
    q = hookAt(call, 'attention.q.rotated', block, q);
  }
  for (let b = 0; b < batch; b++) {
    for (let s = 0; s < seq; s++) {
      const t = b * seq + s;
      for (let h = 0; h < numKvHeads; h++) {
        const from = t * kvWidth + h * headDim;
        cache.append(
          layer,
          b,
          h,
          k.subarray(from, from + headDim),
          v.subarray(from, from + headDim),
          start + s,
        );
      }
    }
  }
  const out = new Float32Array(batch * seq * qWidth);
  const probsHooked = call.hooked && call.hooks.some((h) => h?.has('attention.probs') === true);
  const policy = call.kvPolicy;
  const queries = new Float32Array(group * seq * headDim);
  for (let b = 0; b < batch; b++) {
    for (let g = 0; g < numKvHeads; g++) {
      const lane = cache.lane(layer, b, g);
      const total = lane.length;
      // One new token: the group's queries and outputs are contiguous [group, 1, headDim] views.
      const direct = seq === 1 && !probsHooked;
      const at = b * qWidth + g * group * headDim;
      // Otherwise the group's queries are gathered as [group, seq, headDim].
      for (let i = 0; !direct && i < group; i++) {
        const h = g * group + i;
        for (let s = 0; s < seq; s++) {
          const from = (b * seq + s) * qWidth + h * headDim;
          queries.set(q.subarray(from, from + headDim), (i * seq + s) * headDim);
        }
      }
      const groupQueries = direct ? q.subarray(at, at + group * headDim) : queries;
      const query = { q: groupQueries, heads: group, seq, position: start, block };
      let mask = call.mask;
      if (seq === 1 && policy?.select !== undefined) {
        const chosen = policy.select(lane, query);
        if (chosen !== undefined) mask = { kind: 'positions', positions: chosen };
      }
      const groupKeys =
        shifted && rope !== undefined ? rotatedKeys(lane.keys, total, headDim, rope) : lane.keys;
      let o: Float32Array;
      const args: AttentionArgs = {
        q: groupQueries,
        heads: group,
        seq,
        headDim,
        keys: groupKeys,
        values: lane.values,
        keyLength: total,
        queryOffset: total - seq,
      };
      if (mask !== undefined) args.mask = mask;
      if (scale !== undefined) args.scale = scale;
      if (probsHooked) {
        let probs = attentionWeights(args);
        probs = hookAt(call, 'attention.probs', block, probs, { sequence: b, kvHead: g }, [
          group,
          seq,
          total,
        ]);
        o = weightedValues(probs, lane.values, group * seq, headDim, total);
      } else {
        if (direct) args.out = out.subarray(at, at + group * headDim);
        o = yield { op: 'attention', args };
        if (direct) {
          // A backend that returned a new array instead of filling `out`: copy it in.
          if (o.buffer !== out.buffer || o.byteOffset !== out.byteOffset + at * 4) out.set(o, at);
        }
      }
      if (!direct) {
        for (let i = 0; i < group; i++) {
          const h = g * group + i;
          for (let s = 0; s < seq; s++) {
            const to = (b * seq + s) * qWidth + h * headDim;
            out.set(o.subarray((i * seq + s) * headDim, (i * seq + s + 1) * headDim), to);
          }
        }
      }
      const evicted = policy?.evict?.(lane, query);
      if (evicted !== undefined && evicted.length > 0) cache.evict(layer, b, g, evicted);
    }
  }
  return out;
}

/**
 * The score scale of block `block` when it is not the default 1 / sqrt(headDim): GPT-2's
 * `scale_attn_weights: false` (no 1 / sqrt(headDim)) and `scale_attn_by_inverse_layer_idx`
 * (divided by block + 1).
 */
function attentionScale(config: ModelConfig, block: number): number | undefined {
  if (config.unscaledAttention !== true && config.scaleByInverseLayer !== true) return undefined;
  const base = config.unscaledAttention === true ? 1 : 1 / Math.sqrt(config.headDim);
  return config.scaleByInverseLayer === true ? base / (block + 1) : base;
}

/** Keys [total, dim] rotated by their index in the lane (shifted positions). */
function rotatedKeys(
  keys: Float32Array,
  total: number,
  dim: number,
  rope: { cos: Float32Array; sin: Float32Array },
): Float32Array {
  const out = keys.slice(0, total * dim);
  for (let p = 0; p < total; p++) applyRope(out, p * dim, dim, p, rope.cos, rope.sin);
  return out;
}
