// The WebGPU backend: matrices uploaded once and kept on the device, y = x W^T per call with an
// async readback. Same shape as the CPU WasmBackend (prepare / linear / spmv / release / dispose).
import { InvalidArgumentError, ShapeMismatchError, UnsupportedOpError } from '@sparsekit/core';
import {
  type AsyncBackend,
  type AttentionArgs,
  type CsrMatrix,
  checkGatherGemv,
  checkRows,
  type DenseMatrix,
  keepRows,
  type LinearOptions,
  type MatmulOptions,
  type SparseMatrix,
  validate,
} from '@sparsekit/sparse-formats';
import { gpuAttention, gpuMatmul, gpuSpmm } from './contract-ops.js';
import { type GpuColumns, type GpuGatherGemvArgs, gpuGatherGemv, uploadColumns } from './gather-gemv.js';
import { type AcquiredDevice, acquireDevice, type DeviceOptions } from './gpu.js';
import { type GpuMatrix, uploadMatrix } from './upload.js';
import { BATCH_TILE, bsrKernel, GEMM_TILE, gemmKernel, rowKernel } from './wgsl.js';

export type { GpuMatrix } from './upload.js';

export interface GpuLinearOptions extends LinearOptions {
  /**
   * Dense weights only: 'gemm' (tiled, for wide batches), 'rows' (one workgroup per output row, for
   * decode) or 'auto' (rows up to 4 batch rows, gemm above; the default).
   */
  denseKernel?: 'auto' | 'gemm' | 'rows';
}

const padded = (bytes: number) => Math.max(4, Math.ceil(bytes / 4) * 4);

/**
 * The WebGPU backend of the backend contract (asynchronous: results are read back). Weights are
 * uploaded once per matrix object and stay resident until `release`; `linear` runs the format's
 * kernel, `attention` the block-sparse kernel for prefill calls (see `gpuAttention`), `matmul` and
 * `spmm` the linear kernel, `gatherGemv` the gather kernel over a resident column-major copy of the
 * weight (see `gpuGatherGemv`). `sddmm` is not implemented (a typed error).
 */
export class GpuBackend implements AsyncBackend {
  readonly name = 'webgpu';
  readonly flavour = 'async';
  /** Attention calls run on the block-sparse kernel, and on the CPU loops (see `gpuAttention`). */
  readonly stats = { attentionOnKernel: 0, attentionOnCpu: 0 };
  private readonly pipelines = new Map<string, GPUComputePipeline>();
  private readonly prepared = new WeakMap<SparseMatrix, GpuMatrix>();
  /** Column-major (W^T) copies of dense weights for gatherGemv, made on first use. */
  private readonly columns = new WeakMap<DenseMatrix, GpuColumns>();
  private disposed = false;

  private constructor(
    readonly device: GPUDevice,
    /** The adapter's description. */
    readonly adapter: string,
  ) {}

  /** A backend on the given or an automatically chosen device; NoGpuAdapterError when none exists. */
  static async create(options: DeviceOptions = {}): Promise<GpuBackend> {
    const acquired: AcquiredDevice = await acquireDevice(options);
    return new GpuBackend(acquired.device, acquired.adapter);
  }

  /** Upload a matrix once (dense, CSR, N:M, bitmask or BSR; f32 or f16 values). Cached per matrix object. */
  prepare(matrix: SparseMatrix | GpuMatrix): GpuMatrix {
    this.check();
    if ('buffers' in matrix) return matrix;
    const cached = this.prepared.get(matrix);
    if (cached !== undefined) return cached;
    validate(matrix);
    const gpu = uploadMatrix(this, matrix);
    this.prepared.set(matrix, gpu);
    return gpu;
  }

  /** y [batch, rows] = x [batch, cols] W^T (+ bias), read back asynchronously. */
  async linear(
    x: Float32Array,
    batch: number,
    weight: SparseMatrix | GpuMatrix,
    options: GpuLinearOptions = {},
  ): Promise<Float32Array> {
    const w = this.prepare(weight);
    if (!Number.isInteger(batch) || batch < 0)
      throw new InvalidArgumentError('batch', batch, 'must be a non-negative integer');
    if (x.length !== batch * w.cols) throw new ShapeMismatchError([batch, w.cols], [x.length], 'x');
    if (options.bias !== undefined && options.bias.length !== w.rows) {
      throw new ShapeMismatchError([w.rows], [options.bias.length], 'bias');
    }
    if (options.out !== undefined && options.out.length !== batch * w.rows)
      throw new ShapeMismatchError([batch * w.rows], [options.out.length], 'out');
    if (options.rows !== undefined) checkRows(options.rows, w.rows);
    if (batch === 0 || w.rows === 0) return options.out ?? new Float32Array(batch * w.rows);
    const out = this.device.createBuffer({
      size: padded(batch * w.rows * 4),
      usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC,
    });
    const transient = [this.buffer(x), this.buffer(options.bias ?? new Float32Array(1)), out];
    const params = this.uniform([
      w.rows,
      w.cols,
      batch,
      options.bias === undefined ? 0 : 1,
      w.extra,
      0,
      0,
      0,
    ]);
    transient.push(params);
    try {
      const { pipeline, groups } = this.plan(w, batch, options);
      const entries = [w.buffers[0]!, transient[0]!, transient[1]!, out, params, ...w.buffers.slice(1)];
      this.dispatch(pipeline, entries, groups);
      const y = await this.read(out, batch * w.rows);
      if (options.rows !== undefined) keepRows(y, batch, w.rows, options.rows); // no row-subset kernel here
      if (options.out === undefined) return y;
      options.out.set(y);
      return options.out;
    } finally {
      for (const b of transient) b.destroy();
    }
  }

  /**
   * Kernel time of y = x W^T: `reps` dispatches encoded in one pass and submitted together, timed to
   * queue completion, divided by `reps`; the median of `trials` such runs, in milliseconds. Uploads
   * and readback are excluded (the weight is resident, x and y stay on the device).
   */
  async timeLinear(
    batch: number,
    weight: SparseMatrix | GpuMatrix,
    options: GpuLinearOptions & { reps?: number; trials?: number } = {},
  ): Promise<number> {
    const w = this.prepare(weight);
    const x = this.buffer(new Float32Array(batch * w.cols).fill(0.5));
    const bias = this.buffer(new Float32Array(1));
    const out = this.device.createBuffer({
      size: padded(batch * w.rows * 4),
      usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC,
    });
    const params = this.uniform([w.rows, w.cols, batch, 0, w.extra, 0, 0, 0]);
    try {
      const { pipeline, groups } = this.plan(w, batch, options);
      return await this.timeDispatch(
        pipeline,
        [w.buffers[0]!, x, bias, out, params, ...w.buffers.slice(1)],
        groups,
        options,
      );
    } finally {
      for (const b of [x, bias, out, params]) b.destroy();
    }
  }

  /** C = A B for A in any format the kernels take and B [cols, n] dense. */
  spmm(a: SparseMatrix, b: Float32Array, n: number, out?: Float32Array): Promise<Float32Array> {
    return gpuSpmm(this, a, b, n, out);
  }

  sddmm(): Promise<CsrMatrix> {
    return Promise.reject(new UnsupportedOpError('sddmm', this.name, 'the reference backend has it'));
  }

  matmul(
    a: Float32Array,
    b: Float32Array,
    m: number,
    k: number,
    n: number,
    options?: MatmulOptions,
  ): Promise<Float32Array> {
    return gpuMatmul(this, a, b, m, k, n, options);
  }

  attention(args: AttentionArgs): Promise<Float32Array> {
    return gpuAttention(this, args);
  }

  /**
   * y [out] = W[:, active] x[active] (+ bias) for a dense W [out, in] (f32 or f16): only the active
   * columns of W and entries of x are read. W's transposed copy stays on the device until `release`.
   */
  async gatherGemv(args: GpuGatherGemvArgs): Promise<Float32Array> {
    this.check();
    checkGatherGemv(args);
    const columns = args.active.length === 0 || args.w.rows === 0 ? undefined : this.columnsOf(args.w);
    return gpuGatherGemv(this, columns, args);
  }

  /** @internal the resident W^T of a dense weight, uploaded on first use. */
  columnsOf(w: DenseMatrix): GpuColumns {
    this.check();
    let columns = this.columns.get(w);
    if (columns === undefined) {
      columns = uploadColumns(this, w);
      this.columns.set(w, columns);
    }
    return columns;
  }

  /** y = W x for one vector x [cols]. */
  spmv(weight: SparseMatrix | GpuMatrix, x: Float32Array): Promise<Float32Array> {
    return this.linear(x, 1, weight);
  }

  /** Free a matrix's device memory: its prepared copy, and for a dense one its gatherGemv columns. */
  release(matrix: SparseMatrix | GpuMatrix): void {
    if (!('buffers' in matrix) && matrix.format === 'dense') {
      this.columns.get(matrix)?.buffer.destroy();
      this.columns.delete(matrix);
    }
    const gpu = 'buffers' in matrix ? matrix : this.prepared.get(matrix);
    if (gpu === undefined) return;
    for (const b of gpu.buffers) b.destroy();
    if (!('buffers' in matrix)) this.prepared.delete(matrix);
  }

  /** Destroy the device (when this backend created it). */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.device.destroy();
  }

  /** @internal a compute pipeline, compiled once per source. */
  pipeline(key: string, code: string, constants?: Record<string, number>): GPUComputePipeline {
    let p = this.pipelines.get(key);
    if (p === undefined) {
      const module = this.device.createShaderModule({ code });
      p = this.device.createComputePipeline({
        layout: 'auto',
        compute: { module, entryPoint: 'main', ...(constants === undefined ? {} : { constants }) },
      });
      this.pipelines.set(key, p);
    }
    return p;
  }

  /** @internal a storage buffer holding `data`. */
  buffer(data: ArrayBufferView): GPUBuffer {
    this.check();
    const buffer = this.device.createBuffer({
      size: padded(data.byteLength),
      usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST | GPUBufferUsage.COPY_SRC,
      mappedAtCreation: true,
    });
    new Uint8Array(buffer.getMappedRange()).set(
      new Uint8Array(data.buffer, data.byteOffset, data.byteLength),
    );
    buffer.unmap();
    return buffer;
  }

  /** @internal a uniform buffer of eight 32-bit words (u32, or f32 where given as such). */
  uniform(words: number[], floats: readonly number[] = []): GPUBuffer {
    const data = new ArrayBuffer(32);
    const u = new Uint32Array(data);
    const f = new Float32Array(data);
    words.forEach((v, i) => {
      if (floats.includes(i)) f[i] = v;
      else u[i] = v;
    });
    const buffer = this.device.createBuffer({
      size: 32,
      usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
    });
    this.device.queue.writeBuffer(buffer, 0, data);
    return buffer;
  }

  /** @internal encode one dispatch with bindings 0..n-1 = `entries`. */
  dispatch(pipeline: GPUComputePipeline, entries: GPUBuffer[], groups: [number, number, number]): void {
    const bindGroup = this.device.createBindGroup({
      layout: pipeline.getBindGroupLayout(0),
      entries: entries.map((buffer, binding) => ({ binding, resource: { buffer } })),
    });
    const encoder = this.device.createCommandEncoder();
    const pass = encoder.beginComputePass();
    pass.setPipeline(pipeline);
    pass.setBindGroup(0, bindGroup);
    pass.dispatchWorkgroups(...groups);
    pass.end();
    this.device.queue.submit([encoder.finish()]);
  }

  /**
   * @internal median milliseconds of one dispatch: `reps` dispatches in one pass, submitted together
   * and timed to queue completion, over `trials` runs after a warm-up.
   */
  async timeDispatch(
    pipeline: GPUComputePipeline,
    entries: GPUBuffer[],
    groups: [number, number, number],
    options: { reps?: number; trials?: number } = {},
  ): Promise<number> {
    const bindGroup = this.device.createBindGroup({
      layout: pipeline.getBindGroupLayout(0),
      entries: entries.map((buffer, binding) => ({ binding, resource: { buffer } })),
    });
    const staging = this.device.createBuffer({
      size: 4,
      usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
    });
    const run = async (reps: number) => {
      const encoder = this.device.createCommandEncoder();
      const pass = encoder.beginComputePass();
      pass.setPipeline(pipeline);
      pass.setBindGroup(0, bindGroup);
      for (let r = 0; r < reps; r++) pass.dispatchWorkgroups(...groups);
      pass.end();
      // Completion is observed through a 4-byte readback (queue.onSubmittedWorkDone does not
      // settle in every Node WebGPU implementation); its cost is spread over `reps` dispatches.
      encoder.copyBufferToBuffer(entries[3]!, 0, staging, 0, 4);
      const t0 = performance.now();
      this.device.queue.submit([encoder.finish()]);
      await staging.mapAsync(GPUMapMode.READ);
      staging.unmap();
      return (performance.now() - t0) / reps;
    };
    try {
      await run(2);
      const times: number[] = [];
      for (let t = 0; t < (options.trials ?? 5); t++) times.push(await run(options.reps ?? 20));
      return times.sort((a, b) => a - b)[times.length >> 1]!;
    } finally {
      staging.destroy();
    }
  }

  /** @internal copy `count` floats of `buffer` back to the host. */
  async read(buffer: GPUBuffer, count: number): Promise<Float32Array> {
    const staging = this.device.createBuffer({
      size: padded(count * 4),
      usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
    });
    const encoder = this.device.createCommandEncoder();
    encoder.copyBufferToBuffer(buffer, 0, staging, 0, padded(count * 4));
    this.device.queue.submit([encoder.finish()]);
    await staging.mapAsync(GPUMapMode.READ);
    const out = new Float32Array(staging.getMappedRange().slice(0, count * 4));
    staging.unmap();
    staging.destroy();
    return out;
  }

  /** The kernel and grid for y = x W^T. */
  private plan(
    w: GpuMatrix,
    batch: number,
    options: GpuLinearOptions,
  ): { pipeline: GPUComputePipeline; groups: [number, number, number] } {
    const mode = options.denseKernel ?? 'auto';
    const gemm = w.format === 'dense' && (mode === 'gemm' || (mode === 'auto' && batch > BATCH_TILE));
    if (gemm) {
      return {
        pipeline: this.pipeline(`gemm-${w.dtype}`, gemmKernel(w.dtype)),
        groups: [Math.ceil(w.rows / GEMM_TILE), Math.ceil(batch / GEMM_TILE), 1],
      };
    }
    // One workgroup per output row, or per block row of a BSR weight.
    const rows = w.format === 'bsr' ? w.rows / w.blockRows! : w.rows;
    return {
      pipeline: this.rowPipeline(w),
      groups: [Math.min(rows, 65535), Math.ceil(rows / 65535), Math.ceil(batch / BATCH_TILE)],
    };
  }

  private rowPipeline(w: GpuMatrix): GPUComputePipeline {
    if (w.format === 'bsr')
      return this.pipeline(`bsr-${w.dtype}-${w.blockRows}x${w.blockCols}`, bsrKernel(w.dtype), {
        R: w.blockRows!,
        C: w.blockCols!,
      });
    const code = rowKernel(w.format, w.dtype);
    if (w.format === 'nm') return this.pipeline(`nm-${w.dtype}-${w.n}-${w.m}`, code, { N: w.n!, M: w.m! });
    return this.pipeline(`${w.format}-${w.dtype}`, code);
  }

  private check(): void {
    if (this.disposed) throw new InvalidArgumentError('GpuBackend', 'disposed', 'create a new backend');
  }
}

/** A GpuBackend on the given or an automatically chosen adapter. */
export function createGpuBackend(options: DeviceOptions = {}): Promise<GpuBackend> {
  return GpuBackend.create(options);
}
