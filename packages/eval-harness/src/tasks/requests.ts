// The model calls of a task run, as lm-eval's HFLM makes them: log-likelihoods of continuations
// given contexts (tokenized as a pair, the context left-truncated to the model's length), batched by
// length and computed once per distinct pair; greedy generation until a stop string.
import {
  type CausalLM,
  InvalidArgumentError,
  NonFiniteError,
  type ProgressOptions,
  Tensor,
  type Tokenizer,
} from '@sparsekit/core';
import { forEachLengthBatch } from '../batches.js';
import { logProbability } from '../perplexity/perplexity.js';

/** A continuation's log-likelihood given its context, and whether greedy decoding would produce it. */
export interface LoglikelihoodResult {
  loglikelihood: number;
  isGreedy: boolean;
}

/**
 * Context and continuation tokens as HFLM's `_encode_pair` makes them: trailing whitespace of the
 * context moves to the continuation, the pair is encoded whole and the continuation is what follows
 * the context's own tokens. An empty context is the prefix token (bos, else eos).
 */
export function encodePair(
  tokenizer: Tokenizer,
  context: string,
  continuation: string,
): [number[], number[]] {
  if (context === '') {
    const prefix = tokenizer.bosTokenId ?? tokenizer.eosTokenId;
    if (prefix === undefined)
      throw new InvalidArgumentError(
        'context',
        '',
        'is empty and the tokenizer has no bos or eos token to start from',
      );
    const cont = tokenizer.encode(continuation);
    return cont[0] === prefix ? [cont.slice(0, 1), cont.slice(1)] : [[prefix], cont];
  }
  const spaces = context.length - context.replace(/\s+$/u, '').length;
  if (spaces > 0) {
    continuation = context.slice(-spaces) + continuation;
    context = context.slice(0, -spaces);
  }
  const whole = tokenizer.encode(context + continuation);
  const ctx = tokenizer.encode(context);
  return [ctx, whole.slice(ctx.length)];
}

interface Pending {
  key: string;
  input: Int32Array;
  continuation: number[];
}

/**
 * Log-likelihoods of (context, continuation) pairs, each distinct pair computed once (`cache` may
 * hold results from earlier calls, and receives the new ones). Inputs are (context + continuation)
 * without its last token, left-truncated to the model's length; calls batch inputs of one length,
 * longest first.
 */
export async function loglikelihoods(
  model: CausalLM,
  tokenizer: Tokenizer,
  pairs: readonly [string, string][],
  options: ProgressOptions & { batchSize?: number; cache?: Map<string, LoglikelihoodResult> } = {},
): Promise<LoglikelihoodResult[]> {
  const cache = options.cache ?? new Map<string, LoglikelihoodResult>();
  const maxLength = model.maxSequenceLength;
  const pending = new Map<string, Pending>();
  const keys = pairs.map(([context, continuation]) => {
    const key = `${context}\u0000${continuation}`;
    if (!cache.has(key) && !pending.has(key)) {
      const [ctx, cont] = encodePair(tokenizer, context, continuation);
      if (cont.length === 0)
        throw new InvalidArgumentError(
          'continuation',
          continuation,
          'encodes to no tokens after its context',
        );
      if (cont.length > maxLength)
        throw new InvalidArgumentError(
          'continuation',
          `${cont.length} tokens`,
          `is longer than the model's ${maxLength}-token window`,
        );
      const whole = [...ctx, ...cont];
      pending.set(key, {
        key,
        input: Int32Array.from(whole.slice(-(maxLength + 1)).slice(0, -1)),
        continuation: cont,
      });
    }
    return key;
  });
  const vocab = model.vocabSize;
  await forEachLengthBatch(
    model,
    [...pending.values()],
    { ...options, longestFirst: true, stage: 'loglikelihood', unit: 'request' },
    (p, logits, base) => {
      let ll = 0;
      let greedy = true;
      const first = base + p.input.length - p.continuation.length;
      for (let j = 0; j < p.continuation.length; j++) {
        const row = (first + j) * vocab;
        const target = p.continuation[j]!;
        ll += logProbability(logits, row, vocab, target);
        let best = 0;
        for (let v = 1; v < vocab; v++) if (logits[row + v]! > logits[row + best]!) best = v;
        if (best !== target) greedy = false;
      }
      if (!Number.isFinite(ll)) throw new NonFiniteError('log-likelihood', 0, ll);
      cache.set(p.key, { loglikelihood: ll, isGreedy: greedy });
    },
  );
  return keys.map((k) => cache.get(k)!);
}

/**
 * Greedy generation from `context` until one of `until` appears in the text generated (cut there),
 * `maxTokens` are generated, or the end-of-text token. The context is left-truncated so that it
 * and the generation fit the model's window.
 */
export async function generateUntil(
  model: CausalLM,
  tokenizer: Tokenizer,
  context: string,
  until: readonly string[],
  maxTokens: number,
): Promise<string> {
  const window = model.maxSequenceLength;
  const room = Math.max(1, window - maxTokens);
  const tokens = context === '' ? encodePair(tokenizer, '', ' ')[0] : tokenizer.encode(context).slice(-room);
  const generated: number[] = [];
  const cut = (text: string) => {
    let out = text;
    for (const stop of until) if (stop !== '' && out.includes(stop)) out = out.slice(0, out.indexOf(stop));
    return out;
  };
  for (let step = 0; step < maxTokens; step++) {
    const input = [...tokens, ...generated].slice(-window);
    const logits = await model.logits(new Tensor('i32', [1, input.length], Int32Array.from(input)));
    const vocab = model.vocabSize;
    const row = (input.length - 1) * vocab;
    let best = 0;
    for (let v = 1; v < vocab; v++) if (logits.data[row + v]! > logits.data[row + best]!) best = v;
    if (best === tokenizer.eosTokenId) break;
    generated.push(best);
    const text = tokenizer.decode(generated);
    if (until.some((stop) => stop !== '' && text.includes(stop))) return cut(text);
  }
  return cut(tokenizer.decode(generated));
}
