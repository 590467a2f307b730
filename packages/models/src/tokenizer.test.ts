import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Tokenizer } from '@huggingface/tokenizers';
import { InvalidArgumentError } from '@sparsekit/core';
import { describe, expect, it } from 'vitest';
import { tinyLmPath } from './hf/tiny-lm.js';
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

/** A WordLevel tokenizer.json over `vocab` with the given pre-tokenizer. */
function withPreTokenizer(preTokenizer: unknown, vocab: Record<string, number>): Record<string, unknown> {
  return { ...wordLevel(vocab, '<unk>'), pre_tokenizer: preTokenizer };
}

describe('HfTokenizer pre-tokenizers', () => {
  it("splits Whitespace as Hugging Face does, with Unicode word characters ('Ça va' is two words)", () => {
    const vocab = { '<unk>': 0, Ça: 1, va: 2, '?': 3, naïve: 4, Привет: 5, Ç: 6, a: 7 };
    const t = HfTokenizer.fromJson(wordLevel(vocab, '<unk>'));
    expect(t.encode('Ça va?')).toEqual([1, 2, 3]);
    expect(t.encode('naïve Привет')).toEqual([4, 5]);
    // Inside a Sequence too, and WhitespaceSplit and Digits with Unicode classes.
    const sequence = {
      type: 'Sequence',
      pretokenizers: [
        { type: 'WhitespaceSplit' },
        { type: 'Digits', individual_digits: true },
        { type: 'Whitespace' },
      ],
    };
    const s = HfTokenizer.fromJson(withPreTokenizer(sequence, { ...vocab, '٣': 8, '٤': 9 }));
    expect(s.encode('Ça\u0085va ٣٤')).toEqual([1, 2, 8, 9]);
  });

  it('leaves byte-level BPE (tiny-lm) exactly as the library encodes it', () => {
    const json = JSON.parse(readFileSync(join(tinyLmPath(), 'tokenizer.json'), 'utf8'));
    const text = readFileSync(join(tinyLmPath(), 'test.txt'), 'utf8');
    const reference = new Tokenizer(json, { clean_up_tokenization_spaces: false });
    const ids = HfTokenizer.fromJson(json).encode(text);
    expect(ids).toEqual(reference.encode(text, { add_special_tokens: false }).ids);
    expect(ids.length).toBeGreaterThan(30_000);
  });
});
