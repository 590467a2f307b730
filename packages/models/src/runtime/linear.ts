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
  private _bias: Float32Array | undefined;

  constructor(
    readonly name: string,
    weight: SparseMatrix,
    bias: Float32Array | undefined,
    private readonly kernels: KernelRef,
  ) {
    this.weight = weight;
    this._bias = bias;
    if (bias !== undefined && bias.length !== weight.rows) {
      throw new ShapeMismatchError([weight.rows], [bias.length], `${name} bias`);
    }
  }

  get bias(): Float32Array | undefined {
    return this._bias;
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

  /**
   * Replace weight and bias with a dense matrix of any shape: for transforms that change a layer's
   * width (slicing the residual stream), not for pruning, which keeps shapes.
   */
  reshape(values: Float32Array, rows: number, cols: number, bias?: Float32Array): void {
    if (values.length !== rows * cols)
      throw new ShapeMismatchError([rows * cols], [values.length], this.name);
    if (bias !== undefined && bias.length !== rows)
      throw new ShapeMismatchError([rows], [bias.length], `${this.name} bias`);
    assertFinite(values, `${this.name} weight`);
    this.weight = dense({ rows, cols, values });
    this._bias = bias;
  }

  /** Capture weight and bias; the returned function reinstates them (whatever happened since). */
  checkpoint(): () => void {
    const [weight, bias] = [this.weight, this._bias];
    return () => {
      this.weight = weight;
      this._bias = bias;
    };
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
