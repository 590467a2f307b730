import {
  type CausalLM,
  InvalidArgumentError,
  type ProgressEvent,
  Tensor,
  type Tokenizer,
} from '@sparsekit/core';
import { describe, expect, it } from 'vitest';
import { countWords, perplexity, perplexityOfTokens } from './perplexity.js';

/** A model whose logits at every position are `row(previousToken)`. */
function tableModel(vocabSize: number, row: (token: number) => number[], maxSequenceLength = 16): CausalLM {
  return {
    vocabSize,
    maxSequenceLength,
    logits(ids: Tensor<'i32'>) {
      const [batch, seq] = ids.shape as [number, number];
      const out = new Float32Array(batch * seq * vocabSize);
      for (let i = 0; i < batch * seq; i++) out.set(row(ids.data[i]!), i * vocabSize);
      return new Tensor('f32', [batch, seq, vocabSize], out);
    },
  };
}

/** Characters as tokens: byte value = id (ASCII text). */
const charTokenizer: Tokenizer = {
  vocabSize: 128,
  encode: (text) => [...text].map((c) => c.charCodeAt(0)),
  decode: (ids) => String.fromCharCode(...ids),
  eosTokenId: 0,
};

describe('perplexity', () => {
  it('equals the vocabulary size for a uniform model (both protocols); bits per byte = log2(V)', async () => {
    const uniform = tableModel(128, () => new Array(128).fill(0));
    const text = 'the quick brown fox jumps over the lazy dog '.repeat(4);
    const a = await perplexity(uniform, charTokenizer, text, { maxLength: 16 });
    expect(a.perplexity).toBeCloseTo(128, 9);
    expect(a.protocol.windows).toBe(Math.floor(text.length / 16));
    expect(a.scoredTokens).toBe(a.protocol.windows * 15);
    expect(a.protocol.droppedTokens).toBe(text.length % 16);
    const r = await perplexity(uniform, charTokenizer, text, {
      protocol: 'rolling',
      maxLength: 16,
      stride: 5,
    });
    expect(r.perplexity).toBeCloseTo(128, 9);
    expect(r.scoredTokens).toBe(text.length);
    expect(r.bitsPerByte).toBeCloseTo(7, 12);
    expect(r.words).toBe(countWords(text));
    const words = Math.exp((text.length * Math.log(128)) / countWords(text));
    expect(r.wordPerplexity! / words).toBeCloseTo(1, 9);
  });

  it('matches a hand computation', async () => {
    // p(1) = 3/4, p(0) = 1/4 everywhere. Tokens [1, 1, 0, 1], one window of 4: targets 1, 0, 1.
    const model = tableModel(2, () => [0, Math.log(3)]);
    const r = await perplexityOfTokens(model, [1, 1, 0, 1], { maxLength: 4 });
    expect(r.nll).toBeCloseTo(-(Math.log(0.75) + Math.log(0.25) + Math.log(0.75)), 6);
    expect(r.perplexity).toBeCloseTo((1 / (0.75 * 0.25 * 0.75)) ** (1 / 3), 6);
    // A bigram model: after token a the next is a with probability e/(e+1).
    const bigram = tableModel(2, (t) => (t === 0 ? [1, 0] : [0, 1]));
    const b = await perplexityOfTokens(bigram, [0, 0, 1, 1, 0], { maxLength: 5 });
    const same = Math.log(Math.E / (Math.E + 1));
    const change = Math.log(1 / (Math.E + 1));
    expect(b.nll).toBeCloseTo(-(same + change + same + change), 6);
  });

  it('is deterministic and independent of the batch size; reports progress', async () => {
    const model = tableModel(128, (t) => Array.from({ length: 128 }, (_, v) => Math.sin(t * 7 + v)));
    const text = 'sparse models are smaller and, with the right kernels, faster. '.repeat(3);
    const events: ProgressEvent[] = [];
    const one = await perplexity(model, charTokenizer, text, {
      protocol: 'rolling',
      maxLength: 16,
      stride: 8,
      onProgress: (e) => events.push(e),
    });
    const four = await perplexity(model, charTokenizer, text, {
      protocol: 'rolling',
      maxLength: 16,
      stride: 8,
      batchSize: 4,
    });
    expect(four.nll).toBeCloseTo(one.nll, 9);
    expect(
      (await perplexity(model, charTokenizer, text, { protocol: 'rolling', maxLength: 16, stride: 8 })).nll,
    ).toBe(one.nll);
    expect(events.at(-1)).toMatchObject({
      stage: 'eval',
      current: one.protocol.windows,
      total: one.protocol.windows,
    });
  });

  it('gives typed errors for unusable input', async () => {
    const model = tableModel(4, () => [0, 0, 0, 0], 8);
    await expect(perplexityOfTokens(model, [1, 2], { maxLength: 4 })).rejects.toThrow(InvalidArgumentError);
    await expect(perplexityOfTokens(model, new Array(20).fill(1), { maxLength: 12 })).rejects.toThrow(
      /maxSequenceLength/,
    );
    await expect(perplexityOfTokens(model, [1, 2, 9, 1], { maxLength: 4 })).rejects.toThrow(/token id/);
    const noPrefix: Tokenizer = { ...charTokenizer, eosTokenId: undefined };
    await expect(perplexity(model, noPrefix, 'ab', { protocol: 'rolling' })).rejects.toThrow(/prefixTokenId/);
  });
});
