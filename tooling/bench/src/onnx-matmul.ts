// The strongest dense baseline a JavaScript user has: onnxruntime-node's MatMul (MLAS) on the CPU,
// on a one-node model (core's ONNX writer) so the benchmarks need no ONNX tooling.
import { encodeOnnxModel, transposeValues } from '@sparsekit/core';
import type { Subject } from './measure.js';

/**
 * ONNX bytes for y[batch, n] = x[batch, k] @ B[k, n] (MatMul, opset 17), with B stored as an
 * initializer, so onnxruntime can pre-pack it as it does for a real model's weights.
 */
export function matmulModel(b: Float32Array, k: number, n: number): Uint8Array {
  return encodeOnnxModel({
    name: 'matmul',
    nodes: [{ op: 'MatMul', inputs: ['x', 'B'], outputs: ['y'] }],
    initializers: [{ name: 'B', dims: [k, n], data: b }],
    inputs: [{ name: 'x', type: 'f32', dims: ['batch', k] }],
    outputs: [{ name: 'y', type: 'f32', dims: ['batch', n] }],
  });
}

/** W^T [cols, rows] of a row-major f32 matrix W [rows, cols] (core's `transposeValues`). */
export const transposed = transposeValues;

/** A subject that multiplies a batch of inputs: y [batch, out] = x [batch, in] W^T. */
export interface MatmulSubject extends Subject {
  /** Set x [batch, in] for the following calls. */
  setBatch(batch: number, x: Float32Array): void;
}

export interface OnnxMatmulOptions {
  /** W^T [in, out] row-major (the B of y = x B); see `transposed`. */
  wt: Float32Array;
  inFeatures: number;
  outFeatures: number;
  /** Sessions, each with its own copy of the weight. */
  copies: number;
  /** Intra-op threads of each session. */
  threads: number;
}

/**
 * onnxruntime-node MatMul with W^T as an initializer (so it pre-packs it as it does a real model's
 * weights), CPU execution provider, `threads` intra-op threads; one session per copy. The output is
 * read back into a JavaScript array by every call.
 */
export async function onnxMatmulSubject(options: OnnxMatmulOptions): Promise<MatmulSubject> {
  const { wt, inFeatures, outFeatures, copies, threads } = options;
  const ort = await import('onnxruntime-node');
  const model = matmulModel(wt, inFeatures, outFeatures);
  const sessions: Array<import('onnxruntime-node').InferenceSession> = [];
  try {
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
  } catch (error) {
    for (const s of sessions) void s.release();
    throw error;
  }
  let feeds: Record<string, import('onnxruntime-node').Tensor> = {};
  return {
    kernel: 'onnxruntime MatMul',
    dtype: 'f32',
    threads,
    weightBytes: inFeatures * outFeatures * 4,
    copies,
    setBatch(batch, x) {
      feeds = { x: new ort.Tensor('float32', x, [batch, inFeatures]) };
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
