import { Tokenizer as HfTokenizerImpl } from '@huggingface/tokenizers';
import type { Tokenizer } from '@sparsekit/core';
import type { ModelConfig } from './config.js';

/**
 * A Hugging Face tokenizer.json (through @huggingface/tokenizers) behind the core `Tokenizer`
 * interface. `encode` adds no special tokens; bos/eos come from the model config when present.
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
    return new HfTokenizer(new HfTokenizerImpl(json, tokenizerConfig), json, ids);
  }

  encode(text: string): number[] {
    return this.impl.encode(text, { add_special_tokens: false }).ids;
  }

  decode(ids: readonly number[]): string {
    if (ids.length === 0) return '';
    return this.impl.decode([...ids]);
  }
}
