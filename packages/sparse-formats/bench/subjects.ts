// What the benchmark times: our wasm kernels on any format, and the dense baselines (tfjs-wasm
// matMul, onnxruntime-node MatMul from @sparsekit/bench). Each subject holds `copies` distinct copies
// of its weight so that calls can rotate through a working set larger than the last-level cache.
import { type MatmulSubject, onnxMatmulSubject, tfjsMatmulSubject } from '@sparsekit/bench';
import { byteSize, type DenseMatrix, type SparseMatrix, type WasmBackend } from '@sparsekit/sparse-formats';

/** A subject of this benchmark: dense or not, f32 or f16 values, multiplying a batch. */
export interface Subject extends MatmulSubject {
  readonly dtype: 'f32' | 'f16';
  readonly dense: boolean;
}

/** Our wasm kernels: copies are distinct matrix objects, each copied into wasm memory. */
export function wasmSubject(
  backend: WasmBackend,
  kernel: string,
  matrix: SparseMatrix,
  copies: number,
): Subject {
  const list = Array.from({ length: copies }, () => ({ ...matrix }) as SparseMatrix);
  for (const m of list) backend.prepare(m);
  let x: Float32Array = new Float32Array(0);
  let batch = 0;
  let out: Float32Array = new Float32Array(0);
  return {
    kernel,
    dtype: matrix.dtype,
    dense: matrix.format === 'dense',
    threads: backend.threads,
    weightBytes: byteSize(matrix),
    copies,
    setBatch(b, input) {
      batch = b;
      x = input;
      out = new Float32Array(b * matrix.rows);
    },
    call(i) {
      return backend.linear(x, batch, list[i]!, { out });
    },
    dispose() {
      for (const m of list) backend.release(m);
    },
  };
}

/** tfjs-backend-wasm matMul(x, W^T) (@sparsekit/bench). */
export async function tfjsSubject(w: DenseMatrix, wt: Float32Array, copies: number): Promise<Subject> {
  const subject = await tfjsMatmulSubject({ wt, inFeatures: w.cols, outFeatures: w.rows, copies });
  return { ...subject, dtype: 'f32', dense: true };
}

/** onnxruntime-node MatMul (@sparsekit/bench) with W^T as an initializer, all threads. */
export async function onnxSubject(
  w: DenseMatrix,
  wt: Float32Array,
  copies: number,
  threads: number,
): Promise<Subject> {
  const subject = await onnxMatmulSubject({ wt, inFeatures: w.cols, outFeatures: w.rows, copies, threads });
  return { ...subject, dtype: 'f32', dense: true };
}
