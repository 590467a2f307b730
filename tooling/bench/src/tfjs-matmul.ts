// A dense baseline a TensorFlow.js user has: tfjs-backend-wasm's matMul (XNNPACK). In Node it runs
// on one thread (the backend reports no multithread support there).
import type { MatmulSubject } from './onnx-matmul.js';

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

export interface TfjsMatmulOptions {
  /** W^T [in, out] row-major; see `transposed`. */
  wt: Float32Array;
  inFeatures: number;
  outFeatures: number;
  /** Distinct copies of the weight, for calls rotating beyond the last-level cache. */
  copies: number;
}

/** tfjs-backend-wasm matMul(x, W^T) on `copies` tensors of the weight. */
export async function tfjsMatmulSubject(options: TfjsMatmulOptions): Promise<MatmulSubject> {
  const { wt, inFeatures, outFeatures, copies } = options;
  const tf = await loadTf();
  const list = Array.from({ length: copies }, () => tf.tensor2d(wt, [inFeatures, outFeatures]));
  let x: import('@tensorflow/tfjs-core').Tensor2D | undefined;
  const wasm = await import('@tensorflow/tfjs-backend-wasm');
  return {
    kernel: 'tfjs-wasm matMul',
    dtype: 'f32',
    threads: wasm.getThreadsCount(),
    weightBytes: inFeatures * outFeatures * 4,
    copies,
    setBatch(batch, input) {
      x?.dispose();
      x = tf.tensor2d(input, [batch, inFeatures]);
    },
    call(i) {
      const y = tf.matMul(x!, list[i]!);
      const data = y.dataSync() as Float32Array;
      y.dispose();
      return data;
    },
    dispose() {
      x?.dispose();
      for (const t of list) t.dispose();
    },
  };
}
