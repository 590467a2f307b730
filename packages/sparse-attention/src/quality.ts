// Quality of a KV policy against dense attention: a causal LM that decodes every token as one step
// under the policy (so `select` and `evict` act on every prediction, and any perplexity evaluator
// can score it), and a recorder of what each selection keeps: the attention mass of the keys it
// reads (recall) and the relative error of the attention output it gives.
import {
  type CausalLM,
  type DecodingLM,
  InvalidArgumentError,
  type KvLane,
  type KvPolicy,
  type KvQuery,
  type ProgressOptions,
  reportProgress,
  Tensor,
} from '@sparsekit/core';
import { attention } from '@sparsekit/sparse-formats';
import { attentionRecall } from './policies/probabilities.js';

export interface StepwiseOptions {
  /** Tokens of each sequence run at once, densely, before the one-token steps (default 1). */
  prefill?: number;
  /** The cache's position convention (default 'original'; StreamingLLM may use 'shifted'). */
  positions?: 'original' | 'shifted';
  /** The cache's page size (default the model's: 16); Quest's pages are the cache's pages. */
  pageSize?: number;
}

/**
 * `model` as a CausalLM whose logits come from decoding: the first `prefill` tokens in one call, then
 * one token per call under a fresh policy from `makePolicy` (a new policy per `logits` call, as a new
 * generation would have). Position t of the result predicts token t + 1, as `logits` does; with no
 * policy the result equals the model's own logits up to float rounding.
 */
export function decodeStepwise(
  model: DecodingLM,
  makePolicy: () => KvPolicy | undefined,
  options: StepwiseOptions = {},
): CausalLM {
  const prefill = options.prefill ?? 1;
  if (!Number.isInteger(prefill) || prefill < 1)
    throw new InvalidArgumentError('prefill', prefill, 'must be a positive integer');
  return {
    vocabSize: model.vocabSize,
    maxSequenceLength: model.maxSequenceLength,
    logits(tokenIds: Tensor<'i32'>): Tensor<'f32'> {
      const [batch, seq] = tokenIds.shape as [number, number];
      const vocab = model.vocabSize;
      const out = new Float32Array(batch * seq * vocab);
      const cache = model.createCache(batch, {
        ...(options.positions === undefined ? {} : { positions: options.positions }),
        ...(options.pageSize === undefined ? {} : { pageSize: options.pageSize }),
      });
      const policy = makePolicy();
      const run = (from: number, to: number) => {
        const ids = new Int32Array(batch * (to - from));
        for (let b = 0; b < batch; b++)
          ids.set(tokenIds.data.subarray(b * seq + from, b * seq + to), b * (to - from));
        const logits = model.forward(
          new Tensor('i32', [batch, to - from], ids),
          cache,
          policy === undefined ? {} : { kvPolicy: policy },
        ).data;
        for (let b = 0; b < batch; b++)
          out.set(
            logits.subarray(b * (to - from) * vocab, (b + 1) * (to - from) * vocab),
            (b * seq + from) * vocab,
          );
      };
      try {
        run(0, Math.min(prefill, seq));
        for (let t = prefill; t < seq; t++) run(t, t + 1);
      } finally {
        (cache as { dispose?: () => void }).dispose?.();
      }
      return new Tensor('f32', [batch, seq, vocab], out);
    },
  };
}

/** What `recordSelections` measured: means over the decode steps where the policy selected. */
export interface SelectionStats {
  /** Lane steps where `select` chose a subset (others read every entry and are not counted). */
  steps: number;
  /** Mean attention mass of the entries read (1: nothing the queries weigh is left out). */
  recall: number;
  /** Mean ||o_selected - o_dense|| / ||o_dense|| of the attention output over the lane's heads. */
  relativeError: number;
  /** Mean share of the held entries read. */
  density: number;
}

/**
 * Wrap a selection policy so that every subset it chooses is measured against exact attention over
 * all the lane's held entries (float64). Eviction passes through unmeasured: what an evicting policy
 * dropped is gone from the cache, so its quality shows in perplexity instead.
 */
export function recordSelections(
  inner: KvPolicy,
  options: { scale?: number } = {},
): { policy: KvPolicy; stats(): SelectionStats } {
  let steps = 0;
  let recall = 0;
  let error = 0;
  let density = 0;
  const policy: KvPolicy = {
    select(lane: KvLane, query: KvQuery) {
      const chosen = inner.select?.(lane, query);
      if (chosen === undefined || query.seq !== 1) return chosen;
      steps++;
      recall += attentionRecall(lane, query, chosen, options);
      density += chosen.length / lane.length;
      const args = {
        q: query.q,
        heads: query.heads,
        seq: 1,
        headDim: lane.headDim,
        keys: lane.keys,
        values: lane.values,
        keyLength: lane.length,
        ...(options.scale === undefined ? {} : { scale: options.scale }),
      };
      const dense = attention({ ...args, mask: { kind: 'full' } });
      const sparse = attention({ ...args, mask: { kind: 'positions', positions: chosen } });
      let diff = 0;
      let norm = 0;
      for (let i = 0; i < dense.length; i++) {
        diff += (sparse[i]! - dense[i]!) ** 2;
        norm += dense[i]! ** 2;
      }
      error += norm === 0 ? 0 : Math.sqrt(diff / norm);
      return chosen;
    },
    ...(inner.evict === undefined
      ? {}
      : { evict: (lane: KvLane, query: KvQuery) => inner.evict!(lane, query) }),
  };
  return {
    policy,
    stats: () => ({
      steps,
      recall: steps === 0 ? 1 : recall / steps,
      relativeError: steps === 0 ? 0 : error / steps,
      density: steps === 0 ? 1 : density / steps,
    }),
  };
}

/**
 * Perplexity of the decoded tokens under a policy: each window [1, seq] runs its first `prefill`
 * tokens densely, then one token per step under a fresh policy, and the predictions made from
 * positions prefill - 1 .. seq - 2 are scored (what the policy affected; the prompt's are dense).
 */
export function policyPerplexity(
  model: DecodingLM,
  windows: readonly Tensor<'i32'>[],
  makePolicy: () => KvPolicy | undefined,
  options: StepwiseOptions & ProgressOptions = {},
): { perplexity: number; nll: number; tokens: number } {
  const prefill = options.prefill ?? 1;
  const lm = decodeStepwise(model, makePolicy, options);
  let nll = 0;
  let tokens = 0;
  const v = model.vocabSize;
  for (const [w, input] of windows.entries()) {
    const seq = input.shape[1]!;
    if (input.shape[0] !== 1 || seq <= prefill)
      throw new InvalidArgumentError(
        'window',
        input.shape,
        `must be [1, seq] with seq > prefill (${prefill})`,
      );
    const logits = (lm.logits(input) as Tensor<'f32'>).data;
    for (let t = prefill - 1; t < seq - 1; t++) {
      const row = logits.subarray(t * v, (t + 1) * v);
      let max = Number.NEGATIVE_INFINITY;
      for (let i = 0; i < v; i++) max = Math.max(max, row[i]!);
      let sum = 0;
      for (let i = 0; i < v; i++) sum += Math.exp(row[i]! - max);
      nll += Math.log(sum) + max - row[input.data[t + 1]!]!;
      tokens++;
    }
    reportProgress(options, { stage: 'eval', current: w + 1, total: windows.length, unit: 'window' });
  }
  return { perplexity: Math.exp(nll / tokens), nll, tokens };
}

/** Statistics of several recorders (windows, runs) pooled, weighted by their steps. */
export function poolSelectionStats(all: readonly SelectionStats[]): SelectionStats {
  const steps = all.reduce((n, s) => n + s.steps, 0);
  if (steps === 0) return { steps: 0, recall: 1, relativeError: 0, density: 1 };
  const mean = (f: (s: SelectionStats) => number) => all.reduce((a, s) => a + f(s) * s.steps, 0) / steps;
  return {
    steps,
    recall: mean((s) => s.recall),
    relativeError: mean((s) => s.relativeError),
    density: mean((s) => s.density),
  };
}
