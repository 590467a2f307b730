// A gpu.js backend for SpMM / SpMV where only WebGL exists (older browsers). gpu.js is an optional
// peer: nothing here loads it until `createGpuJsBackend` is called.
import { InvalidArgumentError, ShapeMismatchError, SparsekitError } from '@sparsekit/core';
import {
  type CsrMatrix,
  type DenseMatrix,
  type SparseMatrix,
  toCsr,
  valuesF32,
} from '@sparsekit/sparse-formats';

export interface GpuJsOptions {
  /** gpu.js mode: 'gpu' (best available), 'webgl', 'webgl2', 'headlessgl' or 'cpu' (default 'gpu'). */
  mode?: 'gpu' | 'webgl' | 'webgl2' | 'headlessgl' | 'cpu';
}

interface GpuJsKernel {
  (...args: unknown[]): unknown;
  setOutput(output: number[]): GpuJsKernel;
  setLoopMaxIterations(n: number): GpuJsKernel;
}

interface GpuJs {
  createKernel(fn: (...args: never[]) => number): GpuJsKernel;
  destroy(): void;
  mode: string;
}

/** gpu.js is not installed. */
export class GpuJsUnavailableError extends SparsekitError {
  constructor(cause: unknown) {
    super(
      'NO_GPU_ADAPTER',
      'The gpu.js backend needs the optional peer dependency gpu.js (npm install gpu.js@2.24.1); or use the WebGPU backend.',
      { cause },
    );
  }
}

// Kernel bodies are compiled by gpu.js (to GLSL or JS): plain functions over `this.thread`.
function csrKernel(
  this: { thread: { x: number; y: number } },
  values: number[],
  indptr: number[],
  indices: number[],
  x: number[],
  cols: number,
): number {
  let sum = 0;
  const start = indptr[this.thread.x]!;
  const end = indptr[this.thread.x + 1]!;
  for (let k = start; k < end; k++) sum += values[k]! * x[this.thread.y * cols + indices[k]!]!;
  return sum;
}

function denseKernel(
  this: { thread: { x: number; y: number } },
  values: number[],
  x: number[],
  cols: number,
): number {
  let sum = 0;
  for (let k = 0; k < cols; k++) sum += values[this.thread.x * cols + k]! * x[this.thread.y * cols + k]!;
  return sum;
}

export class GpuJsBackend {
  private constructor(private readonly gpu: GpuJs) {}

  static async create(options: GpuJsOptions = {}): Promise<GpuJsBackend> {
    let module: { GPU: new (settings: { mode: string }) => GpuJs };
    try {
      const name = 'gpu.js';
      module = (await import(/* @vite-ignore */ name)) as typeof module;
    } catch (error) {
      throw new GpuJsUnavailableError(error);
    }
    return new GpuJsBackend(new module.GPU({ mode: options.mode ?? 'gpu' }));
  }

  /** The mode gpu.js chose ('webgl2', 'headlessgl', 'cpu', ...). */
  get mode(): string {
    return this.gpu.mode;
  }

  /** y [batch, rows] = x [batch, cols] W^T for a dense or CSR weight (other formats go through CSR). */
  linear(x: Float32Array, batch: number, weight: SparseMatrix): Float32Array {
    if (!Number.isInteger(batch) || batch < 1)
      throw new InvalidArgumentError('batch', batch, 'must be a positive integer');
    if (x.length !== batch * weight.cols)
      throw new ShapeMismatchError([batch, weight.cols], [x.length / weight.cols], 'x');
    const rows = weight.rows;
    let result: unknown;
    if (weight.format === 'dense') {
      const w = weight as DenseMatrix;
      const kernel = this.gpu.createKernel(denseKernel as never).setOutput([rows, batch]);
      result = kernel(valuesF32(w.values, w.dtype), x, w.cols);
    } else {
      const w: CsrMatrix = weight.format === 'csr' ? weight : toCsr(weight);
      let longest = 1;
      for (let r = 0; r < rows; r++) longest = Math.max(longest, w.indptr[r + 1]! - w.indptr[r]!);
      const kernel = this.gpu
        .createKernel(csrKernel as never)
        .setOutput([rows, batch])
        .setLoopMaxIterations(longest);
      result = kernel(valuesF32(w.values, w.dtype), w.indptr, Int32Array.from(w.indices), x, w.cols);
    }
    // gpu.js returns one Float32Array per batch row.
    const out = new Float32Array(batch * rows);
    (result as Float32Array[]).forEach((row, b) => {
      out.set(row, b * rows);
    });
    return out;
  }

  /** y = W x for one vector. */
  spmv(weight: SparseMatrix, x: Float32Array): Float32Array {
    return this.linear(x, 1, weight);
  }

  dispose(): void {
    this.gpu.destroy();
  }
}

export function createGpuJsBackend(options: GpuJsOptions = {}): Promise<GpuJsBackend> {
  return GpuJsBackend.create(options);
}
