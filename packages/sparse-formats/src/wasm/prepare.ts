import { NonFiniteError } from '@sparsekit/core';
import { toCsr } from '../convert.js';
import type { SparseMatrix } from '../types.js';
import type { WasmAllocator } from './allocator.js';

/** Kernel exports, in the order the pool and the workers index them. */
export const KERNEL_NAMES = [
  'dense_linear_f32',
  'dense_linear_f16',
  'csr_linear_i32_f32',
  'csr_linear_u16_f32',
  'csr_linear_i32_f16',
  'csr_linear_u16_f16',
  'nm_linear_f32',
  'nm_linear_f16',
  'bitmask_linear_f32',
  'bitmask_linear_f16',
  'bsr_linear_i32_f32',
  'bsr_linear_u16_f32',
  'bsr_linear_i32_f16',
  'bsr_linear_u16_f16',
  'triad',
  'transpose',
  'gather_gemv_f32',
  'gather_gemv_f16',
  'gather_gemv_columns_f32',
  'gather_gemv_columns_f16',
  'gather_reduce',
  'dense_rows_f32',
  'dense_rows_f16',
  'attend_rows_f32',
  'attend_blocks_f32',
] as const;

export type KernelName = (typeof KERNEL_NAMES)[number];

/** Byte offset of the kernels' vector constants (asm/kernels.ts `CONSTANTS`). */
export const KERNEL_CONSTANTS = 512;
/** Byte offset of the 2:4 swizzle table (asm/kernels.ts `NM24_TABLE`): 256 entries of 32 bytes. */
export const NM24_TABLE = 1024;
/** First byte the allocator may hand out: everything below holds the constants above. */
export const HEAP_BASE = 16384;

/**
 * Write what the kernels read at fixed addresses: vector constants (`k(i)`, each splat to 4 lanes)
 * and the 2:4 table. For a positions byte p (2 bits per slot, slot 0 lowest), entry p holds two
 * i8x16.swizzle masks: the first picks x lanes p0 and p1 of the first four columns into lanes 0-1,
 * the second picks p2 and p3 of the next four columns into lanes 2-3; other lanes select zero.
 */
export function writeKernelConstants(memory: WebAssembly.Memory): void {
  const table = new Uint8Array(memory.buffer, NM24_TABLE, 256 * 32).fill(0x80);
  for (let p = 0; p < 256; p++) {
    for (let slot = 0; slot < 4; slot++) {
      const position = (p >> (2 * slot)) & 3;
      const mask = p * 32 + (slot < 2 ? 0 : 16);
      for (let b = 0; b < 4; b++) table[mask + slot * 4 + b] = position * 4 + b;
    }
  }
  const f32Bits = (v: number) => new Uint32Array(Float32Array.of(v).buffer)[0]!;
  const values = [
    0x8000,
    0x7fff,
    0x7c00,
    0x38000000,
    0x00800000,
    f32Bits(2 ** -14),
    0,
    0x8fffffff,
    f32Bits(2 ** 112),
  ];
  const words = new Uint32Array(memory.buffer, KERNEL_CONSTANTS, values.length * 4);
  for (const [i, v] of values.entries()) words.fill(v, i * 4, i * 4 + 4);
}

/**
 * Bytes of per-thread scratch the row kernels need for a matrix with `cols` columns: the tile of
 * asm/kernels.ts (row starts, then offsets and values for tileCapacity(cols) entries).
 */
export function scratchBytes(cols: number): number {
  const capacity = Math.max(cols * 4, 16384);
  return 1040 + capacity * 8 + 64;
}

/** A matrix copied into wasm memory, with the launch recipe of its kernel. */
export interface PreparedMatrix {
  readonly rows: number;
  readonly cols: number;
  /** Format the kernel runs (COO and CSC run as CSR). */
  readonly format: 'dense' | 'csr' | 'nm' | 'bitmask' | 'bsr';
  readonly op: number;
  /** Argument template; x, y, batch, r0, r1 (and scratch) are filled per call. */
  readonly args: number[];
  readonly slots: { x: number; y: number; batch: number; r0: number; r1: number; scratch?: number };
  /** Whether the kernel reads x transposed ([cols, batch]). */
  readonly transposedInput: boolean;
  /** Thread partition over rows (or block rows for BSR). */
  readonly parts: Int32Array;
  /** Values stored (the multiply-adds of one batch row). */
  readonly storedValues: number;
  /** Bytes of weights copied into wasm memory. */
  readonly bytes: number;
  readonly allocations: number[];
}

function upload(allocator: WasmAllocator, array: ArrayBufferView, padding = 0): number {
  const ptr = allocator.alloc(array.byteLength + padding);
  const target = new Uint8Array(allocator.memory.buffer, ptr, array.byteLength + padding);
  target.set(new Uint8Array(array.buffer, array.byteOffset, array.byteLength));
  target.fill(0, array.byteLength);
  return ptr;
}

/** Split [0, units) into `threads` ranges with about equal `weight` (a prefix-sum array of length units+1). */
export function partition(
  units: number,
  threads: number,
  prefix?: ArrayLike<number>,
  multiple = 1,
): Int32Array {
  const parts = new Int32Array(Math.max(1, Math.min(threads, units)) + 1);
  const count = parts.length - 1;
  parts[count] = units;
  if (prefix === undefined) {
    for (let t = 1; t < count; t++)
      parts[t] = Math.min(units, Math.round((units * t) / count / multiple) * multiple);
    return parts;
  }
  const total = prefix[units]!;
  let row = 0;
  for (let t = 1; t < count; t++) {
    const goal = (total * t) / count;
    while (row < units && prefix[row + 1]! <= goal) row++;
    parts[t] = Math.max(parts[t - 1]!, row);
  }
  return parts;
}

function assertFiniteHalf(values: Uint16Array, what: string): void {
  for (let i = 0; i < values.length; i++) {
    if ((values[i]! & 0x7c00) === 0x7c00) throw new NonFiniteError(what, i, Number.NaN);
  }
}

/** Copy a matrix into wasm memory in the layout its kernel reads. */
export function prepareMatrix(
  allocator: WasmAllocator,
  source: SparseMatrix,
  threads: number,
): PreparedMatrix {
  const w = source.format === 'coo' || source.format === 'csc' ? toCsr(source) : source;
  if (w.dtype === 'f16') assertFiniteHalf(w.values as Uint16Array, `${w.format} f16 values`);
  const half = w.dtype === 'f16' ? 1 : 0;
  const allocations: number[] = [];
  const put = (array: ArrayBufferView, padding = 0) => {
    const ptr = upload(allocator, array, padding);
    allocations.push(ptr);
    return ptr;
  };
  const base = { rows: w.rows, cols: w.cols, allocations, storedValues: w.values.length };
  const bytes = (arrays: ArrayBufferView[]) => arrays.reduce((sum, a) => sum + a.byteLength, 0);
  switch (w.format) {
    case 'dense': {
      const values = put(w.values, 16);
      // dense_linear(w, x, y, rows, cols, batch, r0, r1)
      return {
        ...base,
        format: 'dense',
        op: KERNEL_NAMES.indexOf(half ? 'dense_linear_f16' : 'dense_linear_f32'),
        args: [values, 0, 0, w.rows, w.cols, 0, 0, 0],
        slots: { x: 1, y: 2, batch: 5, r0: 6, r1: 7 },
        transposedInput: false,
        parts: partition(w.rows, threads, undefined, 4),
        bytes: bytes([w.values]),
      };
    }
    case 'csr': {
      const u16 = w.indices instanceof Uint16Array;
      const name = `csr_linear_${u16 ? 'u16' : 'i32'}_${half ? 'f16' : 'f32'}` as KernelName;
      // csr_linear(indptr, indices, values, xt, y, rows, cols, batch, r0, r1, scratch)
      return {
        ...base,
        format: 'csr',
        op: KERNEL_NAMES.indexOf(name),
        args: [put(w.indptr), put(w.indices, 16), put(w.values, 16), 0, 0, w.rows, w.cols, 0, 0, 0, 0],
        slots: { x: 3, y: 4, batch: 7, r0: 8, r1: 9, scratch: 10 },
        transposedInput: true,
        parts: partition(w.rows, threads, w.indptr),
        bytes: bytes([w.indptr, w.indices, w.values]),
      };
    }
    case 'nm': {
      // nm_linear(values, indices, n, m, bits, xt, y, rows, cols, batch, r0, r1, scratch)
      return {
        ...base,
        format: 'nm',
        op: KERNEL_NAMES.indexOf(half ? 'nm_linear_f16' : 'nm_linear_f32'),
        args: [put(w.values, 16), put(w.indices, 8), w.n, w.m, w.indexBits, 0, 0, w.rows, w.cols, 0, 0, 0, 0],
        slots: { x: 5, y: 6, batch: 9, r0: 10, r1: 11, scratch: 12 },
        transposedInput: true,
        parts: partition(w.rows, threads),
        bytes: bytes([w.values, w.indices]),
      };
    }
    case 'bitmask': {
      const prefix = new Int32Array(w.rows + 1);
      prefix.set(w.rowOffsets);
      prefix[w.rows] = w.values.length;
      // bitmask_linear(bitmask, rowOffsets, values, xt, y, rows, cols, batch, r0, r1, scratch)
      return {
        ...base,
        format: 'bitmask',
        op: KERNEL_NAMES.indexOf(half ? 'bitmask_linear_f16' : 'bitmask_linear_f32'),
        args: [put(w.bitmask, 16), put(w.rowOffsets), put(w.values, 16), 0, 0, w.rows, w.cols, 0, 0, 0, 0],
        slots: { x: 3, y: 4, batch: 7, r0: 8, r1: 9, scratch: 10 },
        transposedInput: true,
        parts: partition(w.rows, threads, prefix),
        bytes: bytes([w.bitmask, w.rowOffsets, w.values]),
      };
    }
    case 'bsr': {
      const u16 = w.indices instanceof Uint16Array;
      const name = `bsr_linear_${u16 ? 'u16' : 'i32'}_${half ? 'f16' : 'f32'}` as KernelName;
      // bsr_linear(indptr, indices, values, x, y, rows, cols, R, C, batch, r0, r1)
      return {
        ...base,
        format: 'bsr',
        op: KERNEL_NAMES.indexOf(name),
        args: [
          put(w.indptr),
          put(w.indices, 16),
          put(w.values, 16),
          0,
          0,
          w.rows,
          w.cols,
          w.blockRows,
          w.blockCols,
          0,
          0,
          0,
        ],
        slots: { x: 3, y: 4, batch: 9, r0: 10, r1: 11 },
        transposedInput: false,
        parts: partition(w.rows / w.blockRows, threads, w.indptr),
        bytes: bytes([w.indptr, w.indices, w.values]),
      };
    }
  }
}
