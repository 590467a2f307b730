// Loading the addon: a prebuilt binary for this platform (prebuilds/) or a local build (build/),
// found by node-gyp-build. SPARSEKIT_NATIVE=0 hides it (what a machine without a build sees).
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SparsekitError } from '@sparsekit/core';

/** The addon's functions (native/addon.cc). */
export interface NativeKernels {
  linearDense(
    x: Float32Array,
    batch: number,
    values: Float32Array | Uint16Array,
    f16: boolean,
    rows: number,
    cols: number,
    bias: Float32Array | null,
    out: Float32Array,
  ): void;
  linearCsr(
    x: Float32Array,
    batch: number,
    cols: number,
    indptr: Int32Array | null,
    rowLength: number,
    indices: Int32Array | Uint16Array,
    u16: boolean,
    values: Float32Array | Uint16Array,
    f16: boolean,
    rows: number,
    bias: Float32Array | null,
    out: Float32Array,
  ): void;
  /** 2:4 at batch 1 (AVX2 / AVX-512 kernels only): `positions` are the N:M format's 2-bit indices; cols % 8 == 0. */
  linearNm24(
    x: Float32Array,
    values: Float32Array | Uint16Array,
    f16: boolean,
    positions: Uint8Array,
    rows: number,
    cols: number,
    bias: Float32Array | null,
    out: Float32Array,
  ): void;
  /** BSR (AVX2 / AVX-512 kernels): blockCols a multiple of 8, or 1 with blockRows a multiple of 8. */
  linearBsr(
    x: Float32Array,
    batch: number,
    cols: number,
    indptr: Int32Array,
    indices: Int32Array | Uint16Array,
    u16: boolean,
    values: Float32Array | Uint16Array,
    f16: boolean,
    blockRows: number,
    blockCols: number,
    rows: number,
    bias: Float32Array | null,
    out: Float32Array,
  ): void;
  /** y = bias + W[:, active] x[active] from W^T `columns` [in, rows]; `out` holds the bias (or zeros) on entry. */
  gatherGemv(
    columns: Float32Array,
    x: Float32Array,
    active: Int32Array,
    rows: number,
    out: Float32Array,
  ): void;
  /**
   * Softmax attention of q [heads, seq, dim] (unscaled) over the key rows in `segments` ([start, end)
   * pairs; query s's are pairs offsets[s] .. offsets[s + 1]) into out [heads, seq, dim].
   */
  attend(
    q: Float32Array,
    heads: number,
    seq: number,
    dim: number,
    keys: Float32Array,
    values: Float32Array,
    segments: Int32Array,
    offsets: Int32Array,
    scale: number,
    out: Float32Array,
  ): void;
  /** Swap two paths in one step (Linux renameat2 RENAME_EXCHANGE); false where that cannot be done. */
  exchangePaths(a: string, b: string): boolean;
  setThreads(threads: number): void;
  /** Select the best kernels at or below the ones named that this CPU runs; returns those chosen. */
  useKernels(kernels: NativeKernelSet): NativeKernelSet;
  /** Run wide dense f32 batches on a system BLAS where one loads (returns whether one runs). */
  useBlas(on: boolean): boolean;
  features(): {
    avx2: boolean;
    fma: boolean;
    f16c: boolean;
    avx512f: boolean;
    /** AVX-512 F, BW, VL and DQ: what the AVX-512 kernels need. */
    avx512: boolean;
    kernels: NativeKernelSet;
    /** The system BLAS loaded for wide dense batches ('openblas', 'blis'), or null. */
    blas: string | null;
    threads: number;
  };
}

/** The kernel builds, best first: AVX-512 (with AVX2 for what has no AVX-512 kernel), AVX2 + FMA + F16C, portable C++. */
export type NativeKernelSet = 'avx512' | 'avx2' | 'portable';

/** The native kernels cannot load here; `reason` says why (one line). */
export class NativeUnavailableError extends SparsekitError {
  static override readonly code = 'kernels-native/unavailable';
  static override readonly hint =
    'the native addon has no build for this machine: the wasm backend runs instead (build it with `pnpm --filter @sparsekit/kernels-native build:native`)';

  constructor(readonly reason: string) {
    super(NativeUnavailableError.code, `Native kernels unavailable: ${reason}.`);
  }
}

let loaded: NativeKernels | undefined;

/** The addon, loaded once; throws NativeUnavailableError with the reason when it cannot load. */
export function nativeKernels(): NativeKernels {
  if (loaded !== undefined) return loaded;
  if (process.env.SPARSEKIT_NATIVE === '0') throw new NativeUnavailableError('hidden by SPARSEKIT_NATIVE=0');
  const require = createRequire(import.meta.url);
  const root = join(dirname(fileURLToPath(import.meta.url)), '..');
  try {
    const load = require('node-gyp-build') as (dir: string) => NativeKernels;
    loaded = load(root);
  } catch (error) {
    const message = error instanceof Error ? error.message.split('\n')[0]! : String(error);
    throw new NativeUnavailableError(message);
  }
  return loaded;
}

/** Whether the addon loads here, and if not, why. */
export function nativeAvailability(): { available: true } | { available: false; reason: string } {
  try {
    nativeKernels();
    return { available: true };
  } catch (error) {
    if (error instanceof NativeUnavailableError) return { available: false, reason: error.reason };
    throw error;
  }
}

/**
 * Swap two paths in one atomic step where the system can (Linux renameat2 with RENAME_EXCHANGE),
 * for `writeDirAtomic`'s `exchange` option; undefined when the addon cannot load. The function
 * returns false where the file system cannot exchange (the caller then renames twice).
 */
export function pathExchange(): ((a: string, b: string) => boolean) | undefined {
  try {
    const kernels = nativeKernels();
    return (a, b) => kernels.exchangePaths(a, b);
  } catch (error) {
    if (error instanceof NativeUnavailableError) return undefined;
    throw error;
  }
}
