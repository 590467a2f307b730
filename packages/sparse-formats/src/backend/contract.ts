// The backend contract: every operation a model or a sparsity method runs, in one typed interface
// with a synchronous flavour (CPU backends) and an asynchronous one (GPU backends, whose results are
// read back). Models, pruners and the algorithm packages code against these types only.
import type { CsrMatrix, DenseMatrix, SparseMatrix } from '../types.js';

export interface LinearOptions {
  /** Added to every output row; length = the weight's rows. */
  bias?: Float32Array;
  /** Where to write y (length batch x rows); a new array otherwise. */
  out?: Float32Array;
  /**
   * Compute only these output rows (unique indices into the weight's rows); the others are 0 (no
   * bias either). For predicted-active MLP channels at decode (Deja Vu, CATS): a backend with a
   * row-subset kernel reads only those rows of W; the others compute everything and zero the rest.
   */
  rows?: Int32Array;
}

export interface MatmulOptions {
  /** B is given as [n, k] (row-major) and used transposed: C = A B^T. */
  transposeB?: boolean;
  out?: Float32Array;
}

export interface SddmmOptions {
  alpha?: number;
  beta?: number;
}

/**
 * Which keys each query of an attention call reads. Positions are absolute: query s of the call is
 * at position `queryOffset + s`, key p is row p of the keys.
 * - `full`: every key.
 * - `causal`: keys at or before the query; with `window`, only the last `window` of them, plus the
 *   first `sinks` positions (StreamingLLM's attention sinks) when given.
 * - `blocks`: the key blocks listed for the query's block (FlexAttention's kv_indices: block
 *   `floor(position / blockSize)`; each list sorted, unique), intersected with `causal` when set,
 *   and inside them with a `window` (plus `sinks`) as for `causal` when given.
 * - `positions`: every query reads exactly these keys (sorted, unique): decode-time selection.
 */
export type AttentionMask =
  | { readonly kind: 'full' }
  | { readonly kind: 'causal'; readonly window?: number; readonly sinks?: number }
  | {
      readonly kind: 'blocks';
      readonly blockSize: number;
      readonly kvBlocks: readonly Int32Array[];
      readonly causal?: boolean;
      readonly window?: number;
      readonly sinks?: number;
    }
  | { readonly kind: 'positions'; readonly positions: Int32Array };

/** One attention call: the query heads that share one key/value head (a grouped-query group). */
export interface AttentionArgs {
  /** Queries [heads, seq, headDim], unscaled. */
  q: Float32Array;
  heads: number;
  seq: number;
  headDim: number;
  /** Keys and values [keyLength, headDim] (rows may be a view into a larger cache). */
  keys: Float32Array;
  values: Float32Array;
  keyLength: number;
  /** Absolute position of query 0 (default keyLength - seq: the queries are the last positions). */
  queryOffset?: number;
  /** Default `{ kind: 'causal' }`. */
  mask?: AttentionMask;
  /** Score scale (default 1 / sqrt(headDim)). */
  scale?: number;
  /** Where to write the output [heads, seq, headDim]. */
  out?: Float32Array;
}

/** y = W[:, active] x[active]: a matrix-vector product that reads only the active input columns. */
export interface GatherGemvArgs {
  /** W [out, in], dense (backends keep a transposed copy resident, keyed by the matrix object). */
  w: DenseMatrix;
  /** x [in]; only the entries at `active` are read. */
  x: Float32Array;
  /** Active input indices (any order, unique). */
  active: Int32Array;
  bias?: Float32Array;
  out?: Float32Array;
}

/** The operations of the contract, by name (what an UnsupportedOpError names). */
export const BACKEND_OPS = ['linear', 'spmm', 'sddmm', 'matmul', 'attention', 'gatherGemv'] as const;
export type BackendOp = (typeof BACKEND_OPS)[number];

/** The contract, over a result wrapper: `R<T> = T` for sync backends, `Promise<T>` for async ones. */
interface Ops<Sync extends boolean> {
  /** y [batch, rows] = x [batch, cols] W^T (+ bias) for W [rows, cols] in any format. */
  linear(
    x: Float32Array,
    batch: number,
    w: SparseMatrix,
    options?: LinearOptions,
  ): Result<Sync, Float32Array>;
  /** C [rows, n] = A B for A [rows, cols] in any format and B [cols, n] dense. */
  spmm(a: SparseMatrix, b: Float32Array, n: number, out?: Float32Array): Result<Sync, Float32Array>;
  /** alpha (A B) at the nonzeros of `pattern` + beta pattern, A [rows, k], B [k, cols]; CSR result. */
  sddmm(
    pattern: SparseMatrix,
    a: Float32Array,
    b: Float32Array,
    k: number,
    options?: SddmmOptions,
  ): Result<Sync, CsrMatrix>;
  /** C [m, n] = A [m, k] B [k, n] (or B^T with B [n, k]), all dense f32 operands of this call only. */
  matmul(
    a: Float32Array,
    b: Float32Array,
    m: number,
    k: number,
    n: number,
    options?: MatmulOptions,
  ): Result<Sync, Float32Array>;
  /** Softmax attention of one key/value head's query group: out [heads, seq, headDim]. */
  attention(args: AttentionArgs): Result<Sync, Float32Array>;
  /** y [out] = W[:, active] x[active] (+ bias). */
  gatherGemv(args: GatherGemvArgs): Result<Sync, Float32Array>;
  /** Free what the backend keeps for a matrix (device or wasm copies); a no-op when it keeps nothing. */
  release(matrix: SparseMatrix): void;
}

type Result<Sync extends boolean, T> = Sync extends true ? T : Promise<T>;

/** A backend whose operations return their results (reference, wasm, native, gpu.js). */
export interface Backend extends Ops<true> {
  readonly name: string;
  readonly flavour: 'sync';
  /**
   * Storage the backend's kernels read in place (wasm: a view into its memory), for data that many
   * calls read, such as a KV cache; zero-filled. Absent when every array is as good as another.
   */
  allocate?(length: number): Float32Array;
  /** Give back an array from `allocate`. */
  free?(array: Float32Array): void;
}

/** A backend whose operations resolve later (WebGPU: results are read back from the device). */
export interface AsyncBackend extends Ops<false> {
  readonly name: string;
  readonly flavour: 'async';
}

export type AnyBackend = Backend | AsyncBackend;
