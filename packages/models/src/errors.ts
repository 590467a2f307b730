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
