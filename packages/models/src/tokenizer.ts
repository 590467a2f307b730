import { Tokenizer as HfTokenizerImpl } from '@huggingface/tokenizers';
import { InvalidArgumentError, type Tokenizer } from '@sparsekit/core';
import type { ModelConfig } from './config.js';
import { TokenizerTimeoutError } from './errors.js';
import { digitPieces, whitespacePieces, whitespaceSplitPieces } from './pre-tokenizers.js';
import { checkTokenizerJson } from './tokenizer-json.js';

export interface HfTokenizerOptions {
  /** How errors name the tokenizer (default: its model and pre-tokenizer types). */
  name?: string;
  /**
   * Time limit of one `encode` call, in ms (default: 2 s plus 20 µs per character, about 50x the
   * time a byte-level BPE takes here). Checked between pre-tokenized pieces: past it, `encode`
   * throws TokenizerTimeoutError.
   */
  encodeTimeLimitMs?: number;
}

/** Default time limit of an `encode` call of `length` characters. */
export function defaultEncodeTimeLimitMs(length: number): number {
  return 2000 + 0.02 * length;
}

/**
 * The parts of @huggingface/tokenizers' pipeline used here (a pre-tokenizer step, a Sequence's
 * steps, the model), written out: the library's bundled declarations do not resolve under NodeNext.
 */
interface PreTokenizerStep {
  pre_tokenize_text(text: string, options?: unknown): string[];
  tokenizers?: Array<PreTokenizerStep | null>;
}
interface ModelStep {
  encode(tokens: string[]): string[];
}

/** "BPE (pre_tokenizer Sequence)", from a tokenizer.json's types. */
function describe(json: Record<string, unknown>): string {
  const type = (part: unknown) => (part as { type?: unknown } | null)?.type;
  const model = type(json.model);
  const pre = type(json.pre_tokenizer);
  return `${typeof model === 'string' ? model : 'tokenizer'}${typeof pre === 'string' ? ` (pre_tokenizer ${pre})` : ''}`;
}

/**
 * A Hugging Face tokenizer.json (through @huggingface/tokenizers) behind the core `Tokenizer`
 * interface. `encode` adds no special tokens; bos/eos come from the model config when present.
 *
 * The JSON is checked first (`checkTokenizerJson`: entry counts, ids, patterns that can backtrack
 * exponentially). The Whitespace, WhitespaceSplit and Digits pre-tokenizers split with Hugging
 * Face's Unicode classes (pre-tokenizers.ts) instead of the library's ASCII ones. Each `encode` call
 * runs under a time limit, checked before every pre-tokenizer step on every piece and before the
 * model encodes every piece.
 */
export class HfTokenizer implements Tokenizer {
  readonly vocabSize: number;
  readonly bosTokenId?: number;
  readonly eosTokenId?: number;
  /** How errors name this tokenizer. */
  readonly name: string;
  private readonly timeLimitMs: number | undefined;
  /** The running `encode` call's start and limit (encode is synchronous: one at a time). */
  private call = { start: 0, limitMs: 0, length: 0 };

  private constructor(
    private readonly impl: HfTokenizerImpl,
    readonly json: Record<string, unknown>,
    ids: { bos?: number; eos?: number },
    options: HfTokenizerOptions,
  ) {
    const limit = options.encodeTimeLimitMs;
    if (limit !== undefined && !(limit > 0))
      throw new InvalidArgumentError('encodeTimeLimitMs', limit, 'must be a positive number of milliseconds');
    this.timeLimitMs = limit;
    this.name = options.name ?? describe(json);
    this.instrument(impl.pre_tokenizer as PreTokenizerStep | null, json.pre_tokenizer);
    this.instrumentModel(impl.model as ModelStep | null);
    this.vocabSize = impl.get_vocab(true).size;
    if (ids.bos !== undefined) this.bosTokenId = ids.bos;
    if (ids.eos !== undefined) this.eosTokenId = ids.eos;
  }

  /**
   * From the parsed tokenizer.json (and optionally tokenizer_config.json). With `config.vocabSize`,
   * every token id must be below it.
   */
  static fromJson(
    json: Record<string, unknown>,
    config?: Partial<Pick<ModelConfig, 'bosTokenId' | 'eosTokenId' | 'vocabSize'>>,
    tokenizerConfig: Record<string, unknown> = {},
    options: HfTokenizerOptions = {},
  ): HfTokenizer {
    checkTokenizerJson(json, config?.vocabSize);
    const ids: { bos?: number; eos?: number } = {};
    if (config?.bosTokenId !== undefined) ids.bos = config.bosTokenId;
    if (config?.eosTokenId !== undefined) ids.eos = config.eosTokenId;
    // transformers' default: no clean-up of spaces before punctuation unless the config asks for it.
    const settings = { clean_up_tokenization_spaces: false, ...tokenizerConfig };
    return new HfTokenizer(new HfTokenizerImpl(json, settings), json, ids, options);
  }

  /** Throws TokenizerTimeoutError once the running `encode` call is past its limit. */
  private checkTime(): void {
    const elapsed = performance.now() - this.call.start;
    if (elapsed > this.call.limitMs)
      throw new TokenizerTimeoutError(this.name, this.call.limitMs, elapsed, this.call.length);
  }

  /**
   * Unicode splitting where the library's is ASCII-only, and a time check before every step. Each
   * library step is matched with its tokenizer.json entry (a Sequence's steps in order).
   */
  private instrument(step: PreTokenizerStep | null, config: unknown): void {
    if (step === null || config === null || typeof config !== 'object') return;
    const { type, pretokenizers, individual_digits } = config as Record<string, unknown>;
    if (type === 'Sequence' && Array.isArray(pretokenizers) && Array.isArray(step.tokenizers)) {
      step.tokenizers.forEach((inner, i) => {
        this.instrument(inner, pretokenizers[i]);
      });
      return;
    }
    if (type === 'Whitespace') step.pre_tokenize_text = whitespacePieces;
    else if (type === 'WhitespaceSplit') step.pre_tokenize_text = whitespaceSplitPieces;
    else if (type === 'Digits') {
      const individual = individual_digits === true;
      step.pre_tokenize_text = (text: string) => digitPieces(text, individual);
    }
    const run = step.pre_tokenize_text.bind(step);
    step.pre_tokenize_text = (text: string, options?: unknown) => {
      this.checkTime();
      return run(text, options);
    };
  }

  /** The model encodes piece by piece (as it does inside its own loop), with a time check before each. */
  private instrumentModel(model: ModelStep | null): void {
    if (model === null) return;
    const encode = model.encode.bind(model);
    model.encode = (tokens: string[]) => {
      const out: string[] = [];
      for (const token of tokens) {
        this.checkTime();
        for (const piece of encode([token])) out.push(piece);
      }
      return out;
    };
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
    this.call = {
      start: performance.now(),
      limitMs: this.timeLimitMs ?? defaultEncodeTimeLimitMs(text.length),
      length: text.length,
    };
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
