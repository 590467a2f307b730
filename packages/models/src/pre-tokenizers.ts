// Hugging Face's character-class pre-tokenizers with their Unicode classes. @huggingface/tokenizers
// implements these with JavaScript's ASCII-only `\w`, `\d` and `\s` ("Ça va" would split as
// Ç|a|va); Hugging Face's Rust code uses Unicode classes:
// - Whitespace: the `regex` crate's `\w+|[^\w\s]+`, where \w is Alphabetic, M, Nd, Pc and
//   Join_Control, and \s is White_Space;
// - WhitespaceSplit: split on `char::is_whitespace` (White_Space);
// - Digits: split on `char::is_numeric` (N: Nd, Nl, No), each digit alone or in runs.

const WORD = String.raw`\p{Alphabetic}\p{M}\p{Nd}\p{Pc}\p{Join_Control}`;
const WORDS_OR_SYMBOLS = new RegExp(`[${WORD}]+|[^${WORD}\\p{White_Space}]+`, 'gu');
const NOT_SPACE = /\P{White_Space}+/gu;
const DIGIT_RUNS = /\p{N}+|\P{N}+/gu;
const SINGLE_DIGITS = /\p{N}|\P{N}+/gu;

/** Hugging Face's `Whitespace` pre-tokenizer: runs of word characters and runs of other non-space. */
export function whitespacePieces(text: string): string[] {
  return text.match(WORDS_OR_SYMBOLS) ?? [];
}

/** Hugging Face's `WhitespaceSplit` pre-tokenizer: the text between runs of white space. */
export function whitespaceSplitPieces(text: string): string[] {
  return text.match(NOT_SPACE) ?? [];
}

/** Hugging Face's `Digits` pre-tokenizer: numeric characters apart (alone, or in runs) from the rest. */
export function digitPieces(text: string, individualDigits: boolean): string[] {
  return text.match(individualDigits ? SINGLE_DIGITS : DIGIT_RUNS) ?? [];
}
