// What the gather-GEMV benchmark times, each at batch 1 on copies of its weight (so calls can rotate
// through a working set larger than the last-level cache): the wasm gather kernel on the active
// columns, the dense wasm kernel (`linear`) and onnxruntime-node MatMul on the masked input.
import { onnxMatmulSubject, type Subject, transposed } from '@sparsekit/bench';
import type { DenseMatrix, WasmBackend } from '@sparsekit/sparse-formats';

export interface GemvSubject extends Subject {
  readonly dtype: 'f32' | 'f16';
  /** A dense baseline (reads every column) rather than the gather kernel. */
  readonly dense: boolean;
  /** Bytes of weight one call reads (the active columns only, for the gather kernel). */
  readonly bytesRead: number;
}

/** Dense `linear` at batch 1 with x = the masked input: every column is read, zeros or not. */
export function linearSubject(backend: WasmBackend, copies: DenseMatrix[], x: Float32Array): GemvSubject {
  const first = copies[0]!;
  const bytes = backend.prepare(first).bytes;
  for (const w of copies) backend.prepare(w);
  const out = new Float32Array(first.rows);
  return {
    kernel: `wasm dense linear ${first.dtype}`,
    dtype: first.dtype,
    dense: true,
    threads: backend.threads,
    weightBytes: bytes,
    bytesRead: bytes,
    copies: copies.length,
    call: (i) => backend.linear(x, 1, copies[i]!, { out }),
    dispose() {
      for (const w of copies) backend.release(w);
    },
  };
}

/**
 * The wasm gather kernel on the first `count` of `copies` (already prepared with
 * `backend.prepareGather`, shared between sparsities; the caller releases them).
 */
export function gatherSubject(
  backend: WasmBackend,
  copies: DenseMatrix[],
  count: number,
  x: Float32Array,
  active: Int32Array,
): GemvSubject {
  const first = copies[0]!;
  const elementBytes = first.dtype === 'f16' ? 2 : 4;
  const out = new Float32Array(first.rows);
  return {
    kernel: `wasm gather ${first.dtype}`,
    dtype: first.dtype,
    dense: false,
    threads: backend.threads,
    weightBytes: backend.prepareGather(first).bytes,
    bytesRead: active.length * first.rows * elementBytes,
    copies: count,
    call: (i) => backend.gatherGemv({ w: copies[i]!, x, active, out }),
    dispose() {},
  };
}

/** onnxruntime-node MatMul (f32, all threads) at batch 1 on the masked input. */
export async function onnxSubject(
  w: DenseMatrix,
  copies: number,
  threads: number,
  x: Float32Array,
): Promise<GemvSubject> {
  const subject = await onnxMatmulSubject({
    wt: transposed(w.values as Float32Array, w.rows, w.cols),
    inFeatures: w.cols,
    outFeatures: w.rows,
    copies,
    threads,
  });
  subject.setBatch(1, x);
  return { ...subject, dtype: 'f32', dense: true, bytesRead: subject.weightBytes };
}
