import {
  type CausalLM,
  InvalidArgumentError,
  NonFiniteError,
  type ProgressOptions,
  type Tokenizer,
} from '@sparsekit/core';
import { forEachLengthBatch } from '../batches.js';
import { rollingWindows, type ScoringWindow, sparsegptWindows } from './windows.js';

export type PerplexityProtocol = 'sparsegpt' | 'rolling';

export interface PerplexityOptions extends ProgressOptions {
  /** 'sparsegpt' (default): the SparseGPT/Wanda protocol; 'rolling': lm-eval's rolling log-likelihood. */
  protocol?: PerplexityProtocol;
  /** Window length in tokens. Default: the model's maxSequenceLength. */
  maxLength?: number;
  /** Rolling only: tokens newly predicted per window (default maxLength: disjoint windows). */
  stride?: number;
  /** Rolling only: the token before a document's first token (default: the tokenizer's eos, then bos). */
  prefixTokenId?: number;
  /** Windows of equal length per model call (default 1). */
  batchSize?: number;
  /** SparseGPT only: evaluate at most this many windows (the references evaluate all). */
  maxWindows?: number;
}

/** What was measured and exactly how, as JSON. */
export interface PerplexityResult {
  protocol: {
    name: PerplexityProtocol;
    maxLength: number;
    stride: number | null;
    prefixTokenId: number | null;
    documents: number;
    windows: number;
    /** SparseGPT: the cap on windows, when one was set. */
    maxWindows: number | null;
    /** SparseGPT: tokens not evaluated (the remainder shorter than a window, and any windows past the cap). */
    droppedTokens: number;
  };
  /** Tokens whose log-likelihood was summed. */
  scoredTokens: number;
  /** Sum of -ln p over the scored tokens (nats). */
  nll: number;
  /** exp(nll / scoredTokens). */
  perplexity: number;
  /** Rolling only (every token is scored): exp(nll / words), and -ln p per byte in bits. */
  wordPerplexity: number | null;
  bitsPerByte: number | null;
  words: number | null;
  bytes: number | null;
  seconds: number;
}

/** Whitespace-separated words, as lm-eval counts them (`re.split(r"\s+", doc)`). */
export function countWords(text: string): number {
  return text.split(/\s+/).length;
}

/**
 * Perplexity of `model` on `text` (or on several documents, each scored on its own with the rolling
 * protocol; joined with "\n\n" as the references join wikitext's lines for the SparseGPT protocol).
 * The text is tokenized once per document.
 */
export async function perplexity(
  model: CausalLM,
  tokenizer: Tokenizer,
  text: string | readonly string[],
  options: PerplexityOptions = {},
): Promise<PerplexityResult> {
  const protocol = options.protocol ?? 'sparsegpt';
  if (protocol !== 'sparsegpt' && protocol !== 'rolling') {
    throw new InvalidArgumentError('protocol', protocol, "must be 'sparsegpt' or 'rolling'");
  }
  const documents = typeof text === 'string' ? [text] : [...text];
  if (protocol === 'sparsegpt') {
    return perplexityOfTokens(model, tokenizer.encode(documents.join('\n\n')), options);
  }
  const prefix = options.prefixTokenId ?? tokenizer.eosTokenId ?? tokenizer.bosTokenId;
  if (prefix === undefined) {
    throw new InvalidArgumentError(
      'prefixTokenId',
      prefix,
      'the rolling protocol needs a token to predict the first token from; the tokenizer has no eos or bos, so pass one',
    );
  }
  const start = performance.now();
  const maxLength = options.maxLength ?? model.maxSequenceLength;
  const stride = options.stride ?? maxLength;
  const windows: ScoringWindow[] = [];
  let words = 0;
  let bytes = 0;
  for (const doc of documents) {
    windows.push(...rollingWindows(tokenizer.encode(doc), maxLength, stride, prefix));
    words += countWords(doc);
    bytes += new TextEncoder().encode(doc).length;
  }
  const { nll, scored } = await scoreWindows(model, windows, options);
  return {
    protocol: {
      name: 'rolling',
      maxLength,
      stride,
      prefixTokenId: prefix,
      documents: documents.length,
      windows: windows.length,
      maxWindows: null,
      droppedTokens: 0,
    },
    scoredTokens: scored,
    nll,
    perplexity: Math.exp(nll / scored),
    wordPerplexity: Math.exp(nll / words),
    bitsPerByte: nll / bytes / Math.LN2,
    words,
    bytes,
    seconds: (performance.now() - start) / 1000,
  };
}

/** The SparseGPT / Wanda protocol on already tokenized text. */
export async function perplexityOfTokens(
  model: CausalLM,
  tokens: ArrayLike<number>,
  options: Omit<PerplexityOptions, 'protocol' | 'stride' | 'prefixTokenId'> = {},
): Promise<PerplexityResult> {
  const start = performance.now();
  const maxLength = options.maxLength ?? model.maxSequenceLength;
  let windows = sparsegptWindows(tokens, maxLength);
  if (options.maxWindows !== undefined) windows = windows.slice(0, options.maxWindows);
  if (windows.length === 0) {
    throw new InvalidArgumentError(
      'text',
      `${tokens.length} tokens`,
      `the SparseGPT protocol needs at least one window of ${maxLength} tokens; pass more text or a smaller maxLength`,
    );
  }
  const { nll, scored } = await scoreWindows(model, windows, options);
  return {
    protocol: {
      name: 'sparsegpt',
      maxLength,
      stride: null,
      prefixTokenId: null,
      documents: 1,
      windows: windows.length,
      maxWindows: options.maxWindows ?? null,
      droppedTokens: tokens.length - windows.length * maxLength,
    },
    scoredTokens: scored,
    nll,
    perplexity: Math.exp(nll / scored),
    wordPerplexity: null,
    bitsPerByte: null,
    words: null,
    bytes: null,
    seconds: (performance.now() - start) / 1000,
  };
}

/** Sum of -ln p(target) over every window (and per window), running windows of equal length in batches. */
export async function scoreWindows(
  model: CausalLM,
  windows: readonly ScoringWindow[],
  options: ProgressOptions & { batchSize?: number } = {},
): Promise<{ nll: number; scored: number; windowNll: Float64Array }> {
  for (const w of windows) {
    if (w.input.length > model.maxSequenceLength) {
      throw new InvalidArgumentError(
        'maxLength',
        w.input.length,
        `must not exceed the model's maxSequenceLength (${model.maxSequenceLength})`,
      );
    }
  }
  let nll = 0;
  let scored = 0;
  const vocab = model.vocabSize;
  const index = new Map(windows.map((w, i) => [w, i]));
  const windowNll = new Float64Array(windows.length);
  await forEachLengthBatch(
    model,
    windows,
    { ...options, stage: 'eval', unit: 'window' },
    (w, logits, base) => {
      let own = 0;
      for (let t = 0; t < w.targets.length; t++) {
        own -= logProbability(logits, (base + w.firstScored + t) * vocab, vocab, w.targets[t]!);
      }
      windowNll[index.get(w)!] = own;
      nll += own;
      scored += w.targets.length;
    },
  );
  if (!Number.isFinite(nll)) throw new NonFiniteError('log-likelihood', 0, nll);
  return { nll, scored, windowNll };
}

/** ln softmax(logits[row .. row + vocab))[target], in float64. */
export function logProbability(logits: Float32Array, row: number, vocab: number, target: number): number {
  if (!Number.isInteger(target) || target < 0 || target >= vocab) {
    throw new InvalidArgumentError('token id', target, `must be in [0, ${vocab})`);
  }
  let max = Number.NEGATIVE_INFINITY;
  for (let v = 0; v < vocab; v++) max = Math.max(max, logits[row + v]!);
  let sum = 0;
  for (let v = 0; v < vocab; v++) sum += Math.exp(logits[row + v]! - max);
  return logits[row + target]! - max - Math.log(sum);
}
