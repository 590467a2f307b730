import { SparsekitError } from '@sparsekit/core';

/** A checkpoint whose architecture or options the runtime does not implement. */
export class UnsupportedModelError extends SparsekitError {
  readonly feature: string;

  constructor(feature: string, detail: string) {
    super('UNSUPPORTED_MODEL', `Unsupported model: ${feature} (${detail}).`);
    this.feature = feature;
  }
}

/** A tensor the architecture needs is not in the checkpoint. */
export class MissingTensorError extends SparsekitError {
  readonly tensor: string;

  constructor(tensor: string, where: string) {
    super(
      'MISSING_TENSOR',
      `Tensor "${tensor}" is missing from ${where}; is this checkpoint complete and of the model type its config.json names?`,
    );
    this.tensor = tensor;
  }
}
