// The accelerate path: a pruned dense weight into the sparse format whose kernel will skip its zeros.
import type { Tensor } from '@sparsekit/core';
import {
  fromDense,
  type HasPackableLayers,
  type PackableLinear,
  type SparseMatrix,
  type ValueDType,
} from '@sparsekit/sparse-formats';
import { type BlockShape, checkBlockShape, isUnitBlock } from './blocks.js';
import { checkNm } from './masks.js';

export interface PackOptions {
  /** The weight follows N:M (N kept of every M): pack it as N:M. */
  n?: number;
  m?: number;
  /** The weight was pruned in blocks of this shape: pack it as BSR with them. */
  block?: BlockShape;
  /** Value type of the packed matrix (default f32). */
  dtype?: ValueDType;
}

/**
 * Pack a pruned weight [out, in]: N:M patterns into the N:M format; blocks into BSR with the same
 * block shape (blocks that are all zero are not stored); unstructured sparsity into
 * CSR (16-bit column indices when the width allows), or into a bitmask when more than half the
 * weights are kept (there a bit per weight is smaller than an index per nonzero).
 */
export function packWeight(weight: Tensor<'f32'>, options: PackOptions = {}): SparseMatrix {
  const [, cols] = weight.shape as [number, number];
  const dtype = options.dtype ?? 'f32';
  if (options.n !== undefined || options.m !== undefined) {
    checkNm(options.n!, options.m!, cols);
    // Groups with fewer than N nonzeros get explicit zero slots (the N:M format stores exactly N).
    return fromDense(weight, 'nm', { threshold: 0, n: options.n!, m: options.m!, dtype });
  }
  if (!isUnitBlock(options.block)) {
    const [rows] = weight.shape as [number, number];
    checkBlockShape(options.block!, rows, cols);
    return fromDense(weight, 'bsr', {
      threshold: 0,
      dtype,
      blockShape: [options.block!.rows, options.block!.cols],
      indexType: cols / options.block!.cols <= 65536 ? 'u16' : 'i32',
    });
  }
  let nonzeros = 0;
  for (const v of weight.data) if (v !== 0) nonzeros++;
  if (nonzeros > weight.size / 2) return fromDense(weight, 'bitmask', { threshold: 0, dtype });
  return fromDense(weight, 'csr', { threshold: 0, dtype, indexType: cols <= 65536 ? 'u16' : 'i32' });
}

/** Pack one layer's (pruned) weight in place: `packWeight` of its weight, installed with `setMatrix`. */
export function packLayer(layer: PackableLinear, options: PackOptions = {}): SparseMatrix {
  const matrix = packWeight(layer.getWeight(), options);
  layer.setMatrix(matrix);
  return matrix;
}

/**
 * Pack every linear layer of `model` that `options` names (a function of the layer: its pattern, or
 * undefined to leave it as it is).
 */
export function packLayers(
  model: HasPackableLayers,
  options: (layer: PackableLinear) => PackOptions | undefined = () => ({}),
): void {
  for (const layer of model.linearLayers()) {
    const o = options(layer);
    if (o !== undefined) packLayer(layer, o);
  }
}
