// A gpu.js backend for SpMM / SpMV where only WebGL exists (older browsers). gpu.js is an optional
// peer: nothing here loads it until `createGpuJsBackend` is called.
import { InvalidArgumentError, ShapeMismatchError, SparsekitError } from '@sparsekit/core';
import {
  type AttentionArgs,
  attention,
  type Backend,
  type CsrMatrix,
  checkRows,
  type DenseMatrix,
  keepRows,
  type LinearOptions,
  type MatmulOptions,
  matmulOnLinear,
  type SparseMatrix,
  spmmOnLinear,
  toCsr,
  unsupported,
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
interface PreparedWeight {
  kind: 'dense' | 'csr';
  values: Float32Array;
  indptr?: Int32Array;
  indices?: Int32Array;
  longest: number;
}

export class GpuJsUnavailableError extends SparsekitError {
  static override readonly code = 'kernels-gpu/gpujs-unavailable';
  static override readonly hint = 'npm install gpu.js@2.24.1, or use the WebGPU backend';

  constructor(cause: unknown) {
    super(
      GpuJsUnavailableError.code,
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

/**
 * gpu.js behind the backend contract (synchronous): `linear` (dense and CSR kernels; other formats
 * through CSR) with the bias added after the kernel; `spmm`, `matmul` and `attention` built on it.
 * `sddmm` and `gatherGemv` are not implemented (typed errors).
 */
export class GpuJsBackend implements Backend {
  readonly name = 'gpu.js';
  readonly flavour = 'sync';

  /** Compiled kernels by (format, rows, batch, longest row): compiled once, not per call. */
  private readonly kernels = new Map<string, GpuJsKernel>();
  private readonly prepared = new WeakMap<SparseMatrix, PreparedWeight>();

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

  /** y [batch, rows] = x [batch, cols] W^T (+ bias) for a dense or CSR weight (other formats go through CSR). */
  linear(x: Float32Array, batch: number, weight: SparseMatrix, options: LinearOptions = {}): Float32Array {
    if (!Number.isInteger(batch) || batch < 0)
      throw new InvalidArgumentError('batch', batch, 'must be a non-negative integer');
    if (x.length !== batch * weight.cols) throw new ShapeMismatchError([batch, weight.cols], [x.length], 'x');
    const rows = weight.rows;
    const { bias } = options;
    if (bias !== undefined && bias.length !== rows)
      throw new ShapeMismatchError([rows], [bias.length], 'bias');
    if (options.out !== undefined && options.out.length !== batch * rows)
      throw new ShapeMismatchError([batch * rows], [options.out.length], 'out');
    if (options.rows !== undefined) checkRows(options.rows, rows);
    if (batch === 0 || rows === 0) return options.out ?? new Float32Array(batch * rows);
    const prepared = this.prepare(weight);
    const key = `${prepared.kind}:${rows}:${batch}:${prepared.longest}`;
    let kernel = this.kernels.get(key);
    if (kernel === undefined) {
      kernel =
        prepared.kind === 'dense'
          ? this.gpu.createKernel(denseKernel as never).setOutput([rows, batch])
          : this.gpu
              .createKernel(csrKernel as never)
              .setOutput([rows, batch])
              .setLoopMaxIterations(prepared.longest);
      this.kernels.set(key, kernel);
    }
    const result: unknown =
      prepared.kind === 'dense'
        ? kernel(prepared.values, x, weight.cols)
        : kernel(prepared.values, prepared.indptr!, prepared.indices!, x, weight.cols);
    // gpu.js returns one Float32Array per batch row.
    const out = options.out ?? new Float32Array(batch * rows);
    (result as Float32Array[]).forEach((row, b) => {
      out.set(row, b * rows);
    });
    if (bias !== undefined) for (let i = 0; i < out.length; i++) out[i]! += bias[i % rows]!;
    if (options.rows !== undefined) keepRows(out, batch, rows, options.rows); // no row-subset kernel here
    return out;
  }

  /** C = A B, B [cols, n] dense: C^T = B^T A^T with the linear kernel. */
  spmm(a: SparseMatrix, b: Float32Array, n: number, out?: Float32Array): Float32Array {
    return spmmOnLinear((x, batch, w, o) => this.linear(x, batch, w, o), a, b, n, out);
  }

  sddmm(): CsrMatrix {
    return unsupported(this.name, 'sddmm', 'the reference backend has it');
  }

  matmul(a: Float32Array, b: Float32Array, m: number, k: number, n: number, options?: MatmulOptions) {
    return matmulOnLinear((x, batch, w, o) => this.linear(x, batch, w, o), a, b, m, k, n, options);
  }

  attention(args: AttentionArgs): Float32Array {
    return attention(args, (x, batch, w, o) => this.linear(x, batch, w, o));
  }

  gatherGemv(): Float32Array {
    return unsupported(this.name, 'gatherGemv', 'the reference and wasm backends have it');
  }

  /**
   * The kernel arguments of a weight, made once per matrix object: f32 values (f16 decoded), CSR
   * arrays for sparse formats (converted once) and the longest row. gpu.js still copies them to the
   * device on each call: it has no buffers that outlive a kernel call outside its pipeline mode.
   */
  private prepare(weight: SparseMatrix): PreparedWeight {
    let p = this.prepared.get(weight);
    if (p === undefined) {
      if (weight.format === 'dense') {
        p = { kind: 'dense', values: valuesF32((weight as DenseMatrix).values, weight.dtype), longest: 0 };
      } else {
        const w: CsrMatrix = weight.format === 'csr' ? weight : toCsr(weight);
        let longest = 1;
        for (let r = 0; r < w.rows; r++) longest = Math.max(longest, w.indptr[r + 1]! - w.indptr[r]!);
        p = {
          kind: 'csr',
          values: valuesF32(w.values, w.dtype),
          indptr: w.indptr,
          indices: Int32Array.from(w.indices),
          longest,
        };
      }
      this.prepared.set(weight, p);
    }
    return p;
  }

  /** Forget what is kept for a matrix. */
  release(matrix: SparseMatrix): void {
    this.prepared.delete(matrix);
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
