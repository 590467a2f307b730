// Sirius (Infini-AI-Lab/Sirius): the contextually sparse model generates, and every `kernelSize`
// tokens the full model checks the chunk in one pass, accepting tokens while it finds them likely
// enough and replacing the first it rejects with its own choice.
import {
  type DecodingLM,
  type Hooks,
  InvalidArgumentError,
  type ProgressOptions,
  reportProgress,
  Tensor,
} from '@sparsekit/core';

export interface SiriusOptions extends ProgressOptions {
  /** The sparse model's hooks (e.g. `applyThresholds(new Hooks(), rules)`'s target); the full model runs without them. */
  sparse: Hooks;
  /** Tokens generated after the prompt. */
  maxNewTokens: number;
  /** Tokens the sparse model writes between two checks (default 16, as the reference's kernel_size). */
  kernelSize?: number;
  /** A token is accepted while the full model's probability of it is at least this (default 0.1, the reference's for evaluations). */
  threshold?: number;
  /** The full model's probabilities are softmax(logits / temperature) (default 0.6, as the reference). */
  temperature?: number;
  /** Stop at any of these tokens (kept in the output). */
  stopTokens?: readonly number[];
}

export interface SiriusResult {
  /** The generated tokens (prompt excluded). */
  tokens: number[];
  /** Per check: the tokens it advanced by (accepted ones, plus the correction when it rejected one). */
  advances: number[];
  /** Average advance length: tokens per check (the reference's AAL, at most `kernelSize`). */
  averageAdvance: number;
  /** Full-model passes that checked a chunk. */
  checks: number;
  /** Tokens the full model replaced. */
  corrections: number;
}

/**
 * Greedy generation by the sparse model with Sirius' correction. One cache serves both models:
 * the sparse model decodes a chunk into it; the full model then runs the chunk from the mark taken
 * before it, so the cache's entries for every accepted token are the full model's (the reference's
 * KV rewrite). After a rejection, the cache is rolled back and the accepted tokens run again on the
 * full model, which stands in for truncating it (one extra pass per rejecting check, not counted in
 * the average advance).
 */
export function siriusGenerate(
  model: DecodingLM,
  prompt: readonly number[],
  options: SiriusOptions,
): SiriusResult {
  const k = options.kernelSize ?? 16;
  const threshold = options.threshold ?? 0.1;
  const temperature = options.temperature ?? 0.6;
  if (!Number.isInteger(k) || k < 1)
    throw new InvalidArgumentError('kernelSize', k, 'must be a positive integer');
  if (!(threshold >= 0 && threshold <= 1))
    throw new InvalidArgumentError('threshold', threshold, 'must be in [0, 1]');
  if (!(temperature > 0)) throw new InvalidArgumentError('temperature', temperature, 'must be > 0');
  if (!Number.isInteger(options.maxNewTokens) || options.maxNewTokens < 0)
    throw new InvalidArgumentError('maxNewTokens', options.maxNewTokens, 'must be a non-negative integer');
  if (prompt.length === 0) throw new InvalidArgumentError('prompt', 0, 'needs at least one token');
  const stops = new Set(options.stopTokens ?? []);
  const run = (ids: readonly number[], sparse: boolean) =>
    model.forward(
      new Tensor('i32', [1, ids.length], Int32Array.from(ids)),
      cache,
      sparse ? { hooks: options.sparse } : {},
    );
  const cache = model.createCache(1);
  // The prompt, all but its last token, runs on the full model; `last` is the newest token not yet in the cache.
  if (prompt.length > 1) run(prompt.slice(0, -1), false);
  let last = prompt.at(-1)!;
  const tokens: number[] = [];
  const advances: number[] = [];
  let corrections = 0;
  let stopped = false;
  while (tokens.length < options.maxNewTokens && !stopped) {
    const mark = cache.mark();
    // The sparse model drafts up to k tokens.
    const draft: number[] = [];
    let input = last;
    const room = Math.min(k, options.maxNewTokens - tokens.length);
    while (draft.length < room) {
      const next = argmax(run([input], true).data);
      draft.push(next);
      input = next;
      if (stops.has(next)) break;
    }
    // The full model checks the chunk in one pass from the mark.
    cache.rollback(mark);
    const logits = run([last, ...draft.slice(0, -1)], false).data;
    const vocab = logits.length / draft.length;
    let accepted = 0;
    let correction: number | undefined;
    for (; accepted < draft.length; accepted++) {
      const row = logits.subarray(accepted * vocab, (accepted + 1) * vocab);
      if (probability(row, draft[accepted]!, temperature) < threshold) {
        correction = argmax(row);
        break;
      }
    }
    const advanced = correction === undefined ? draft : [...draft.slice(0, accepted), correction];
    if (correction !== undefined) {
      corrections++;
      // The cache holds the whole chunk: back to the mark, and the kept prefix again (full model).
      cache.rollback(mark);
      run([last, ...advanced.slice(0, -1)], false);
    }
    advances.push(advanced.length);
    for (const t of advanced) {
      tokens.push(t);
      if (stops.has(t)) {
        stopped = true;
        break;
      }
    }
    last = advanced.at(-1)!;
    reportProgress(options, {
      stage: 'sirius',
      current: tokens.length,
      total: options.maxNewTokens,
      unit: 'token',
    });
  }
  const total = advances.reduce((s, a) => s + a, 0);
  return {
    tokens,
    advances,
    averageAdvance: advances.length === 0 ? 0 : total / advances.length,
    checks: advances.length,
    corrections,
  };
}

function argmax(row: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < row.length; i++) if (row[i]! > row[best]!) best = i;
  return best;
}

/** softmax(row / temperature)[token]. */
function probability(row: Float32Array, token: number, temperature: number): number {
  let max = Number.NEGATIVE_INFINITY;
  for (let i = 0; i < row.length; i++) max = Math.max(max, row[i]!);
  let sum = 0;
  for (let i = 0; i < row.length; i++) sum += Math.exp((row[i]! - max) / temperature);
  return Math.exp((row[token]! - max) / temperature) / sum;
}
