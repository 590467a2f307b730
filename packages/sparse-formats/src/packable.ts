import type { LinearLayer } from '@sparsekit/core';
import type { SparseMatrix } from './types.js';

/**
 * A linear layer whose weight can be held in any sparse format: what the accelerate path packs
 * (models' `Linear` implements it). `matrix` is the weight as stored; `setMatrix` installs a matrix
 * of the same shape, in whatever format, that the layer's products then run on.
 */
export interface PackableLinear extends LinearLayer {
  readonly matrix: SparseMatrix;
  setMatrix(matrix: SparseMatrix): void;
}

/** A model whose linear layers can be packed. */
export interface HasPackableLayers {
  linearLayers(): readonly PackableLinear[];
}
