import { InvalidArgumentError, type ProgressOptions, Rng, reportProgress, Tensor } from '@sparsekit/core';
import type { KvCacheOptions } from './kv-cache.js';
import type { ForwardOptions, TransformerLM } from './model.js';

export interface SamplingOptions {
  /** 0 (default) picks the most likely token (greedy); otherwise logits are divided by it. */
  temperature?: number;
  /** Keep only the k most likely tokens (after temperature). */
  topK?: number;
  /** Keep the smallest set of most likely tokens whose probability reaches p (nucleus sampling). */
  topP?: number;
  seed?: number;
}

export interface GenerateOptions extends SamplingOptions, ProgressOptions {
  /** Attention mask and decode-time KV policy of every forward call (see `ForwardOptions`). */
  mask?: ForwardOptions['mask'];
  kvPolicy?: ForwardOptions['kvPolicy'];
  /** Options of the KV cache (page size, position convention). */
  cache?: KvCacheOptions;
  /** Default 32. */
  maxNewTokens?: number;
  /** Stop after producing one of these (default: the model's eos token, if it has one). */
  stopTokens?: readonly number[];
}

export interface Generation {
  /** The new tokens (the prompt excluded). */
  tokens: number[];
  prefillSeconds: number;
  decodeSeconds: number;
  /** New tokens after the first, per second of decoding. */
  decodeTokensPerSecond: number;
  /** Prompt tokens per second of prefill. */
  prefillTokensPerSecond: number;
}

/**
 * Pick the next token from one row of logits, as Hugging Face's warpers do: temperature, then
 * top-k, then top-p, then a draw from the renormalised distribution.
 */
export function sampleToken(logits: ArrayLike<number>, options: SamplingOptions, rng: Rng): number {
  const n = logits.length;
  const temperature = options.temperature ?? 0;
  if (!(temperature >= 0)) throw new InvalidArgumentError('temperature', temperature, 'must be >= 0');
  if (temperature === 0) {
    let best = 0;
    for (let i = 1; i < n; i++) if (logits[i]! > logits[best]!) best = i;
    return best;
  }
  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => logits[b]! - logits[a]! || a - b);
  let keep = n;
  if (options.topK !== undefined) {
    if (!Number.isInteger(options.topK) || options.topK < 1) {
      throw new InvalidArgumentError('topK', options.topK, 'must be a positive integer');
    }
    keep = Math.min(keep, options.topK);
  }
  const max = logits[order[0]!]! / temperature;
  const weights = order.slice(0, keep).map((i) => Math.exp(logits[i]! / temperature - max));
  let total = weights.reduce((a, b) => a + b, 0);
  if (options.topP !== undefined) {
    const p = options.topP;
    if (!(p > 0 && p <= 1)) throw new InvalidArgumentError('topP', p, 'must be in (0, 1]');
    let cumulative = 0;
    let cut = weights.length;
    for (let i = 0; i < weights.length; i++) {
      cumulative += weights[i]! / total;
      if (cumulative >= p) {
        cut = i + 1;
        break;
      }
    }
    weights.length = cut;
    total = weights.reduce((a, b) => a + b, 0);
  }
  let u = rng.uniform() * total;
  for (let i = 0; i < weights.length; i++) {
    u -= weights[i]!;
    if (u < 0) return order[i]!;
  }
  return order[weights.length - 1]!;
}

/** Continue `prompt` with the KV cache: one prefill call, then one call per new token. */
export function generate(
  model: TransformerLM,
  prompt: readonly number[],
  options: GenerateOptions = {},
): Generation {
  const cache = model.createCache(1, options.cache);
  const forward = forwardOptions(options);
  const steps = generation(model, prompt, options);
  try {
    let r = steps.next();
    while (r.done !== true) r = steps.next(model.forward(r.value, cache, forward));
    return r.value;
  } finally {
    cache.dispose();
  }
}

/** `generate` on any backend (each forward call awaited: WebGPU). */
export async function generateAsync(
  model: TransformerLM,
  prompt: readonly number[],
  options: GenerateOptions = {},
): Promise<Generation> {
  const cache = model.createCache(1, options.cache);
  const forward = forwardOptions(options);
  const steps = generation(model, prompt, options);
  try {
    let r = steps.next();
    while (r.done !== true) r = steps.next(await model.forwardAsync(r.value, cache, forward));
    return r.value;
  } finally {
    cache.dispose();
  }
}

function forwardOptions(options: GenerateOptions): ForwardOptions {
  return {
    ...(options.mask === undefined ? {} : { mask: options.mask }),
    ...(options.kvPolicy === undefined ? {} : { kvPolicy: options.kvPolicy }),
  };
}

/** The decoding loop, yielding the token ids of each forward call and receiving its logits. */
function* generation(
  model: TransformerLM,
  prompt: readonly number[],
  options: GenerateOptions,
): Generator<Tensor<'i32'>, Generation, Tensor<'f32'>> {
  const maxNew = options.maxNewTokens ?? 32;
  if (!Number.isInteger(maxNew) || maxNew < 0) {
    throw new InvalidArgumentError('maxNewTokens', maxNew, 'must be a non-negative integer');
  }
  if (prompt.length === 0) throw new InvalidArgumentError('prompt', prompt, 'must hold at least one token');
  // With shifted positions an evicting policy keeps the cache bounded: the cache checks each step.
  if (options.cache?.positions !== 'shifted' && prompt.length + maxNew > model.maxSequenceLength) {
    throw new InvalidArgumentError(
      'maxNewTokens',
      maxNew,
      `prompt (${prompt.length}) + new tokens must fit the model's ${model.maxSequenceLength} positions`,
    );
  }
  const eos = model.config.eosTokenId;
  const stop = new Set(options.stopTokens ?? (eos === undefined ? [] : [eos]));
  const rng = new Rng(options.seed ?? 0);
  const vocab = model.vocabSize;
  let start = performance.now();
  let logits = yield new Tensor('i32', [1, prompt.length], Int32Array.from(prompt));
  const prefillSeconds = (performance.now() - start) / 1000;
  start = performance.now();
  const tokens: number[] = [];
  let row = logits.data.subarray((prompt.length - 1) * vocab);
  while (tokens.length < maxNew) {
    const next = sampleToken(row, options, rng);
    tokens.push(next);
    reportProgress(options, { stage: 'generate', current: tokens.length, total: maxNew, unit: 'token' });
    if (stop.has(next) || tokens.length === maxNew) break;
    logits = yield new Tensor('i32', [1, 1], Int32Array.of(next));
    row = logits.data;
  }
  const decodeSeconds = (performance.now() - start) / 1000;
  return {
    tokens,
    prefillSeconds,
    decodeSeconds,
    decodeTokensPerSecond: tokens.length > 1 ? (tokens.length - 1) / decodeSeconds : 0,
    prefillTokensPerSecond: prompt.length / prefillSeconds,
  };
}
