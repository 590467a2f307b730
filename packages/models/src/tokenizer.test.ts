import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Tokenizer } from '@huggingface/tokenizers';
import { InvalidArgumentError, InvalidFormatError } from '@sparsekit/core';
import { describe, expect, it } from 'vitest';
import { TokenizerTimeoutError } from './errors.js';
import { tinyLmPath } from './hf/tiny-lm.js';
import { defaultEncodeTimeLimitMs, HfTokenizer } from './tokenizer.js';
import { MAX_TOKENIZER_ENTRIES } from './tokenizer-json.js';

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

describe('HfTokenizer bounds', () => {
  it('refuses more vocabulary entries, merges or added tokens than MAX_TOKENIZER_ENTRIES, naming the field', () => {
    const vocab: Record<string, number> = {};
    for (let i = 0; i <= MAX_TOKENIZER_ENTRIES; i++) vocab[`t${i}`] = i % 1000;
    const error = (() => {
      try {
        HfTokenizer.fromJson(wordLevel(vocab));
      } catch (e) {
        return e;
      }
    })();
    expect(error).toBeInstanceOf(InvalidFormatError);
    expect((error as InvalidFormatError).reason).toMatch(
      /model\.vocab has 1,048,577 entries; at most 1,048,576/,
    );
    const merges = new Array<string>(MAX_TOKENIZER_ENTRIES + 1).fill('a b');
    const bpe = { ...wordLevel({ a: 0, b: 1 }), model: { type: 'BPE', vocab: { a: 0, b: 1 }, merges } };
    expect(() => HfTokenizer.fromJson(bpe)).toThrow(/model\.merges has 1,048,577 entries/);
  });

  it('refuses token ids that are not integers below the bound (or the model vocabulary)', () => {
    const huge = { ...wordLevel({ a: 0 }), added_tokens: [{ id: 1e9, content: '<x>', special: true }] };
    expect(() => HfTokenizer.fromJson(huge)).toThrow(/added_tokens holds token id 1000000000/);
    expect(() => HfTokenizer.fromJson(wordLevel({ a: 0, b: 1.5 }))).toThrow(
      /model\.vocab holds token id 1\.5/,
    );
    expect(() => HfTokenizer.fromJson(wordLevel({ a: 0, b: 7 }), { vocabSize: 4 })).toThrow(
      /token id 7, outside the model's vocabulary of 4 \(token "b"\)/,
    );
  });

  it('refuses a Split pattern that backtracks exponentially at once, naming where it is', () => {
    const hostile = {
      type: 'Sequence',
      pretokenizers: [{ type: 'Split', pattern: { Regex: '(a|aa)+$' }, behavior: 'Isolated', invert: false }],
    };
    const started = performance.now();
    expect(() => HfTokenizer.fromJson(withPreTokenizer(hostile, { a: 0 }))).toThrow(InvalidFormatError);
    expect(() => HfTokenizer.fromJson(withPreTokenizer(hostile, { a: 0 }))).toThrow(
      /pre_tokenizer\.pretokenizers\[0\]\.pattern\.Regex "\(a\|aa\)\+\$" can backtrack exponentially/,
    );
    // Normalizer and decoder patterns are checked too.
    const normalizer = { type: 'Replace', pattern: { Regex: '(x+)+y' }, content: '' };
    expect(() => HfTokenizer.fromJson({ ...wordLevel({ a: 0 }), normalizer })).toThrow(
      /normalizer\.pattern\.Regex/,
    );
    // Refused by the static check, not by running the pattern (a loose bound: the machine may be loaded).
    expect(performance.now() - started).toBeLessThan(5000);
  });

  it('stops an encode that runs past its time limit with TokenizerTimeoutError, between pieces', () => {
    // Polynomial, not exponential (so the static check lets it through): ~0.1 s per 30-letter piece.
    const slow = {
      type: 'Sequence',
      pretokenizers: [
        { type: 'WhitespaceSplit' },
        { type: 'Split', pattern: { Regex: 'a*a*a*a*a*a*b' }, behavior: 'Isolated', invert: false },
      ],
    };
    const t = HfTokenizer.fromJson(
      withPreTokenizer(slow, { '<unk>': 0 }),
      undefined,
      {},
      { name: 'slow', encodeTimeLimitMs: 50 },
    );
    const text = Array.from({ length: 200 }, () => 'a'.repeat(30)).join(' ');
    const started = performance.now();
    const error = (() => {
      try {
        t.encode(text);
      } catch (e) {
        return e;
      }
    })();
    const took = performance.now() - started;
    expect(error).toBeInstanceOf(TokenizerTimeoutError);
    expect(error).toMatchObject({
      code: 'models/tokenizer-timeout',
      tokenizer: 'slow',
      limitMs: 50,
      textLength: text.length,
    });
    expect((error as Error).message).toMatch(
      /Tokenizer slow did not encode 6199 characters within its limit of 50 ms/,
    );
    // It stopped early: all 200 pieces would take ~20 s (a loose bound: the machine may be loaded).
    expect(took).toBeLessThan(10_000);
    // The limit is per call: a short text still encodes, with the default limit too.
    expect(t.encode('ab')).toEqual([0]);
    expect(defaultEncodeTimeLimitMs(80_000)).toBe(3600);
    expect(() => HfTokenizer.fromJson(wordLevel({ a: 0 }), undefined, {}, { encodeTimeLimitMs: 0 })).toThrow(
      InvalidArgumentError,
    );
  });
});
