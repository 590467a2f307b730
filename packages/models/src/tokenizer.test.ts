import { InvalidArgumentError } from '@sparsekit/core';
import { describe, expect, it } from 'vitest';
import { HfTokenizer } from './tokenizer.js';

/** A WordLevel tokenizer.json over `vocab`, whitespace pre-tokenized. */
function wordLevel(vocab: Record<string, number>, unk?: string): Record<string, unknown> {
  return {
    version: '1.0',
    added_tokens: [],
    normalizer: null,
    pre_tokenizer: { type: 'Whitespace' },
    post_processor: null,
    decoder: null,
    model: { type: 'WordLevel', vocab, ...(unk === undefined ? {} : { unk_token: unk }) },
  };
}

describe('HfTokenizer', () => {
  it('maps words a WordLevel vocabulary lacks to its unk token (as Hugging Face), or refuses without one', () => {
    const t = HfTokenizer.fromJson(wordLevel({ a: 0, b: 1, '<unk>': 2 }, '<unk>'));
    expect(t.encode('a hello b')).toEqual([0, 2, 1]);
    const strict = HfTokenizer.fromJson(wordLevel({ a: 0, b: 1 }));
    expect(strict.encode('a b')).toEqual([0, 1]);
    expect(() => strict.encode('a hello b')).toThrow(InvalidArgumentError);
  });

  it("keeps spaces before punctuation unless tokenizer_config.json asks to clean them (transformers' default)", () => {
    const vocab = { a: 0, '!': 1, not: 2, "'s": 3 };
    const json = { ...wordLevel(vocab), decoder: null };
    expect(HfTokenizer.fromJson(json).decode([0, 1])).toBe('a !');
    expect(HfTokenizer.fromJson(json, undefined, { clean_up_tokenization_spaces: true }).decode([0, 1])).toBe(
      'a!',
    );
    expect(HfTokenizer.fromJson(json).decode([])).toBe('');
  });
});
