// What the benchmark times: our wasm kernels on any format, and the dense baselines (tfjs-wasm
// matMul, onnxruntime-node MatMul from @sparsekit/bench). Each subject holds `copies` distinct copies
// of its weight so that calls can rotate through a working set larger than the last-level cache.
import { type MatmulSubject, onnxMatmulSubject } from '@sparsekit/bench';
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

type Tf = typeof import('@tensorflow/tfjs-core');

let tfPromise: Promise<Tf> | undefined;

async function loadTf(): Promise<Tf> {
  tfPromise ??= (async () => {
    const tf = await import('@tensorflow/tfjs-core');
    await import('@tensorflow/tfjs-backend-wasm');
    await tf.setBackend('wasm');
    await tf.ready();
    return tf;
  })();
  return tfPromise;
}

/**
 * tfjs-backend-wasm matMul(x, W^T) (XNNPACK). In Node it runs on one thread: the backend reports
 * no multithread support there.
 */
export async function tfjsSubject(w: DenseMatrix, wt: Float32Array, copies: number): Promise<Subject> {
  const tf = await loadTf();
  const list = Array.from({ length: copies }, () => tf.tensor2d(wt, [w.cols, w.rows]));
  let x: import('@tensorflow/tfjs-core').Tensor2D | undefined;
  const wasm = await import('@tensorflow/tfjs-backend-wasm');
  return {
    kernel: 'tfjs-wasm matMul',
    dtype: 'f32',
    dense: true,
    threads: wasm.getThreadsCount(),
    weightBytes: w.rows * w.cols * 4,
    copies,
    setBatch(batch, input) {
      x?.dispose();
      x = tf.tensor2d(input, [batch, w.cols]);
    },
    call(i) {
      const y = tf.matMul(x!, list[i]!);
      const data = y.dataSync();
      y.dispose();
      return data;
    },
    dispose() {
      x?.dispose();
      for (const t of list) t.dispose();
    },
  };
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
