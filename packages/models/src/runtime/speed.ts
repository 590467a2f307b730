import { generate } from './generate.js';
import type { TransformerLM } from './model.js';

export interface SpeedOptions {
  /** Prompt tokens (a fixed pseudo-random sequence; default 64). */
  promptLength?: number;
  /** Tokens decoded per run (default 64; end-of-text does not stop it). */
  newTokens?: number;
  /** Timed runs after one warm-up run; the medians are reported (default 5). */
  reps?: number;
}

export interface Speed {
  prefillTokensPerSecond: number;
  decodeTokensPerSecond: number;
  /** Time from the prompt to the first generated token (its prefill), in milliseconds. */
  timeToFirstTokenMs: number;
}

/** The median (the mean of the two middle values for an even count, as the bench runner's). */
export function median(xs: readonly number[]): number {
  const sorted = [...xs].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** Measured prefill and decode tokens/s of `model` as its layers are stored (median of `reps` runs). */
export function generationSpeed(model: TransformerLM, options: SpeedOptions = {}): Speed {
  const promptLength = Math.min(options.promptLength ?? 64, model.maxSequenceLength - 1);
  const newTokens = Math.min(options.newTokens ?? 64, model.maxSequenceLength - promptLength);
  const reps = options.reps ?? 5;
  const prompt = Array.from({ length: promptLength }, (_, i) => (i * 37 + 11) % model.vocabSize);
  generate(model, prompt, { maxNewTokens: Math.min(4, newTokens), stopTokens: [] });
  const prefill: number[] = [];
  const decode: number[] = [];
  const first: number[] = [];
  for (let r = 0; r < reps; r++) {
    const g = generate(model, prompt, { maxNewTokens: newTokens, stopTokens: [] });
    prefill.push(g.prefillTokensPerSecond);
    decode.push(g.decodeTokensPerSecond);
    first.push(g.prefillSeconds * 1000);
  }
  return {
    prefillTokensPerSecond: median(prefill),
    decodeTokensPerSecond: median(decode),
    timeToFirstTokenMs: median(first),
  };
}
