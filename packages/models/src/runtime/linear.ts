import { assertFinite, InvalidArgumentError, ShapeMismatchError, Tensor } from '@sparsekit/core';
import {
  type DenseMatrix,
  dense,
  type PackableLinear,
  type SparseMatrix,
  toDenseArray,
} from '@sparsekit/sparse-formats';
import { nonzeroIndices } from './ops.js';
import { type BackendRef, type SparseDecode, type Step, syncBackend } from './steps.js';

/**
 * A linear layer whose weight may be held in any format; `forward` runs that format's kernel.
 * `getWeight` / `setWeight` work on dense f32 tensors (what pruners edit); `setMatrix` installs a
 * packed matrix (what the accelerate path does).
 */
export class Linear implements PackableLinear {
  private weight: SparseMatrix;
  private _bias: Float32Array | undefined;
  private _name: string;

  constructor(
    name: string,
    weight: SparseMatrix,
    bias: Float32Array | undefined,
    private readonly backends: BackendRef,
  ) {
    this._name = name;
    this.weight = weight;
    this._bias = bias;
    if (bias !== undefined && bias.length !== weight.rows) {
      throw new ShapeMismatchError([weight.rows], [bias.length], `${name} bias`);
    }
  }

  get name(): string {
    return this._name;
  }

  /** Rename the layer (experts are renumbered when others are removed, and saved by name). */
  rename(name: string): void {
    this._name = name;
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
    this.replace(dense({ rows: this.outFeatures, cols: this.inFeatures, values: weight.data }));
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
    this.replace(dense({ rows, cols, values }));
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
    this.replace(matrix);
  }

  /** Install `matrix`, freeing what the backend kept for the one it replaces (wasm or device copies). */
  private replace(matrix: SparseMatrix): void {
    const old = this.weight;
    this.weight = matrix;
    if (old !== matrix) this.backends.current.release(old);
  }

  /** y [tokens, out] = x [tokens, in] W^T + b, on the model's backend (which must be synchronous). */
  forward(x: Float32Array, tokens: number): Float32Array {
    this.checkInput(x, tokens);
    return syncBackend(this.backends.current, 'Linear.forward').linear(
      x,
      tokens,
      this.weight,
      this.bias === undefined ? {} : { bias: this.bias },
    );
  }

  /** The same product as a step of a forward pass (run by either flavour of backend). */
  *step(x: Float32Array, tokens: number): Generator<Step, Float32Array, Float32Array> {
    return yield this.stepOf(x, tokens);
  }

  /** The sparse decode settings of the model this layer belongs to (see `TransformerLM.sparseDecode`). */
  get sparseDecode(): SparseDecode | undefined {
    return this.backends.sparseDecode;
  }

  /**
   * The step itself, for a caller that yields it directly. With `rows`, only those outputs are
   * computed (the others are 0; see `LinearOptions.rows`).
   */
  stepOf(x: Float32Array, tokens: number, rows?: Int32Array): Step {
    this.checkInput(x, tokens);
    if (rows !== undefined) {
      const options = this._bias === undefined ? { rows } : { rows, bias: this._bias };
      return { op: 'linear', x, batch: tokens, w: this.weight, options };
    }
    const sparse = this.backends.sparseDecode;
    if (sparse !== undefined && tokens === 1 && this.weight.format === 'dense') {
      const active = nonzeroIndices(x, sparse.minZeroShare);
      if (active !== undefined) {
        const w = this.weight;
        return {
          op: 'gatherGemv',
          args: this._bias === undefined ? { w, x, active } : { w, x, active, bias: this._bias },
        };
      }
    }
    return this._bias === undefined
      ? { op: 'linear', x, batch: tokens, w: this.weight }
      : { op: 'linear', x, batch: tokens, w: this.weight, options: { bias: this._bias } };
  }

  private checkInput(x: Float32Array, tokens: number): void {
    if (x.length !== tokens * this.inFeatures) {
      throw new InvalidArgumentError(
        `${this.name} input length`,
        x.length,
        `must be tokens x ${this.inFeatures}`,
      );
    }
  }
}

/** A dense f32 matrix over `values` [rows, cols] (no copy). */
export function denseMatrix(values: Float32Array, rows: number, cols: number): DenseMatrix {
  return dense({ rows, cols, values });
}
