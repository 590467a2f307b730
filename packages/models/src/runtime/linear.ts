import {
  assertFinite,
  InvalidArgumentError,
  type LinearLayer,
  ShapeMismatchError,
  Tensor,
} from '@sparsekit/core';
import {
  type DenseMatrix,
  dense,
  linear as referenceLinear,
  type SparseMatrix,
  toDenseArray,
} from '@sparsekit/sparse-formats';

/**
 * What runs y = x W^T (+ b) for a weight in any sparse-formats format: the plain-TypeScript
 * reference kernels by default, or a `WasmBackend` from `createWasmBackend()` (both fit).
 */
export interface LinearKernel {
  linear(
    x: Float32Array,
    batch: number,
    w: SparseMatrix,
    options?: { bias?: Float32Array; out?: Float32Array },
  ): Float32Array;
}

/** The reference kernels of @sparsekit/sparse-formats. */
export const referenceKernel: LinearKernel = { linear: referenceLinear };

/** The kernel a model and its layers share; replacing `current` switches all of them. */
export interface KernelRef {
  current: LinearKernel;
}

export function kernelRef(kernel: LinearKernel = referenceKernel): KernelRef {
  return { current: kernel };
}

/**
 * A linear layer whose weight may be held in any format; `forward` runs that format's kernel.
 * `getWeight` / `setWeight` work on dense f32 tensors (what pruners edit); `setMatrix` installs a
 * packed matrix (what the accelerate path does).
 */
export class Linear implements LinearLayer {
  private weight: SparseMatrix;

  constructor(
    readonly name: string,
    weight: SparseMatrix,
    readonly bias: Float32Array | undefined,
    private readonly kernels: KernelRef,
  ) {
    this.weight = weight;
    if (bias !== undefined && bias.length !== weight.rows) {
      throw new ShapeMismatchError([weight.rows], [bias.length], `${name} bias`);
    }
  }

  get inFeatures(): number {
    return this.weight.cols;
  }

  get outFeatures(): number {
    return this.weight.rows;
  }

  /** The weight as stored (any format). */
  get matrix(): SparseMatrix {
    return this.weight;
  }

  getWeight(): Tensor<'f32'> {
    const values =
      this.weight.format === 'dense' && this.weight.dtype === 'f32'
        ? (this.weight.values as Float32Array)
        : toDenseArray(this.weight);
    return new Tensor('f32', [this.outFeatures, this.inFeatures], values);
  }

  setWeight(weight: Tensor<'f32'>): void {
    const [rows, cols] = weight.shape;
    if (weight.shape.length !== 2 || rows !== this.outFeatures || cols !== this.inFeatures) {
      throw new ShapeMismatchError([this.outFeatures, this.inFeatures], weight.shape, `${this.name} weight`);
    }
    assertFinite(weight.data, `${this.name} weight`);
    this.weight = dense({ rows: this.outFeatures, cols: this.inFeatures, values: weight.data });
  }

  /** Install a packed (or any) matrix of the same shape. */
  setMatrix(matrix: SparseMatrix): void {
    if (matrix.rows !== this.outFeatures || matrix.cols !== this.inFeatures) {
      throw new ShapeMismatchError(
        [this.outFeatures, this.inFeatures],
        [matrix.rows, matrix.cols],
        `${this.name} weight`,
      );
    }
    this.weight = matrix;
  }

  /** y [tokens, out] = x [tokens, in] W^T + b. */
  forward(x: Float32Array, tokens: number): Float32Array {
    if (x.length !== tokens * this.inFeatures) {
      throw new InvalidArgumentError(
        `${this.name} input length`,
        x.length,
        `must be tokens x ${this.inFeatures}`,
      );
    }
    return this.kernels.current.linear(
      x,
      tokens,
      this.weight,
      this.bias === undefined ? {} : { bias: this.bias },
    );
  }
}

/** A dense f32 matrix over `values` [rows, cols] (no copy). */
export function denseMatrix(values: Float32Array, rows: number, cols: number): DenseMatrix {
  return dense({ rows, cols, values });
}
