// Checks a tokenizer.json passes before any tokenizer is built from it: how many entries it holds,
// that its ids are ids, and that none of its regular expressions can backtrack exponentially.
import { InvalidFormatError } from '@sparsekit/core';
import { backtrackingIssue } from './regex-backtracking.js';

/**
 * Most entries read in `model.vocab`, `model.merges` and `added_tokens` (each), and the bound on
 * token ids. The largest real vocabularies hold ~262k tokens (Gemma) and ~280k merges (Llama 3);
 * the bound is four times that, and keeps a hostile file from building tables of millions of
 * entries (a 64 MiB tokenizer.json can hold six million).
 */
export const MAX_TOKENIZER_ENTRIES = 2 ** 20;

function refuse(reason: string): never {
  throw new InvalidFormatError('tokenizer.json', reason);
}

function countOf(field: string, value: unknown): number {
  const count = Array.isArray(value)
    ? value.length
    : value !== null && typeof value === 'object'
      ? Object.keys(value).length
      : 0;
  if (count > MAX_TOKENIZER_ENTRIES)
    refuse(
      `${field} has ${count.toLocaleString('en-US')} entries; at most ${MAX_TOKENIZER_ENTRIES.toLocaleString('en-US')} are read`,
    );
  return count;
}

function checkId(field: string, token: string, id: unknown, vocabSize: number | undefined): void {
  const bound = vocabSize ?? MAX_TOKENIZER_ENTRIES;
  if (typeof id !== 'number' || !Number.isInteger(id) || id < 0 || id >= bound)
    refuse(
      `${field} holds token id ${JSON.stringify(id)}, outside ${
        vocabSize === undefined
          ? `[0, ${MAX_TOKENIZER_ENTRIES}) (integers below the entry bound)`
          : `the model's vocabulary of ${vocabSize}`
      } (token ${JSON.stringify(token.slice(0, 40))})`,
    );
}

/** Every `pattern: { Regex }` under `value` (normalizers, pre-tokenizers, decoders), with its path. */
function checkPatterns(path: string, value: unknown): void {
  if (value === null || typeof value !== 'object') return;
  if (Array.isArray(value)) {
    value.forEach((item, i) => {
      checkPatterns(`${path}[${i}]`, item);
    });
    return;
  }
  for (const [key, item] of Object.entries(value)) {
    const regex = key === 'pattern' ? (item as { Regex?: unknown } | null)?.Regex : undefined;
    if (typeof regex === 'string') {
      const issue = backtrackingIssue(regex);
      if (issue !== undefined)
        refuse(
          `${path}.pattern.Regex ${JSON.stringify(regex.length > 80 ? `${regex.slice(0, 77)}...` : regex)} can backtrack exponentially: ${issue}; such patterns are refused because a regular expression cannot be interrupted once it runs`,
        );
    } else checkPatterns(`${path}.${key}`, item);
  }
}

/**
 * Refuse (InvalidFormatError, format 'tokenizer.json') a tokenizer.json that holds more than
 * MAX_TOKENIZER_ENTRIES vocabulary entries, merges or added tokens, a token id that is not an
 * integer in [0, vocabSize) (the model's vocabulary when given, else the entry bound), or a
 * regular expression `backtrackingIssue` finds fault with. Counts are checked first, before
 * anything is built from the entries.
 */
export function checkTokenizerJson(json: Record<string, unknown>, vocabSize?: number): void {
  const model = json.model as { vocab?: unknown; merges?: unknown } | undefined;
  const vocab = model?.vocab;
  countOf('model.vocab', vocab);
  countOf('model.merges', model?.merges);
  const added = Array.isArray(json.added_tokens) ? json.added_tokens : [];
  countOf('added_tokens', added);
  // Unigram vocabularies are [piece, score] lists (ids are positions); the others map piece -> id.
  if (vocab !== null && typeof vocab === 'object' && !Array.isArray(vocab)) {
    for (const [token, id] of Object.entries(vocab)) checkId('model.vocab', token, id, vocabSize);
  } else if (Array.isArray(vocab) && vocabSize !== undefined && vocab.length > vocabSize) {
    refuse(`model.vocab lists ${vocab.length} pieces, more than the model's vocabulary of ${vocabSize}`);
  }
  for (const token of added) {
    const t = token as { id?: unknown; content?: unknown } | null;
    checkId('added_tokens', String(t?.content ?? ''), t?.id, vocabSize);
  }
  for (const field of ['normalizer', 'pre_tokenizer', 'decoder'] as const) checkPatterns(field, json[field]);
}
