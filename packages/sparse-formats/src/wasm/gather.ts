// The resident copy the gather-GEMV kernels read (asm/kernels.ts gather_gemv_f32 / _f16): W^T, i.e.
// W column-major, in the weight's own value type, each column padded to a whole number of cache lines.
import { f16Table32, NonFiniteError } from '@sparsekit/core';
import type { DenseMatrix } from '../types.js';
import type { WasmAllocator } from './allocator.js';
import { KERNEL_NAMES, partition } from './prepare.js';

/** Rows per column are padded to this many elements (64 bytes of f16, 128 of f32). */
const COLUMN_MULTIPLE = 32;
/** Threads split the rows at multiples of this (whole cache lines of y and of every column). */
const ROW_MULTIPLE = 32;

export interface PreparedGather {
  readonly rows: number;
  readonly cols: number;
  /** Elements from one column of W to the next in the copy (rows rounded up to 32). */
  readonly ld: number;
  /** Byte offset of column 0 (64-byte aligned). */
  readonly ptr: number;
  readonly op: number;
  /** The kernel that splits the active columns across threads instead (gather_gemv_columns_*). */
  readonly columnsOp: number;
  /** Kernel arguments after r0 and r1 (the f16 kernel's subnormal lists). */
  readonly extraArgs: readonly number[];
  /** Thread partition over rows. */
  readonly parts: Int32Array;
  /** Bytes of the copy in wasm memory. */
  readonly bytes: number;
  readonly allocations: number[];
}

/** Rows as the kernels see them: rounded up to whole 8-row steps (the host pads y and bias). */
export function gatherPaddedRows(rows: number): number {
  return Math.ceil(rows / COLUMN_MULTIPLE) * COLUMN_MULTIPLE;
}

const BLOCK = 64;

/** dst[c * ld + r] = src[r * cols + c], in 64 x 64 blocks (so both sides stay in L1). */
function transposeInto(
  src: Float32Array | Uint16Array,
  dst: Float32Array | Uint16Array,
  rows: number,
  cols: number,
  ld: number,
): void {
  for (let r0 = 0; r0 < rows; r0 += BLOCK) {
    const r1 = Math.min(rows, r0 + BLOCK);
    for (let c0 = 0; c0 < cols; c0 += BLOCK) {
      const c1 = Math.min(cols, c0 + BLOCK);
      for (let c = c0; c < c1; c++) {
        const base = c * ld;
        for (let r = r0; r < r1; r++) dst[base + r] = src[r * cols + c]!;
      }
    }
  }
}

/**
 * Subnormal halves of a row-major f16 matrix by column: column c's rows (ascending) and f32 values
 * are entries [starts[c], starts[c + 1]). Refuses non-finite values.
 */
function subnormalColumns(
  values: Uint16Array,
  rows: number,
  cols: number,
): { starts: Int32Array; rows: Int32Array; values: Float32Array } | undefined {
  const starts = new Int32Array(cols + 1);
  let count = 0;
  for (let i = 0; i < values.length; i++) {
    const exponent = values[i]! & 0x7c00;
    if (exponent === 0x7c00) throw new NonFiniteError('dense f16 values', i, Number.NaN);
    if (exponent === 0 && (values[i]! & 0x3ff) !== 0) {
      starts[(i % cols) + 1]!++;
      count++;
    }
  }
  if (count === 0) return undefined;
  for (let c = 0; c < cols; c++) starts[c + 1]! += starts[c]!;
  const next = starts.slice(0, cols);
  const entryRows = new Int32Array(count);
  const entryValues = new Float32Array(count);
  const table = f16Table32();
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) {
      const h = values[r * cols + c]!;
      if ((h & 0x7c00) !== 0 || (h & 0x3ff) === 0) continue;
      const e = next[c]!++;
      entryRows[e] = r;
      entryValues[e] = table[h]!;
    }
  }
  return { starts, rows: entryRows, values: entryValues };
}

/**
 * Copy a dense matrix into wasm memory column-major for the gather kernels (f16 stays f16). f16
 * subnormals are stored as zero in the copy and listed per column beside it (the kernels add them
 * without a float operation on a subnormal input). Non-finite f16 values are refused
 * (NonFiniteError), as for every prepared f16 matrix.
 */
export function prepareGather(allocator: WasmAllocator, w: DenseMatrix, threads: number): PreparedGather {
  const half = w.dtype === 'f16';
  const elementBytes = half ? 2 : 4;
  const ld = gatherPaddedRows(w.rows);
  const subnormals = half ? subnormalColumns(w.values as Uint16Array, w.rows, w.cols) : undefined;
  const bytes = ld * w.cols * elementBytes;
  const allocations = [allocator.alloc(bytes + 64)];
  const ptr = Math.ceil(allocations[0]! / 64) * 64;
  const lists = [0, 0, 0];
  let listBytes = 0;
  if (subnormals !== undefined) {
    for (const [i, array] of [subnormals.starts, subnormals.rows, subnormals.values].entries()) {
      const at = allocator.alloc(array.byteLength);
      allocations.push(at);
      new Uint8Array(allocator.memory.buffer, at, array.byteLength).set(
        new Uint8Array(array.buffer, array.byteOffset, array.byteLength),
      );
      lists[i] = at;
      listBytes += array.byteLength;
    }
  }
  const buffer = allocator.memory.buffer;
  const dst = half ? new Uint16Array(buffer, ptr, ld * w.cols) : new Float32Array(buffer, ptr, ld * w.cols);
  dst.fill(0);
  transposeInto(w.values, dst, w.rows, w.cols, ld);
  if (subnormals !== undefined) {
    for (let c = 0; c < w.cols; c++) {
      for (let e = subnormals.starts[c]!; e < subnormals.starts[c + 1]!; e++)
        dst[c * ld + subnormals.rows[e]!] = 0;
    }
  }
  return {
    rows: w.rows,
    cols: w.cols,
    ld,
    ptr,
    op: KERNEL_NAMES.indexOf(half ? 'gather_gemv_f16' : 'gather_gemv_f32'),
    columnsOp: KERNEL_NAMES.indexOf(half ? 'gather_gemv_columns_f16' : 'gather_gemv_columns_f32'),
    // gather_gemv_f16's subStarts, subRows, subValues (0: none)
    extraArgs: half ? lists : [],
    parts: partition(w.rows, threads, undefined, ROW_MULTIPLE),
    bytes: bytes + listBytes,
    allocations,
  };
}
