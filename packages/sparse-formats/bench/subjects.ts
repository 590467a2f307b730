// What the benchmark times: our wasm kernels on any format, and the dense baselines (tfjs-wasm
// matMul, onnxruntime-node MatMul). Each subject holds `copies` distinct copies of its weight so
// that calls can rotate through a working set larger than the last-level cache.
import { byteSize, type DenseMatrix, type SparseMatrix, type WasmBackend } from '@sparsekit/sparse-formats';
import { matmulModel } from './onnx-matmul.js';

export interface Subject {
  readonly kernel: string;
  readonly dtype: 'f32' | 'f16';
  readonly dense: boolean;
  readonly threads: number;
  /** Bytes of one copy of the weight as the kernel reads it. */
  readonly weightBytes: number;
  readonly copies: number;
  /** Make x for this batch; subsequent calls use it. */
  setBatch(batch: number, x: Float32Array): void;
  /** y = x W^T with copy `i` of the weight; y is read back to a JS Float32Array. */
  call(i: number): unknown;
  dispose(): void;
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

/** W^T [cols, rows] of a dense f32 matrix, the layout a MatMul baseline reads without transposing. */
export function transposed(w: DenseMatrix): Float32Array {
  const values = w.values as Float32Array;
  const t = new Float32Array(values.length);
  for (let r = 0; r < w.rows; r++) {
    for (let c = 0; c < w.cols; c++) t[c * w.rows + r] = values[r * w.cols + c]!;
  }
  return t;
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

/** onnxruntime-node MatMul with W^T as an initializer, CPU execution provider, all threads. */
export async function onnxSubject(
  w: DenseMatrix,
  wt: Float32Array,
  copies: number,
  threads: number,
): Promise<Subject> {
  const ort = await import('onnxruntime-node');
  const model = matmulModel(wt, w.cols, w.rows);
  const sessions: Array<import('onnxruntime-node').InferenceSession> = [];
  for (let i = 0; i < copies; i++) {
    sessions.push(
      await ort.InferenceSession.create(model, {
        executionProviders: ['cpu'],
        intraOpNumThreads: threads,
        interOpNumThreads: 1,
        graphOptimizationLevel: 'all',
        // Each session owns a thread pool; idle pools must not spin while another session runs.
        extra: { session: { intra_op: { allow_spinning: '0' } } },
      }),
    );
  }
  let feeds: Record<string, import('onnxruntime-node').Tensor> = {};
  return {
    kernel: 'onnxruntime MatMul',
    dtype: 'f32',
    dense: true,
    threads,
    weightBytes: w.rows * w.cols * 4,
    copies,
    setBatch(batch, input) {
      feeds = { x: new ort.Tensor('float32', input, [batch, w.cols]) };
    },
    async call(i) {
      const result = await sessions[i]!.run(feeds);
      return result.y!.data;
    },
    dispose() {
      for (const s of sessions) void s.release();
    },
  };
}
