import { describe, expect, it } from 'vitest';
import { backtrackingIssue } from './regex-backtracking.js';

// Split patterns of real tokenizer.json files (as written there, in Oniguruma syntax).
const REAL = {
  gpt2: String.raw`'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`,
  llama3: String.raw`(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`,
  qwen2: String.raw`(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`,
  o200k: String.raw`[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+`,
  deepseekDigits: String.raw`\p{N}{1,3}`,
  deepseekCjk: String.raw`[一-龥\u3040-ゟ゠-ヿ]+`,
  deepseekWords:
    String.raw`[!"#$%&'()*+,\-./:;<=>?@\[\\\]^_` +
    '`' +
    String.raw`{|}~][A-Za-z]+|[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+| ?[\p{P}\p{S}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`,
  bloom: ' ?[^(\\s|[.,!?…。，、।۔،])]+',
  whitespace: String.raw`\w+|[^\w\s]+`,
  lineBreaks: String.raw`(?:\r\n|\n)+`,
};

describe('backtrackingIssue', () => {
  it('accepts the patterns real tokenizers use (GPT-2, Llama 3, Qwen2, o200k, DeepSeek, BLOOM)', () => {
    for (const [name, pattern] of Object.entries(REAL))
      expect([name, backtrackingIssue(pattern)]).toEqual([name, undefined]);
  });

  it('refuses repeated groups whose alternatives overlap, or that nest a quantifier', () => {
    const overlapping = [
      '(a|aa)+$',
      '(?:a|ab)*c',
      '(\\s|\\S)+x',
      '(?:[a-c]|[b-d])+',
      '(?i:(A|a)+)',
      '(a|)+b',
      '(?:x|\\p{L})+',
    ];
    const nested = [
      '(a+)+b',
      '(\\w+\\s?)*$',
      '(x+x+)+y',
      '((ab)*)+',
      '(.*a){12}',
      '(?:\\r?\\n)+',
      '(a{1,3})*z',
      'a**',
    ];
    for (const pattern of overlapping)
      expect(backtrackingIssue(pattern)).toMatch(/start with the same character|can match nothing/);
    for (const pattern of nested) expect(backtrackingIssue(pattern)).toMatch(/quantifier of its own/);
  });

  it('accepts repeated groups that match one way only, and literal look-alikes', () => {
    for (const pattern of [
      '(ab|cd)+',
      '(?:[a-c]|[d-f])+',
      '(a{2})+',
      '[(a|aa)+]',
      '\\(a|aa\\)+',
      '(a|aa)?',
      'a{,3}b',
    ])
      expect([pattern, backtrackingIssue(pattern)]).toEqual([pattern, undefined]);
  });

  it('refuses what it cannot read instead of trusting it', () => {
    expect(backtrackingIssue('(a')).toMatch(/unterminated group/);
    expect(backtrackingIssue('a)')).toMatch(/unmatched/);
    expect(backtrackingIssue('(?<n>a)\\g<n>')).toMatch(/subexpression call/);
    expect(backtrackingIssue(`${'('.repeat(300)}a${')'.repeat(300)}`)).toMatch(/nested more than 256/);
  });
});
