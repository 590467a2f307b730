// TensorFlow.js on CUDA as a dense baseline, when the user has @tensorflow/tfjs-node-gpu installed.
// Never required: without it `tfjsNodeGpuBaseline()` resolves to undefined.

export interface DenseBaseline {
  name: string;
  /** y [batch, rows] = x [batch, cols] W^T with W dense [rows, cols]. */
  linear(x: Float32Array, batch: number, w: Float32Array, rows: number, cols: number): Promise<Float32Array>;
  /** Median milliseconds of the matMul with W resident on the device (readback excluded). */
  timeLinear(
    batch: number,
    rows: number,
    cols: number,
    options?: { reps?: number; trials?: number },
  ): Promise<number>;
}

interface TfLike {
  getBackend(): string;
  tensor2d(values: Float32Array, shape: [number, number]): TfTensor;
  matMul(a: TfTensor, b: TfTensor, transposeA?: boolean, transposeB?: boolean): TfTensor;
  dispose(t: TfTensor | TfTensor[]): void;
}
interface TfTensor {
  data(): Promise<Float32Array>;
  dataSync(): Float32Array;
}

export async function tfjsNodeGpuBaseline(): Promise<DenseBaseline | undefined> {
  let tf: TfLike;
  try {
    const name = '@tensorflow/tfjs-node-gpu';
    tf = (await import(/* @vite-ignore */ name)) as TfLike;
  } catch {
    return undefined;
  }
  return {
    name: `tfjs-node-gpu (${tf.getBackend()})`,
    async linear(x, batch, w, rows, cols) {
      const a = tf.tensor2d(x, [batch, cols]);
      const b = tf.tensor2d(w, [rows, cols]);
      const y = tf.matMul(a, b, false, true);
      const out = await y.data();
      tf.dispose([a, b, y]);
      return out;
    },
    async timeLinear(batch, rows, cols, options = {}) {
      const a = tf.tensor2d(new Float32Array(batch * cols).fill(0.5), [batch, cols]);
      const b = tf.tensor2d(new Float32Array(rows * cols).fill(0.01), [rows, cols]);
      const reps = options.reps ?? 20;
      const run = async (n: number) => {
        const t0 = performance.now();
        let y: TfTensor | undefined;
        for (let r = 0; r < n; r++) {
          if (y !== undefined) tf.dispose(y);
          y = tf.matMul(a, b, false, true);
        }
        await y!.data();
        tf.dispose(y!);
        return (performance.now() - t0) / n;
      };
      await run(2);
      const times: number[] = [];
      for (let t = 0; t < (options.trials ?? 5); t++) times.push(await run(reps));
      tf.dispose([a, b]);
      return times.sort((p, q) => p - q)[times.length >> 1]!;
    },
  };
}
