import { type HookContext, type HookSite, type Hooks, runHooks } from '@sparsekit/core';
import type { AttentionArgs, AttentionMask } from '@sparsekit/sparse-formats';
import { keySegments } from '@sparsekit/sparse-formats';
import type { ModelConfig } from '../config.js';
import type { KvCache } from './kv-cache.js';
import { applyRope } from './ops.js';
import type { Steps } from './steps.js';

/** What one attention call sees: the hooks and the call's shape (a block's `Pass`). */
export interface AttentionCall {
  hooks: readonly (Hooks | undefined)[];
  /** Whether any of `hooks` holds a hook. */
  hooked: boolean;
  batch: number;
  seq: number;
  /** Absolute position of the call's first token. */
  position: number;
  /** Which keys each query reads (default causal). */
  mask?: AttentionMask;
}

function hook(
  call: AttentionCall,
  block: number,
  site: HookSite,
  data: Float32Array,
  width: number,
): Float32Array {
  if (!call.hooked) return data;
  return runHooks(
    call.hooks,
    data,
    [call.batch, call.seq, width],
    (): HookContext => ({
      site,
      block,
      batch: call.batch,
      seq: call.seq,
      position: call.position,
    }),
    site,
  );
}

/**
 * Multi-head (or grouped-query) attention for `batch` sequences of `seq` new tokens that follow
 * `cache.length` cached positions. q [batch * seq, heads * headDim], k and v
 * [batch * seq, kvHeads * headDim] are the projections of the new tokens (rotary positions are
 * applied here when the model has them). k and v are appended to the cache; the result is
 * [batch * seq, heads * headDim], before the output projection. Each (sequence, key/value head)
 * pair is one `attention` operation of the backend.
 */
export function* attendSteps(
  config: ModelConfig,
  layer: number,
  q: Float32Array,
  k: Float32Array,
  v: Float32Array,
  cache: KvCache,
  rope: { cos: Float32Array; sin: Float32Array } | undefined,
  call: AttentionCall,
  block: number,
): Steps<Float32Array> {
  const { numHeads, numKvHeads, headDim } = config;
  const { batch, seq } = call;
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
    q = hook(call, block, 'attention.q.rotated', q, qWidth);
    k = hook(call, block, 'attention.k.rotated', k, kvWidth);
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
  const total = start + seq;
  const out = new Float32Array(batch * seq * qWidth);
  const probsHooked = call.hooked && call.hooks.some((h) => h?.has('attention.probs') === true);
  const queries = new Float32Array(group * seq * headDim);
  for (let b = 0; b < batch; b++) {
    const probs = probsHooked ? new Float32Array(numHeads * seq * total) : undefined;
    for (let g = 0; g < numKvHeads; g++) {
      // One new token: the group's queries and outputs are contiguous [group, 1, headDim] views.
      const direct = seq === 1 && probs === undefined;
      const at = b * qWidth + g * group * headDim;
      // Otherwise the group's queries are gathered as [group, seq, headDim].
      for (let i = 0; !direct && i < group; i++) {
        const h = g * group + i;
        for (let s = 0; s < seq; s++) {
          const from = (b * seq + s) * qWidth + h * headDim;
          queries.set(q.subarray(from, from + headDim), (i * seq + s) * headDim);
        }
      }
      const base = cache.offset(b, g, 0);
      const groupKeys = keys.subarray(base, base + total * headDim);
      const groupValues = values.subarray(base, base + total * headDim);
      let o: Float32Array;
      if (probs !== undefined) {
        o = weightedValues(
          probabilities(queries, groupKeys, group, seq, headDim, total, start, call.mask, probs, g * group),
          groupValues,
          group,
          seq,
          headDim,
          total,
        );
      } else {
        const args: AttentionArgs = {
          q: direct ? q.subarray(at, at + group * headDim) : queries,
          heads: group,
          seq,
          headDim,
          keys: groupKeys,
          values: groupValues,
          keyLength: total,
          queryOffset: start,
        };
        if (call.mask !== undefined) args.mask = call.mask;
        if (direct) args.out = out.subarray(at, at + group * headDim);
        o = yield { op: 'attention', args };
        if (direct) {
          // A backend that returned a new array instead of filling `out`: copy it in.
          if (o.buffer !== out.buffer || o.byteOffset !== out.byteOffset + at * 4) out.set(o, at);
          continue;
        }
      }
      for (let i = 0; i < group; i++) {
        const h = g * group + i;
        for (let s = 0; s < seq; s++) {
          const to = (b * seq + s) * qWidth + h * headDim;
          out.set(o.subarray((i * seq + s) * headDim, (i * seq + s + 1) * headDim), to);
        }
      }
    }
    if (probs !== undefined) {
      // The outputs above came from these weights; a replacement recomputes them.
      const seen = runHooks(
        call.hooks,
        probs,
        [numHeads, seq, total],
        () => ({ ...contextOf(call, block), site: 'attention.probs', sequence: b }),
        'attention.probs',
      );
      if (seen !== probs) replaceProbabilities(seen, values, cache, b, config, seq, total, out);
    }
  }
  return out;
}

function contextOf(call: AttentionCall, block: number): Omit<HookContext, 'site'> {
  return { block, batch: call.batch, seq: call.seq, position: call.position };
}

/**
 * Softmax weights of `heads` queries [heads, seq, dim] over the keys each may read, written into
 * `probs` [allHeads, seq, total] at head `firstHead` (float64 arithmetic, as the loop path of the
 * attention op); returns the group's rows.
 */
function probabilities(
  q: Float32Array,
  keys: Float32Array,
  heads: number,
  seq: number,
  dim: number,
  total: number,
  start: number,
  mask: AttentionMask | undefined,
  probs: Float32Array,
  firstHead: number,
): Float32Array {
  const scale = 1 / Math.sqrt(dim);
  const segments = new Int32Array(2 * (total + 2));
  const scores = new Float64Array(total);
  const m = mask ?? { kind: 'causal' as const };
  for (let s = 0; s < seq; s++) {
    const count = keySegments(m, start + s, total, segments);
    for (let h = 0; h < heads; h++) {
      let max = Number.NEGATIVE_INFINITY;
      scores.fill(Number.NEGATIVE_INFINITY);
      for (let c = 0; c < count; c++) {
        for (let p = segments[2 * c]!; p < segments[2 * c + 1]!; p++) {
          let dot = 0;
          for (let d = 0; d < dim; d++) dot += q[(h * seq + s) * dim + d]! * scale * keys[p * dim + d]!;
          scores[p] = dot;
          if (dot > max) max = dot;
        }
      }
      const row = ((firstHead + h) * seq + s) * total;
      if (max === Number.NEGATIVE_INFINITY) continue;
      let sum = 0;
      for (let p = 0; p < total; p++)
        sum += scores[p] === Number.NEGATIVE_INFINITY ? 0 : Math.exp(scores[p]! - max);
      for (let p = 0; p < total; p++)
        probs[row + p] = scores[p] === Number.NEGATIVE_INFINITY ? 0 : Math.exp(scores[p]! - max) / sum;
    }
  }
  return probs.subarray(firstHead * seq * total, (firstHead + heads) * seq * total);
}

/** out [heads, seq, dim] = P [heads, seq, total] V [total, dim]. */
function weightedValues(
  probs: Float32Array,
  values: Float32Array,
  heads: number,
  seq: number,
  dim: number,
  total: number,
): Float32Array {
  const out = new Float32Array(heads * seq * dim);
  const acc = new Float64Array(dim);
  for (let r = 0; r < heads * seq; r++) {
    acc.fill(0);
    for (let p = 0; p < total; p++) {
      const w = probs[r * total + p]!;
      if (w === 0) continue;
      for (let d = 0; d < dim; d++) acc[d]! += w * values[p * dim + d]!;
    }
    for (let d = 0; d < dim; d++) out[r * dim + d] = acc[d]!;
  }
  return out;
}

/** A hook replaced the probabilities of sequence `b`: recompute its heads' outputs from them. */
function replaceProbabilities(
  probs: Float32Array,
  values: Float32Array,
  cache: KvCache,
  b: number,
  config: ModelConfig,
  seq: number,
  total: number,
  out: Float32Array,
): void {
  const { numHeads, numKvHeads, headDim } = config;
  const group = numHeads / numKvHeads;
  const qWidth = numHeads * headDim;
  for (let g = 0; g < numKvHeads; g++) {
    const base = cache.offset(b, g, 0);
    const o = weightedValues(
      probs.subarray(g * group * seq * total, (g + 1) * group * seq * total),
      values.subarray(base, base + total * headDim),
      group,
      seq,
      headDim,
      total,
    );
    for (let i = 0; i < group; i++) {
      for (let s = 0; s < seq; s++) {
        const to = (b * seq + s) * qWidth + (g * group + i) * headDim;
        out.set(o.subarray((i * seq + s) * headDim, (i * seq + s + 1) * headDim), to);
      }
    }
  }
}
