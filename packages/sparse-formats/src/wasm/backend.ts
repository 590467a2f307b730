import { InvalidArgumentError } from '@sparsekit/core';
import type {
  AttentionArgs,
  Backend,
  GatherGemvArgs,
  LinearOptions,
  MatmulOptions,
} from '../backend/contract.js';
import {
  checkGatherGemv,
  checkLinearArgs,
  keepRows,
  matmulOnLinear,
  spmmOnLinear,
} from '../backend/products.js';
import { unsupported } from '../backend/unsupported.js';
import type { CsrMatrix, DenseMatrix, SparseMatrix } from '../types.js';
import { WasmAllocator } from './allocator.js';
import { type AttentionHost, wasmAttention } from './attention.js';
import { type PreparedGather, prepareGather } from './gather.js';
import { KERNELS_SINGLE_WASM_BASE64, KERNELS_WASM_BASE64 } from './generated/kernels-wasm.js';
import { ThreadPool } from './pool.js';
import {
  HEAP_BASE,
  KERNEL_NAMES,
  type PreparedMatrix,
  partition,
  prepareMatrix,
  scratchBytes,
  writeKernelConstants,
} from './prepare.js';

export interface WasmBackendOptions {
  /** Threads, the calling thread included. Default: all cores in Node; 1 in browsers. */
  threads?: number;
  /**
   * Calls with fewer multiply-adds (stored values x batch for `linear`, rows x active columns for
   * `gatherGemv`) run on the calling thread alone, since waking the pool costs more than it saves
   * (default 131072; 0 always uses every thread).
   */
  minParallelWork?: number;
}

const modulePromises = new Map<boolean, Promise<WebAssembly.Module>>();

function decodeBase64(text: string): Uint8Array {
  if (typeof Buffer !== 'undefined') return new Uint8Array(Buffer.from(text, 'base64'));
  const binary = atob(text);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes;
}

/**
 * The compiled kernel module (compiled once per process): the one importing a shared memory, or with
 * `shared: false` the one for a plain memory (pages without SharedArrayBuffer).
 */
export function kernelModule(shared = true): Promise<WebAssembly.Module> {
  let p = modulePromises.get(shared);
  if (p === undefined) {
    const base64 = shared ? KERNELS_WASM_BASE64 : KERNELS_SINGLE_WASM_BASE64;
    p = WebAssembly.compile(decodeBase64(base64) as Uint8Array<ArrayBuffer>);
    modulePromises.set(shared, p);
  }
  return p;
}

/** Whether this environment can share memory between threads (false in non-isolated web pages). */
function sharedMemoryAvailable(): boolean {
  if (typeof SharedArrayBuffer === 'undefined') return false;
  try {
    new WebAssembly.Memory({ initial: 1, maximum: 1, shared: true });
    return true;
  } catch {
    return false;
  }
}

async function defaultThreads(): Promise<number> {
  if (typeof process === 'undefined' || process.versions?.node === undefined) return 1;
  const os = await import('node:os');
  return Math.max(1, Math.min(16, os.availableParallelism()));
}

/**
 * The wasm SIMD backend: kernels compiled from AssemblyScript, run on a persistent pool of worker
 * threads over one shared memory. Weights are copied into that memory on first use (cached per
 * matrix object, released when the matrix is garbage-collected or by `release`); the operands of
 * `matmul` and `attention`, which change every call, are copied in for the call and freed after it.
 * `gatherGemv` runs wasm SIMD kernels over a resident column-major copy of each dense weight (in its
 * own value type, made on first use or by `prepareGather`, freed like the other copies); `sddmm` is
 * not implemented.
 */
export class WasmBackend implements Backend {
  readonly name = 'wasm';
  readonly flavour = 'sync';
  private readonly gathers = new WeakMap<DenseMatrix, PreparedGather>();
  /** See `WasmBackendOptions.minParallelWork`. */
  minParallelWork = 1 << 17;
  private readonly prepared = new WeakMap<SparseMatrix, PreparedMatrix>();
  private readonly finalizer: FinalizationRegistry<number[]>;
  private io: { ptr: number; bytes: number } | undefined;

  private constructor(
    readonly threads: number,
    readonly memory: WebAssembly.Memory,
    readonly allocator: WasmAllocator,
    private readonly pool: ThreadPool,
  ) {
    this.finalizer = new FinalizationRegistry((ptrs) => {
      for (const ptr of ptrs) this.allocator.release(ptr);
    });
  }

  static async create(options: WasmBackendOptions = {}): Promise<WasmBackend> {
    const threads = options.threads ?? (await defaultThreads());
    if (!Number.isInteger(threads) || threads < 1)
      throw new InvalidArgumentError('threads', threads, 'must be a positive integer');
    // Without shared memory (a web page that is not cross-origin isolated) the backend runs on the
    // calling thread with the plain-memory module.
    const shared = sharedMemoryAvailable();
    if (!shared && threads > 1 && options.threads !== undefined) {
      throw new InvalidArgumentError(
        'threads',
        threads,
        'needs SharedArrayBuffer, which this page lacks (serve it cross-origin isolated, or use 1 thread)',
      );
    }
    const module = await kernelModule(shared);
    const memory = new WebAssembly.Memory({ initial: 256, maximum: 65536, shared });
    writeKernelConstants(memory);
    const instance = await WebAssembly.instantiate(module, { env: { memory } });
    const pool = await ThreadPool.create(
      shared ? threads : 1,
      module,
      memory,
      instance.exports as Record<string, unknown>,
      KERNEL_NAMES,
    );
    const backend = new WasmBackend(pool.threads, memory, new WasmAllocator(memory, HEAP_BASE), pool);
    if (options.minParallelWork !== undefined) {
      if (!(options.minParallelWork >= 0)) {
        throw new InvalidArgumentError(
          'minParallelWork',
          options.minParallelWork,
          'must be a non-negative number',
        );
      }
      backend.minParallelWork = options.minParallelWork;
    }
    return backend;
  }

  /** Copy a matrix into wasm memory now (otherwise done on its first use). */
  prepare(w: SparseMatrix): PreparedMatrix {
    let p = this.prepared.get(w);
    if (p === undefined) {
      p = prepareMatrix(this.allocator, w, this.threads);
      this.prepared.set(w, p);
      this.finalizer.register(w, p.allocations, p);
    }
    return p;
  }

  /**
   * Copy a dense matrix into wasm memory column-major for `gatherGemv` now (otherwise done on its
   * first gather call). A separate copy from the one `prepare` makes for `linear`.
   */
  prepareGather(w: DenseMatrix): PreparedGather {
    let g = this.gathers.get(w);
    if (g === undefined) {
      g = prepareGather(this.allocator, w, this.threads);
      this.gathers.set(w, g);
      this.finalizer.register(w, g.allocations, g);
    }
    return g;
  }

  /**
   * A dense matrix (f32, or f16 bits, assumed finite) whose values live in wasm memory (a view of an
   * array from `allocate`) runs where it is, with no copy and nothing cached (its values may change
   * between calls: a KV cache's page summaries).
   */
  private inPlace(w: SparseMatrix): PreparedMatrix | undefined {
    if (w.format !== 'dense' || this.prepared.has(w)) return undefined;
    const ptr = this.residentOffset(w.values);
    if (ptr < 0) return undefined;
    const half = w.dtype === 'f16';
    return {
      rows: w.rows,
      cols: w.cols,
      allocations: [],
      storedValues: w.values.length,
      format: 'dense',
      op: KERNEL_NAMES.indexOf(half ? 'dense_linear_f16' : 'dense_linear_f32'),
      args: [ptr, 0, 0, w.rows, w.cols, 0, 0, 0],
      slots: { x: 1, y: 2, batch: 5, r0: 6, r1: 7 },
      transposedInput: false,
      parts: partition(w.rows, this.threads, undefined, 4),
      bytes: w.values.byteLength,
    };
  }

  /** The byte offset of `a` in wasm memory, or -1 when it lives elsewhere. */
  private residentOffset(a: ArrayBufferView): number {
    return a.buffer === this.memory.buffer || this.residentBuffers.has(a.buffer) ? a.byteOffset : -1;
  }

  /** Free a matrix's copies in wasm memory (for `linear` and for `gatherGemv`). */
  release(w: SparseMatrix): void {
    if (w.format === 'dense') {
      const g = this.gathers.get(w);
      if (g !== undefined) {
        this.gathers.delete(w);
        this.finalizer.unregister(g);
        for (const ptr of g.allocations) this.allocator.release(ptr);
      }
    }
    const p = this.prepared.get(w);
    if (p === undefined) return;
    this.prepared.delete(w);
    this.finalizer.unregister(p);
    for (const ptr of p.allocations) this.allocator.release(ptr);
  }

  /** y = x W^T (+ bias): x [batch, in], W [out, in] in any format; y [batch, out]. */
  linear(x: Float32Array, batch: number, w: SparseMatrix, options: LinearOptions = {}): Float32Array {
    const out = checkLinearArgs(x, batch, w, options);
    if (batch === 0 || w.rows === 0) return out;
    const p = this.inPlace(w) ?? this.prepare(w);
    if (options.rows !== undefined && batch === 1 && p.format === 'dense')
      return this.denseRows(p, x, options.rows, out, options.bias);
    const needsScratch = p.slots.scratch !== undefined;
    const scratchStride = needsScratch ? align64(scratchBytes(p.cols)) : 0;
    // Layout: x as given, x^T (gather kernels only), y, then per-thread scratch; 64-byte aligned.
    // Gather kernels at batch > 1 read x^T and write y^T (columns xtStride(batch) bytes apart).
    const transposed = p.transposedInput && batch > 1;
    const stride = xtStride(batch);
    const xBytes = align64(batch * p.cols * 4 + 16);
    const xtBytes = transposed ? align64(p.cols * stride + 16) : 0;
    const yBytes = align64(batch * p.rows * 4 + 16);
    const ytBytes = transposed ? align64(p.rows * stride + 16) : 0;
    const base = align64(
      this.ioRegion(xBytes + xtBytes + yBytes + ytBytes + scratchStride * this.threads + 64),
    );
    const xtPtr = base + xBytes;
    const yPtr = xtPtr + xtBytes;
    const ytPtr = yPtr + yBytes;
    const scratchBase = ytPtr + ytBytes;
    new Float32Array(this.memory.buffer, base, batch * p.cols).set(x);
    if (transposed) this.transpose(base, xtPtr, batch, p.cols, p.cols * 4, stride);
    const args = p.args.slice();
    args[p.slots.x] = transposed ? xtPtr : base;
    args[p.slots.y] = transposed ? ytPtr : yPtr;
    args[p.slots.batch] = batch;
    this.pool.run({
      op: p.op,
      args,
      r0Position: p.slots.r0,
      r1Position: p.slots.r1,
      // Small calls run on the calling thread: waking the pool costs more than it saves.
      parts: p.storedValues * batch < this.minParallelWork ? singlePart(p) : p.parts,
      ...(p.slots.scratch === undefined
        ? {}
        : { scratchPosition: p.slots.scratch, scratchBase, scratchStride }),
    });
    if (transposed) this.transpose(ytPtr, yPtr, p.rows, batch, stride, p.rows * 4);
    out.set(new Float32Array(this.memory.buffer, yPtr, batch * p.rows));
    const bias = options.bias;
    if (bias !== undefined) {
      for (let b = 0; b < batch; b++) for (let o = 0; o < p.rows; o++) out[b * p.rows + o]! += bias[o]!;
    }
    if (options.rows !== undefined) keepRows(out, batch, p.rows, options.rows);
    return out;
  }

  /**
   * The listed output rows of a dense weight at batch 1 (LinearOptions.rows): the threads split the
   * list, each row a SIMD dot product; only those rows of W are read, and the others are 0.
   */
  private denseRows(
    p: PreparedMatrix,
    x: Float32Array,
    rows: Int32Array,
    out: Float32Array,
    bias: Float32Array | undefined,
  ): Float32Array {
    out.fill(0);
    if (rows.length === 0) return out;
    const xBytes = align64(p.cols * 4 + 16);
    const listBytes = align64(rows.length * 4 + 16);
    const base = align64(this.ioRegion(xBytes + listBytes + align64(p.rows * 4 + 16) + 64));
    const listPtr = base + xBytes;
    const yPtr = listPtr + listBytes;
    new Float32Array(this.memory.buffer, base, p.cols).set(x);
    new Int32Array(this.memory.buffer, listPtr, rows.length).set(rows);
    const half = p.op === KERNEL_NAMES.indexOf('dense_linear_f16');
    const work = rows.length * p.cols;
    this.pool.run({
      op: KERNEL_NAMES.indexOf(half ? 'dense_rows_f16' : 'dense_rows_f32'),
      // dense_rows(w, x, y, cols, list, i0, i1)
      args: [p.args[0]!, base, yPtr, p.cols, listPtr, 0, 0],
      r0Position: 5,
      r1Position: 6,
      parts:
        work < this.minParallelWork
          ? Int32Array.of(0, rows.length)
          : partition(rows.length, this.threads, undefined, 4),
    });
    const y = new Float32Array(this.memory.buffer, yPtr, p.rows);
    for (const r of rows) out[r] = y[r]! + (bias === undefined ? 0 : bias[r]!);
    return out;
  }

  /** y = A x. */
  spmv(a: SparseMatrix, x: Float32Array, out?: Float32Array): Float32Array {
    return this.linear(x, 1, a, out === undefined ? {} : { out });
  }

  /** C = A B with B dense [cols, n]: computed as (B^T A^T)^T with the linear kernel. */
  spmm(a: SparseMatrix, b: Float32Array, n: number, out?: Float32Array): Float32Array {
    return spmmOnLinear((x, batch, w, o) => this.linear(x, batch, w, o), a, b, n, out);
  }

  sddmm(): CsrMatrix {
    return unsupported(this.name, 'sddmm', 'the reference backend has it (referenceBackend.sddmm)');
  }

  /** C = A B (or A B^T) for operands of this call: B is copied in, multiplied and freed. */
  matmul(
    a: Float32Array,
    b: Float32Array,
    m: number,
    k: number,
    n: number,
    options: MatmulOptions = {},
  ): Float32Array {
    return matmulOnLinear(this.transientLinear, a, b, m, k, n, options);
  }

  /**
   * Softmax attention on the SIMD kernels of asm/attention.ts, reading only the keys the mask lets
   * each query read (see ./attention.ts); keys and values from `allocate` are read in place.
   */
  attention(args: AttentionArgs): Float32Array {
    return wasmAttention(this.attentionHost, args);
  }

  /**
   * A zero-filled array in wasm memory that the kernels read in place (a KV cache's lanes). Views of
   * a shared memory stay valid as it grows; without shared memory (a page that is not cross-origin
   * isolated) growing would detach them, so a plain array is returned instead.
   */
  allocate(length: number): Float32Array {
    if (!Number.isSafeInteger(length) || length < 0)
      throw new InvalidArgumentError('length', length, 'must be a non-negative integer');
    if (!(this.memory.buffer instanceof SharedArrayBuffer)) return new Float32Array(length);
    const ptr = this.allocator.alloc(length * 4);
    const buffer = this.memory.buffer;
    this.residentBuffers.add(buffer);
    const view = new Float32Array(buffer, ptr, length);
    view.fill(0);
    this.allocations.set(view, ptr);
    return view;
  }

  /** Give back an array from `allocate` (arrays from elsewhere are ignored). */
  free(array: Float32Array): void {
    const ptr = this.allocations.get(array);
    if (ptr === undefined) return;
    this.allocations.delete(array);
    this.allocator.release(ptr);
  }

  private readonly residentBuffers = new WeakSet<ArrayBufferLike>();
  private readonly allocations = new WeakMap<Float32Array, number>();

  private host: AttentionHost | undefined;
  private get attentionHost(): AttentionHost {
    if (this.host === undefined) {
      const backend = this;
      this.host = {
        memory: this.memory,
        allocator: this.allocator,
        pool: this.pool,
        threads: this.threads,
        get minParallelWork() {
          return backend.minParallelWork;
        },
        region: (bytes) => this.ioRegion(bytes),
        residentOffset: (a) => this.residentOffset(a),
        linear: (x, batch, w, o) => this.transientLinear(x, batch, w, o),
      };
    }
    return this.host;
  }

  /**
   * y = W[:, active] x[active] (+ bias) on the resident column-major copy of W: the active x values
   * and indices are copied into wasm memory; the active columns are split across the threads (each
   * with its own partial y, summed on the calling thread), or the rows when few columns are active;
   * calls under `minParallelWork` multiply-adds (rows x active) run on the calling thread.
   */
  gatherGemv(args: GatherGemvArgs): Float32Array {
    checkGatherGemv(args);
    const { w, x, active, bias } = args;
    const out = args.out ?? new Float32Array(w.rows);
    if (w.rows === 0) return out;
    const g = this.prepareGather(w);
    const count = active.length;
    // Layout: active x values, active indices, bias, y, then one partial y per further thread (for
    // the column split); bias and each y padded to ld rows; 64-byte aligned.
    const listBytes = align64(count * 4 + 16);
    const rowBytes = align64(g.ld * 4);
    const xaPtr = align64(this.ioRegion(2 * listBytes + (1 + this.threads) * rowBytes + 64));
    const indexPtr = xaPtr + listBytes;
    const biasPtr = indexPtr + listBytes;
    const yPtr = biasPtr + rowBytes;
    const buffer = this.memory.buffer;
    const xa = new Float32Array(buffer, xaPtr, count);
    new Int32Array(buffer, indexPtr, count).set(active);
    for (let k = 0; k < count; k++) xa[k] = x[active[k]!]!;
    if (bias !== undefined) new Float32Array(buffer, biasPtr, w.rows).set(bias);
    const biasArg = bias === undefined ? 0 : biasPtr;
    const single = count * w.rows < this.minParallelWork || this.threads === 1;
    // Threads split the active columns (each reading whole columns, as one run each, into its own
    // partial y, summed after) rather than the rows, unless too few columns are active to give every
    // thread two groups of 4. Measured against the row split (2 threads, weights beyond the
    // last-level cache, 4096x4096 / 4096x11008 / 11008x4096): 10-20% faster at 0-50% sparsity, even
    // at 90%; the row split halves each column's run, and short runs cost memory bandwidth.
    if (!single && count >= 8 * this.threads) {
      const parts = columnParts(count, this.threads);
      this.pool.run({
        op: g.columnsOp,
        // gather_gemv_columns(wt, ld, xa, active, rows, bias, y0, partial, k0, k1, ...)
        args: [g.ptr, g.ld, xaPtr, indexPtr, w.rows, biasArg, yPtr, 0, 0, 0, ...g.extraArgs],
        r0Position: 8,
        r1Position: 9,
        parts,
        scratchPosition: 7,
        scratchBase: yPtr,
        scratchStride: rowBytes,
      });
      if (parts.length > 2) {
        this.pool.run({
          op: GATHER_REDUCE,
          // gather_reduce(y, stride, parts, r0, r1), on the calling thread
          args: [yPtr, rowBytes, parts.length - 1, 0, 0],
          r0Position: 3,
          r1Position: 4,
          parts: singlePart(g),
        });
      }
    } else {
      this.pool.run({
        op: g.op,
        // gather_gemv(wt, ld, xa, active, count, bias, y, r0, r1, ...)
        args: [g.ptr, g.ld, xaPtr, indexPtr, count, biasArg, yPtr, 0, 0, ...g.extraArgs],
        r0Position: 7,
        r1Position: 8,
        parts: single ? singlePart(g) : g.parts,
      });
    }
    out.set(new Float32Array(buffer, yPtr, w.rows));
    return out;
  }

  /** `linear` on a matrix that lives for one call: its wasm copy is freed at once, not cached. */
  private readonly transientLinear = (
    x: Float32Array,
    batch: number,
    w: SparseMatrix,
    options?: LinearOptions,
  ): Float32Array => {
    try {
      return this.linear(x, batch, w, options);
    } finally {
      this.release(w);
    }
  };

  /**
   * STREAM triad a = b + s c over `elements` floats per array, on all threads; returns the best
   * GB/s of `repeats` runs (counting 3 arrays x 4 bytes per element, as STREAM does).
   */
  triad(elements: number, repeats = 5): number {
    const bytes = elements * 4;
    const a = this.allocator.alloc(bytes);
    const b = this.allocator.alloc(bytes);
    const c = this.allocator.alloc(bytes);
    try {
      new Float32Array(this.memory.buffer, b, elements).fill(1);
      new Float32Array(this.memory.buffer, c, elements).fill(2);
      let best = 0;
      const parts = partition(elements, this.threads, undefined, 1024);
      for (let r = 0; r < repeats; r++) {
        const start = performance.now();
        this.pool.run({
          op: KERNEL_NAMES.indexOf('triad'),
          args: [a, b, c, 3, 0, 0],
          r0Position: 4,
          r1Position: 5,
          parts,
        });
        const seconds = (performance.now() - start) / 1000;
        best = Math.max(best, (3 * bytes) / seconds / 1e9);
      }
      return best;
    } finally {
      this.allocator.release(a);
      this.allocator.release(b);
      this.allocator.release(c);
    }
  }

  /** Stop the worker threads. The backend cannot be used afterwards. */
  async dispose(): Promise<void> {
    await this.pool.dispose();
  }

  /** dst [m, n] = src [n, m]^T on all threads (row strides in bytes). */
  private transpose(
    src: number,
    dst: number,
    n: number,
    m: number,
    srcStride: number,
    dstStride: number,
  ): void {
    this.pool.run({
      op: TRANSPOSE,
      args: [src, dst, n, m, srcStride, dstStride, 0, 0],
      r0Position: 6,
      r1Position: 7,
      parts: partition(m, this.threads, undefined, 4),
    });
  }

  private ioRegion(bytes: number): number {
    if (this.io === undefined || this.io.bytes < bytes) {
      if (this.io !== undefined) this.allocator.release(this.io.ptr);
      const size = Math.max(bytes, (this.io?.bytes ?? 0) * 2);
      this.io = { ptr: this.allocator.alloc(size), bytes: size };
    }
    return this.io.ptr;
  }
}

function align64(n: number): number {
  return Math.ceil(n / 64) * 64;
}

const TRANSPOSE = KERNEL_NAMES.indexOf('transpose');
const GATHER_REDUCE = KERNEL_NAMES.indexOf('gather_reduce');

/** The active columns [0, count) split across threads at multiples of 4, empty parts dropped. */
function columnParts(count: number, threads: number): Int32Array {
  const parts = partition(count, threads, undefined, 4);
  return Int32Array.from(parts.filter((p, i) => i === 0 || p > parts[i - 1]!));
}

const singleParts = new WeakMap<PreparedMatrix | PreparedGather, Int32Array>();

/** The whole range of `p.parts` as one part (the calling thread alone). */
function singlePart(p: PreparedMatrix | PreparedGather): Int32Array {
  let parts = singleParts.get(p);
  if (parts === undefined) {
    parts = Int32Array.of(0, p.parts[p.parts.length - 1]!);
    singleParts.set(p, parts);
  }
  return parts;
}

/** Bytes between columns of x^T, as asm/kernels.ts `xtStride` computes them. */
function xtStride(batch: number): number {
  return (Math.ceil((batch * 4) / 64) | 1) * 64;
}

/** Create the wasm backend (compiles the module once, starts the worker threads). */
export function createWasmBackend(options: WasmBackendOptions = {}): Promise<WasmBackend> {
  return WasmBackend.create(options);
}
