// The column-gather GEMV of the WebGPU backend: y = W[:, active] x[active] (+ bias) for one input
// vector whose inactive entries are never read (TEAL-style activation sparsity at decode). Each dense
// weight gets a column-major copy on the device, made on first use and freed by the backend's
// `release`; every call uploads only the active list.
import { InvalidArgumentError } from '@sparsekit/core';
import type { DenseMatrix, GatherGemvArgs, ValueDType } from '@sparsekit/sparse-formats';
import type { GpuBackend } from './backend.js';
import { GATHER_THREADS, gatherKernel, gatherReduceKernel } from './wgsl.js';

/** A dense weight resident as W^T [in, out], each column padded to an even number of outputs. */
export interface GpuColumns {
  readonly rows: number;
  readonly cols: number;
  readonly dtype: ValueDType;
  /** Output pairs per column: ceil(rows / 2) (32-bit words per column for f16). */
  readonly pairs: number;
  /** Bytes held on the device. */
  readonly bytes: number;
  /** @internal */
  readonly buffer: GPUBuffer;
}

export interface GpuGatherGemvArgs extends GatherGemvArgs {
  /**
   * Split the active list into this many chunks, each summed by its own workgroups into a partial
   * that a second pass adds up (split-K). Default: chosen from the shape (see `gatherSplits`).
   */
  splits?: number;
}

/** Workgroups the default split aims for: enough to occupy a large GPU when the output is short. */
const TARGET_WORKGROUPS = 256;
/** Most splits the default chooses (the partials are splits x out floats). */
const MAX_SPLITS = 64;

/**
 * How the active list is divided: `chunk` active entries per split, `splits` splits. By default a
 * split is never shorter than one staged tile (GATHER_THREADS entries), and splits are added only
 * while the output tiles alone give fewer than TARGET_WORKGROUPS workgroups. A heuristic, not a
 * measured optimum: it has not been tuned on a real GPU.
 */
export function gatherSplits(
  rows: number,
  count: number,
  forced?: number,
): { splits: number; chunk: number } {
  if (forced !== undefined && !(Number.isInteger(forced) && forced >= 1))
    throw new InvalidArgumentError('splits', forced, 'must be a positive integer');
  if (count === 0) return { splits: 1, chunk: 0 };
  let wanted: number;
  if (forced !== undefined) wanted = Math.min(forced, count);
  else {
    const groups = Math.ceil(Math.ceil(rows / 2) / GATHER_THREADS);
    const tiles = Math.ceil(count / GATHER_THREADS);
    wanted = Math.max(1, Math.min(MAX_SPLITS, tiles, Math.ceil(TARGET_WORKGROUPS / groups)));
  }
  const chunk = Math.ceil(count / wanted);
  return { splits: Math.ceil(count / chunk), chunk };
}

/** Upload W^T of a dense weight: f32 as is, f16 as its bit patterns (two outputs per 32-bit word). */
export function uploadColumns(backend: GpuBackend, w: DenseMatrix): GpuColumns {
  const { rows, cols } = w;
  const pairs = Math.ceil(rows / 2);
  const stride = pairs * 2;
  const bytes = cols * stride * (w.dtype === 'f32' ? 4 : 2);
  const limit = backend.device.limits.maxStorageBufferBindingSize;
  if (bytes > limit) {
    throw new InvalidArgumentError(
      'gatherGemv weight',
      `[${rows}, ${cols}] ${w.dtype}`,
      `needs ${bytes} bytes on the device, over this adapter's storage binding limit of ${limit}: split the weight by output rows, store it in f16, or use a CPU backend`,
    );
  }
  const t = w.dtype === 'f32' ? new Float32Array(cols * stride) : new Uint16Array(cols * stride);
  const v = w.values;
  for (let o = 0; o < rows; o++) {
    const row = o * cols;
    for (let i = 0; i < cols; i++) t[i * stride + o] = v[row + i]!;
  }
  const buffer = backend.buffer(t);
  return { rows, cols, dtype: w.dtype, pairs, bytes: buffer.size, buffer };
}

/**
 * y [rows] = W[:, active] x[active] (+ bias) on the gather kernel. The caller has checked the call
 * (`checkGatherGemv`); `columns` is W's resident copy, unused (and may be undefined) when no input
 * is active.
 */
export async function gpuGatherGemv(
  backend: GpuBackend,
  columns: GpuColumns | undefined,
  args: GpuGatherGemvArgs,
): Promise<Float32Array> {
  const { w, x, active, bias } = args;
  const rows = w.rows;
  const { splits, chunk } = gatherSplits(rows, active.length, args.splits);
  const y = args.out ?? new Float32Array(rows);
  if (rows === 0) return y;
  if (active.length === 0 || columns === undefined) {
    if (bias === undefined) y.fill(0);
    else y.set(bias);
    return y;
  }
  // (index, bits of x[index]) pairs: the only entries of x the call reads.
  const list = new Uint32Array(active.length * 2);
  const listValues = new Float32Array(list.buffer);
  for (let a = 0; a < active.length; a++) {
    const i = active[a]!;
    list[2 * a] = i;
    listValues[2 * a + 1] = x[i]!;
  }
  const device = backend.device;
  const storage = (floats: number) =>
    device.createBuffer({
      size: Math.max(4, floats * 4),
      usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC,
    });
  const result = storage(rows);
  const partial = splits > 1 ? storage(splits * rows) : undefined;
  const transient = [backend.buffer(list), backend.buffer(bias ?? new Float32Array(1)), result];
  const params = backend.uniform([
    rows,
    columns.pairs,
    active.length,
    chunk,
    splits,
    bias === undefined ? 0 : 1,
    0,
    0,
  ]);
  transient.push(params);
  if (partial !== undefined) transient.push(partial);
  try {
    const tiles = Math.ceil(columns.pairs / GATHER_THREADS);
    const gather = backend.pipeline(`gather-${columns.dtype}`, gatherKernel(columns.dtype));
    backend.dispatch(
      gather,
      [columns.buffer, transient[0]!, transient[1]!, partial ?? result, params],
      [Math.min(tiles, 65535), Math.ceil(tiles / 65535), splits],
    );
    if (partial !== undefined) {
      const groups = Math.ceil(rows / GATHER_THREADS);
      const reduce = backend.pipeline('gather-reduce', gatherReduceKernel());
      backend.dispatch(
        reduce,
        [partial, transient[1]!, result, params],
        [Math.min(groups, 65535), Math.ceil(groups / 65535), 1],
      );
    }
    y.set(await backend.read(result, rows));
    return y;
  } finally {
    for (const b of transient) b.destroy();
  }
}
