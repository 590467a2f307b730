import { Tokenizer as HfTokenizerImpl } from '@huggingface/tokenizers';
import { InvalidArgumentError, type Tokenizer } from '@sparsekit/core';
import type { ModelConfig } from './config.js';
import { digitPieces, whitespacePieces, whitespaceSplitPieces } from './pre-tokenizers.js';

/**
 * The part of @huggingface/tokenizers' pipeline used here (a pre-tokenizer step, a Sequence's
 * steps), written out: the library's bundled declarations do not resolve under NodeNext.
 */
interface PreTokenizerStep {
  pre_tokenize_text(text: string, options?: unknown): string[];
  tokenizers?: Array<PreTokenizerStep | null>;
}

/**
 * A Hugging Face tokenizer.json (through @huggingface/tokenizers) behind the core `Tokenizer`
 * interface. `encode` adds no special tokens; bos/eos come from the model config when present.
 * The Whitespace, WhitespaceSplit and Digits pre-tokenizers split with Hugging Face's Unicode
 * classes (pre-tokenizers.ts) instead of the library's ASCII ones.
 */
export class HfTokenizer implements Tokenizer {
  readonly vocabSize: number;
  readonly bosTokenId?: number;
  readonly eosTokenId?: number;

  private constructor(
    private readonly impl: HfTokenizerImpl,
    readonly json: Record<string, unknown>,
    ids: { bos?: number; eos?: number },
  ) {
    unicodeSplitting(impl.pre_tokenizer as PreTokenizerStep | null, json.pre_tokenizer);
    this.vocabSize = impl.get_vocab(true).size;
    if (ids.bos !== undefined) this.bosTokenId = ids.bos;
    if (ids.eos !== undefined) this.eosTokenId = ids.eos;
  }

  /** From the parsed tokenizer.json (and optionally tokenizer_config.json). */
  static fromJson(
    json: Record<string, unknown>,
    config?: Pick<ModelConfig, 'bosTokenId' | 'eosTokenId'>,
    tokenizerConfig: Record<string, unknown> = {},
  ): HfTokenizer {
    const ids: { bos?: number; eos?: number } = {};
    if (config?.bosTokenId !== undefined) ids.bos = config.bosTokenId;
    if (config?.eosTokenId !== undefined) ids.eos = config.eosTokenId;
    // transformers' default: no clean-up of spaces before punctuation unless the config asks for it.
    const settings = { clean_up_tokenization_spaces: false, ...tokenizerConfig };
    return new HfTokenizer(new HfTokenizerImpl(json, settings), json, ids);
  }

  /** The id of the model's unknown token (`model.unk_token` in its vocabulary), if it has one. */
  get unknownTokenId(): number | undefined {
    const model = this.json.model as { unk_token?: unknown; vocab?: unknown } | undefined;
    const vocab = model?.vocab;
    if (
      typeof model?.unk_token !== 'string' ||
      vocab === null ||
      typeof vocab !== 'object' ||
      Array.isArray(vocab)
    )
      return undefined;
    const id = (vocab as Record<string, unknown>)[model.unk_token];
    return typeof id === 'number' ? id : undefined;
  }

  encode(text: string): number[] {
    const ids: number[] = this.impl.encode(text, { add_special_tokens: false }).ids;
    // A word a WordLevel vocabulary lacks comes back without an id: it is the unknown token, as in
    // Hugging Face's tokenizers, or an error when there is none.
    if (ids.every((id) => Number.isInteger(id))) return ids;
    const unk = this.unknownTokenId;
    if (unk === undefined)
      throw new InvalidArgumentError(
        'text',
        text.slice(0, 80),
        'holds a word the vocabulary lacks, and the tokenizer has no unk_token',
      );
    return ids.map((id) => (Number.isInteger(id) ? id : unk));
  }

  decode(ids: readonly number[]): string {
    if (ids.length === 0) return '';
    return this.impl.decode([...ids]);
  }
}

/**
 * Hugging Face's Unicode splitting where the library's is ASCII-only. Each library step is matched
 * with its tokenizer.json entry (a Sequence's steps in order).
 */
function unicodeSplitting(step: PreTokenizerStep | null, config: unknown): void {
  if (step === null || config === null || typeof config !== 'object') return;
  const { type, pretokenizers, individual_digits } = config as Record<string, unknown>;
  if (type === 'Sequence' && Array.isArray(pretokenizers) && Array.isArray(step.tokenizers)) {
    step.tokenizers.forEach((inner, i) => {
      unicodeSplitting(inner, pretokenizers[i]);
    });
  } else if (type === 'Whitespace') step.pre_tokenize_text = whitespacePieces;
  else if (type === 'WhitespaceSplit') step.pre_tokenize_text = whitespaceSplitPieces;
  else if (type === 'Digits') {
    const individual = individual_digits === true;
    step.pre_tokenize_text = (text: string) => digitPieces(text, individual);
  }
}
