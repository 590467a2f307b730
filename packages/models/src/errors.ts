import { SparsekitError } from '@sparsekit/core';

/** A checkpoint whose architecture or options the runtime does not implement. */
export class UnsupportedModelError extends SparsekitError {
  static override readonly code = 'models/unsupported-model';
  static override readonly hint =
    'supported model types: gpt2, opt, llama, mistral, mixtral (see the models README)';
  readonly feature: string;

  constructor(feature: string, detail: string) {
    super(UnsupportedModelError.code, `Unsupported model: ${feature} (${detail}).`);
    this.feature = feature;
  }
}

/** A tensor the architecture needs is not in the checkpoint. */
export class MissingTensorError extends SparsekitError {
  static override readonly code = 'models/missing-tensor';
  static override readonly hint = 'the checkpoint is incomplete: re-download or save it again';
  readonly tensor: string;

  constructor(tensor: string, where: string) {
    super(
      MissingTensorError.code,
      `Tensor "${tensor}" is missing from ${where}; is this checkpoint complete and of the model type its config.json names?`,
    );
    this.tensor = tensor;
  }
}

/**
 * An `encode` call ran past its time limit: the tokenizer's pre-tokenizer patterns or model are
 * pathologically slow on this text (a hostile or broken tokenizer.json).
 */
export class TokenizerTimeoutError extends SparsekitError {
  static override readonly code = 'models/tokenizer-timeout';
  static override readonly hint =
    "the tokenizer.json is pathologically slow on this text (a hostile or broken pattern): restore it from the model's source";
  /** The tokenizer (its tokenizer.json path when loaded from a folder). */
  readonly tokenizer: string;
  readonly limitMs: number;
  readonly elapsedMs: number;
  /** Length of the text being encoded (UTF-16 code units). */
  readonly textLength: number;

  constructor(tokenizer: string, limitMs: number, elapsedMs: number, textLength: number) {
    super(
      TokenizerTimeoutError.code,
      `Tokenizer ${tokenizer} did not encode ${textLength} characters within its limit of ${Math.round(limitMs)} ms (stopped after ${Math.round(elapsedMs)} ms); its pre-tokenizer or model is pathologically slow on this text: check the tokenizer.json against the model's source, or raise encodeTimeLimitMs.`,
    );
    this.tokenizer = tokenizer;
    this.limitMs = limitMs;
    this.elapsedMs = elapsedMs;
    this.textLength = textLength;
  }
}
