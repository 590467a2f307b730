// The native backend: the backend contract on the Node-API addon's kernels (dense, CSR and
// fixed-length compressed rows, f32 / f16 values, i32 / u16 indices; AVX-512, AVX2 + FMA or
// portable, chosen at load; rows split over a thread pool by nonzeros). Every format runs on those
// kernels: COO, CSC, bitmask and BSR as CSR (2:4 at batch 1 and BSR in 1 x 8k, 8k x 1 or small
// blocks have kernels of their own), N:M as rows of n x groups slots, each converted once
// per matrix and kept while the matrix lives. The composed ops (spmm, matmul, attention) run the
// reference compositions over the native linear (attention beyond plain prefill has its own row
// kernel), the gather GEMV has its own kernel, and sddmm is the reference kernel.
import { availableParallelism } from 'node:os';
import { InvalidArgumentError } from '@sparsekit/core';
import {
  type AttentionArgs,
  type AttentionMask,
  attention,
  type Backend,
  type BsrMatrix,
  type CsrMatrix,
  checkGatherGemv,
  checkLinearArgs,
  type DenseMatrix,
  type GatherGemvArgs,
  keepRows,
  keySegments,
  type LinearOptions,
  type MatmulOptions,
  matmulOnLinear,
  type NmMatrix,
  PRODUCT_MIN_SEQ,
  readNmPosition,
  resolveAttention,
  type SparseMatrix,
  sddmm,
  spmmOnLinear,
  toCsr,
  transposedColumns,
  validate,
} from '@sparsekit/sparse-formats';
import { type NativeKernelSet, type NativeKernels, nativeKernels } from './load.js';

export interface NativeBackendOptions {
  /** Threads of the kernel pool (default: the machine's cores, at most 16). */
  threads?: number;
  /**
   * The best kernels at or below these that the CPU runs (default 'avx512': AVX-512 where the CPU
   * has F, BW, VL and DQ, else AVX2 where it has AVX2, FMA and F16C, else portable); lower ones
   * are for tests and comparisons.
   */
  kernels?: NativeKernelSet;
  /**
   * Dense f32 weights at batch 16 and wider run on a system BLAS (OpenBLAS or BLIS, loaded at run
   * time where installed) when true (default); SPARSEKIT_BLAS=0 never loads one.
   */
  blas?: boolean;
}

/** A weight as the kernels read it: dense, or compressed rows (indptr, or a fixed row length). */
type Prepared =
  | { kind: 'dense'; values: Float32Array | Uint16Array; f16: boolean }
  | {
      kind: 'rows';
      indptr: Int32Array | null;
      rowLength: number;
      indices: Int32Array | Uint16Array;
      values: Float32Array | Uint16Array;
      f16: boolean;
      /** 2:4 with a width that is a multiple of 8: the matrix, for the batch-1 permute kernel. */
      nm24?: NmMatrix;
      /** BSR whose blocks the block kernels take (see `blockKernelFits`): the matrix. */
      blocks?: BsrMatrix;
    };

/** The backend whose threads, kernels and BLAS switch the addon holds now. */
let selected: NativeBackend | undefined;

export class NativeBackend implements Backend {
  readonly name = 'native';
  readonly flavour = 'sync';
  readonly threads: number;
  /** Which kernels run: 'avx512', 'avx2' or 'portable'. */
  readonly kernels: NativeKernelSet;
  /** The system BLAS that runs wide dense batches ('openblas', 'blis'), or null (the kernels here). */
  readonly blas: string | null;
  private readonly useBlas: boolean;
  private readonly prepared = new WeakMap<SparseMatrix, Prepared>();
  private readonly columns = new WeakMap<DenseMatrix, Float32Array>();

  constructor(
    private readonly addon: NativeKernels,
    options: NativeBackendOptions = {},
  ) {
    const threads = options.threads ?? defaultThreads();
    if (!(Number.isInteger(threads) && threads >= 1 && threads <= 256))
      throw new InvalidArgumentError('threads', threads, 'must be an integer in [1, 256]');
    const want = options.kernels ?? 'avx512';
    if (want !== 'avx512' && want !== 'avx2' && want !== 'portable')
      throw new InvalidArgumentError('kernels', want, "must be 'avx512', 'avx2' or 'portable'");
    this.threads = threads;
    this.kernels = addon.useKernels(want);
    this.useBlas = options.blas ?? true;
    this.blas = addon.useBlas(this.useBlas) ? addon.features().blas : null;
    addon.setThreads(threads);
    selected = this;
  }

  /**
   * The addon's pool size, kernels and BLAS switch are per process: a call on this backend after
   * another backend was made or used selects this one's again.
   */
  private select(): void {
    if (selected === this) return;
    this.addon.setThreads(this.threads);
    this.addon.useKernels(this.kernels);
    this.addon.useBlas(this.useBlas);
    selected = this;
  }

  /** y = x W^T (+ bias): x [batch, in], W [out, in] in any format; y [batch, out]. */
  linear(x: Float32Array, batch: number, w: SparseMatrix, options: LinearOptions = {}): Float32Array {
    const out = checkLinearArgs(x, batch, w, options);
    this.select();
    const bias = options.bias;
    if (batch === 0 || w.rows === 0) return out.fill(0);
    if (w.cols === 0) {
      out.fill(0);
    } else {
      // The addon writes every output when the kernels sync with the pool; only the caller's thread
      // reads `out` afterwards (the call is synchronous).
      const p = this.prepare(w);
      if (p.kind === 'dense')
        this.addon.linearDense(x, batch, p.values, p.f16, w.rows, w.cols, bias ?? null, out);
      else if (
        p.blocks !== undefined &&
        this.kernels !== 'portable' &&
        blockKernelFits(p.blocks.blockRows, p.blocks.blockCols, batch)
      ) {
        const b = p.blocks;
        this.addon.linearBsr(
          x,
          batch,
          w.cols,
          b.indptr,
          b.indices,
          b.indices instanceof Uint16Array,
          b.values,
          b.dtype === 'f16',
          b.blockRows,
          b.blockCols,
          w.rows,
          bias ?? null,
          out,
        );
      } else if (p.nm24 !== undefined && batch === 1 && this.kernels !== 'portable')
        this.addon.linearNm24(x, p.values, p.f16, p.nm24.indices, w.rows, w.cols, bias ?? null, out);
      else
        this.addon.linearCsr(
          x,
          batch,
          w.cols,
          p.indptr,
          p.rowLength,
          p.indices,
          p.indices instanceof Uint16Array,
          p.values,
          p.f16,
          w.rows,
          bias ?? null,
          out,
        );
    }
    if (w.cols === 0 && bias !== undefined) for (let b = 0; b < batch; b++) out.set(bias, b * w.rows);
    if (options.rows !== undefined) keepRows(out, batch, w.rows, options.rows);
    return out;
  }

  /** C = A B with B dense [cols, n], as (B^T A^T)^T on the linear kernel. */
  spmm(a: SparseMatrix, b: Float32Array, n: number, out?: Float32Array): Float32Array {
    return spmmOnLinear((x, batch, w, o) => this.linear(x, batch, w, o), a, b, n, out);
  }

  sddmm(
    pattern: SparseMatrix,
    a: Float32Array,
    b: Float32Array,
    k: number,
    options?: { alpha?: number; beta?: number },
  ): CsrMatrix {
    return sddmm(pattern, a, b, k, options);
  }

  matmul(a: Float32Array, b: Float32Array, m: number, k: number, n: number, options?: MatmulOptions) {
    return matmulOnLinear((x, batch, w, o) => this.linear(x, batch, w, o), a, b, m, k, n, options);
  }

  /**
   * Softmax attention: many queries under a causal (no window) or full mask run as two products on
   * the native linear; everything else (decode, windows, sinks, block lists, position lists) on the
   * native row kernel, which reads only the key rows each query's mask lets it read.
   */
  attention(args: AttentionArgs): Float32Array {
    const r = resolveAttention(args);
    const out = args.out ?? new Float32Array(args.q.length);
    if (r.seq === 0) return out;
    const plain = r.mask.kind === 'full' || (r.mask.kind === 'causal' && r.mask.window === undefined);
    if (plain && r.seq >= PRODUCT_MIN_SEQ)
      return attention({ ...args, out }, (x, batch, w, o) => this.linear(x, batch, w, o));
    const { segments, offsets } = maskSegments(r.mask, r.offset, r.seq, r.keyLength);
    this.select();
    this.addon.attend(args.q, r.heads, r.seq, r.dim, args.keys, args.values, segments, offsets, r.scale, out);
    return out;
  }

  /** y = W[:, active] x[active] (+ bias), from W^T kept per weight (made on first use). */
  gatherGemv(args: GatherGemvArgs): Float32Array {
    checkGatherGemv(args);
    let columns = this.columns.get(args.w);
    if (columns === undefined) {
      columns = transposedColumns(args.w);
      this.columns.set(args.w, columns);
    }
    const y = args.out ?? new Float32Array(args.w.rows);
    if (args.bias === undefined) y.fill(0);
    else y.set(args.bias);
    this.select();
    this.addon.gatherGemv(columns, args.x, args.active, args.w.rows, y);
    return y;
  }

  release(matrix: SparseMatrix): void {
    this.prepared.delete(matrix);
    if (matrix.format === 'dense') this.columns.delete(matrix);
  }

  /** Nothing to free (the kernels' views are dropped with their matrices); for symmetry with wasm. */
  async dispose(): Promise<void> {}

  /**
   * The kernels' view of a weight, made (and its invariants checked, so the loops can trust its
   * indices) once per matrix object.
   */
  private prepare(w: SparseMatrix): Prepared {
    const known = this.prepared.get(w);
    if (known !== undefined) return known;
    validate(w);
    let p: Prepared;
    if (w.format === 'dense') p = { kind: 'dense', values: w.values, f16: w.dtype === 'f16' };
    else if (w.format === 'nm') p = nmRows(w);
    else {
      const c = w.format === 'csr' ? w : toCsr(w);
      p = {
        kind: 'rows',
        indptr: c.indptr,
        rowLength: 0,
        indices: c.indices,
        values: c.values,
        f16: c.dtype === 'f16',
        ...(w.format === 'bsr' && blockKernelFits(w.blockRows, w.blockCols) ? { blocks: w } : {}),
      };
    }
    this.prepared.set(w, p);
    return p;
  }
}

/**
 * Whether the BSR block kernels take blocks of this shape at this batch (at some batch when none is
 * given): 1 x 8k along inputs (C contiguous inputs per block row), 8k x 1 along outputs (one
 * broadcast input per 8 outputs), and blocks of at most 4 x 4 with sides 1, 2 or 4 (beyond 1 x 1):
 * at batch 1 those of two or four values (1x2, 2x1, 1x4, 4x1, 2x2), at wider batches all of them
 * (over x^T, 8 batch values per register). Other shapes run as CSR.
 */
export function blockKernelFits(blockRows: number, blockCols: number, batch?: number): boolean {
  if (blockCols % 8 === 0 || (blockCols === 1 && blockRows % 8 === 0)) return true;
  const side = (n: number) => n === 1 || n === 2 || n === 4;
  if (!side(blockRows) || !side(blockCols) || blockRows * blockCols === 1) return false;
  return batch === undefined || batch > 1 || blockRows * blockCols <= 4;
}

/**
 * Each query's key rows as [start, end) pairs (query s's pairs are offsets[s] .. offsets[s + 1]),
 * checked to lie inside the keys so the native loops can trust them.
 */
function maskSegments(
  mask: AttentionMask,
  offset: number,
  seq: number,
  keyLength: number,
): { segments: Int32Array; offsets: Int32Array } {
  const capacity = (p: number) =>
    mask.kind === 'positions'
      ? mask.positions.length + 1
      : mask.kind === 'blocks'
        ? 2 * (mask.kvBlocks[Math.floor(p / mask.blockSize)]?.length ?? 0) + 2
        : 2;
  let total = 0;
  for (let s = 0; s < seq; s++) total += capacity(offset + s);
  const segments = new Int32Array(2 * total);
  const offsets = new Int32Array(seq + 1);
  let pairs = 0;
  for (let s = 0; s < seq; s++) {
    const n = keySegments(mask, offset + s, keyLength, segments.subarray(2 * pairs));
    for (let g = pairs; g < pairs + n; g++) {
      const start = segments[2 * g]!;
      const end = segments[2 * g + 1]!;
      if (!(start >= 0 && start <= end && end <= keyLength))
        throw new InvalidArgumentError(
          'mask',
          `[${start}, ${end})`,
          `must read keys inside [0, ${keyLength})`,
        );
    }
    pairs += n;
    offsets[s + 1] = pairs;
  }
  return { segments, offsets };
}

/** N:M as rows of n x groups slots with their column indices (padding slots hold zeros). */
function nmRows(w: NmMatrix): Prepared {
  const groups = w.cols / w.m;
  const slots = w.rows * groups * w.n;
  const indices = w.cols <= 65536 ? new Uint16Array(slots) : new Int32Array(slots);
  for (let s = 0; s < slots; s++) {
    const g = Math.floor(s / w.n) % groups;
    indices[s] = g * w.m + readNmPosition(w.indices, s, w.indexBits);
  }
  return {
    kind: 'rows',
    indptr: null,
    rowLength: groups * w.n,
    indices,
    values: w.values,
    f16: w.dtype === 'f16',
    // 2:4 at batch 1 reads the format's own 2-bit positions (no index array of its own).
    ...(w.n === 2 && w.m === 4 && w.cols % 8 === 0 ? { nm24: w } : {}),
  };
}

function defaultThreads(): number {
  return Math.max(1, Math.min(16, availableParallelism()));
}

/**
 * The native backend, or a typed error saying why the addon cannot load (no build for this
 * platform, hidden with SPARSEKIT_NATIVE=0, or a load failure).
 */
export function createNativeBackend(options: NativeBackendOptions = {}): NativeBackend {
  return new NativeBackend(nativeKernels(), options);
}
