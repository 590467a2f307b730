import { HfTokenizer } from '@sparsekit/models';
import { describe, expect, it } from 'vitest';
import { byteToUnicode, preTokenize, tokenizerJson, trainBpe } from './bpe.js';
import { splitCorpus, untagBrown } from './corpus.js';

const TEXT =
  'The whale, the whale! "Thar she blows," cried the mate. 1851: the year of the whale.\nCall me Ishmael.';

describe('byte-level BPE', () => {
  it("maps all 256 bytes to distinct characters, as GPT-2's byte_to_unicode", () => {
    const map = byteToUnicode();
    expect(new Set(map).size).toBe(256);
    expect(map[65]).toBe('A');
    expect(map[32]).toBe('Ġ');
    expect(preTokenize('Hi there', map)).toEqual(['Hi', 'Ġthere']);
  });

  it('learns merges that @huggingface/tokenizers applies, and round-trips text', () => {
    const bpe = trainBpe([TEXT.repeat(20)], 300, ['<|endoftext|>']);
    expect(bpe.vocab.size).toBe(300);
    expect(bpe.merges.length).toBe(300 - 256 - 1);
    const tokenizer = HfTokenizer.fromJson(tokenizerJson(bpe, ['<|endoftext|>']));
    const ids = tokenizer.encode(TEXT);
    expect(tokenizer.decode(ids)).toBe(TEXT);
    expect(ids.length).toBeLessThan(new TextEncoder().encode(TEXT).length / 2);
    expect(ids).toContain(bpe.vocab.get('Ġwhale'));
    expect(tokenizer.decode(tokenizer.encode('héllo ✓ 日本'))).toBe('héllo ✓ 日本');
  });
});

describe('corpus', () => {
  it('removes Brown tags and tokenization spacing', () => {
    expect(untagBrown("\n\n\tThe/at jury/nn said/vbd ``/`` no/at ''/'' ,/, it/pps was/bedz ./.\n\n")).toBe(
      'The jury said "no", it was.',
    );
  });

  it('splits by document, deterministically, without overlap', () => {
    const docs = Array.from({ length: 100 }, (_, i) => ({
      source: 'brown' as const,
      name: `d${i}`,
      text: 'x',
    }));
    const a = splitCorpus(docs, 7);
    const b = splitCorpus(docs, 7);
    expect(a).toEqual(b);
    expect([a.train.length, a.validation.length, a.test.length]).toEqual([90, 5, 5]);
    const names = [...a.train, ...a.validation, ...a.test].map((d) => d.name);
    expect(new Set(names).size).toBe(100);
  });
});
