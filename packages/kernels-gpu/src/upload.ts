// Matrices uploaded to the device in the layout each kernel reads: values as stored (f32, or f16
// two per word), indices widened to u32, bitmask rows re-laid as 32-bit words with the index of
// each word's first value.
import { InvalidArgumentError } from '@sparsekit/core';
import type { SparseMatrix } from '@sparsekit/sparse-formats';
import type { RowFormat } from './wgsl.js';

/** A matrix resident on the device. Create with `backend.prepare(matrix)`; free with `release`. */
export interface GpuMatrix {
  readonly rows: number;
  readonly cols: number;
  readonly format: RowFormat | 'bsr';
  readonly dtype: SparseMatrix['dtype'];
  /** Bytes held on the device. */
  readonly bytes: number;
  /** @internal */
  readonly buffers: GPUBuffer[];
  /** @internal extra uniform word (bits per N:M position, or words per bitmask row) */
  readonly extra: number;
  /** @internal */
  readonly n?: number;
  readonly m?: number;
  /** @internal BSR block shape */
  readonly blockRows?: number;
  readonly blockCols?: number;
}

/** A matrix's device copy (validated by the caller), through `backend.buffer`. */
export function uploadMatrix(
  backend: { buffer(data: ArrayBufferView): GPUBuffer },
  matrix: SparseMatrix,
): GpuMatrix {
  const values = backend.buffer(
    new Uint8Array(matrix.values.buffer, matrix.values.byteOffset, matrix.values.byteLength),
  );
  const base = { rows: matrix.rows, cols: matrix.cols, dtype: matrix.dtype };
  let gpu: GpuMatrix;
  switch (matrix.format) {
    case 'dense':
      gpu = { ...base, format: 'dense', buffers: [values], extra: 0, bytes: values.size };
      break;
    case 'csr': {
      gpu = { ...base, format: 'csr', ...compressed(backend, values, matrix.indptr, matrix.indices) };
      break;
    }
    case 'nm': {
      const positions = backend.buffer(matrix.indices);
      gpu = {
        ...base,
        format: 'nm',
        n: matrix.n,
        m: matrix.m,
        buffers: [values, positions],
        extra: matrix.indexBits,
        bytes: values.size + positions.size,
      };
      break;
    }
    case 'bitmask': {
      // Rows re-laid as 32-bit words, with the index of each word's first value.
      const words = Math.ceil(matrix.cols / 32);
      const rowBytes = Math.ceil(matrix.cols / 8);
      const mask = new Uint32Array(matrix.rows * words);
      const offsets = new Uint32Array(matrix.rows * words);
      for (let r = 0; r < matrix.rows; r++) {
        let offset = matrix.rowOffsets[r]!;
        for (let w = 0; w < words; w++) {
          let word = 0;
          for (let b = 0; b < 4; b++) {
            const byte = w * 4 + b;
            if (byte < rowBytes) word |= matrix.bitmask[r * rowBytes + byte]! << (8 * b);
          }
          mask[r * words + w] = word >>> 0;
          offsets[r * words + w] = offset;
          offset += popcount(word >>> 0);
        }
      }
      const maskBuffer = backend.buffer(mask);
      const offsetBuffer = backend.buffer(offsets);
      gpu = {
        ...base,
        format: 'bitmask',
        buffers: [values, maskBuffer, offsetBuffer],
        extra: words,
        bytes: values.size + maskBuffer.size + offsetBuffer.size,
      };
      break;
    }
    case 'bsr': {
      // Block rows' pointers and block columns; values stay block after block, row-major.
      gpu = {
        ...base,
        format: 'bsr',
        blockRows: matrix.blockRows,
        blockCols: matrix.blockCols,
        ...compressed(backend, values, matrix.indptr, matrix.indices),
      };
      break;
    }
    default:
      values.destroy();
      throw new InvalidArgumentError(
        'matrix format',
        matrix.format,
        'the GPU kernels take dense, csr, nm, bitmask or bsr (convert with sparse-formats)',
      );
  }
  return gpu;
}

/** Values, row pointers and column indices (CSR, or BSR's per block), the indices widened to u32. */
function compressed(
  backend: { buffer(data: ArrayBufferView): GPUBuffer },
  values: GPUBuffer,
  indptr: Int32Array,
  indices: ArrayLike<number>,
): Pick<GpuMatrix, 'buffers' | 'extra' | 'bytes'> {
  const pointers = backend.buffer(Uint32Array.from(indptr));
  const columns = backend.buffer(Uint32Array.from(indices));
  return {
    buffers: [values, pointers, columns],
    extra: 0,
    bytes: values.size + pointers.size + columns.size,
  };
}

function popcount(v: number): number {
  let n = 0;
  for (let x = v >>> 0; x !== 0; x &= x - 1) n++;
  return n;
}
