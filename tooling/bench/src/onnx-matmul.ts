// The strongest dense baseline a JavaScript user has: onnxruntime-node's MatMul (MLAS) on the CPU.
// The model, y = x B with B a constant initializer, is encoded by hand (protobuf wire format) so
// the benchmarks need no ONNX tooling: ModelProto { ir_version, opset_import, graph }.
import type { Subject } from './measure.js';

function varint(value: number): number[] {
  const out: number[] = [];
  let v = BigInt(value);
  do {
    let byte = Number(v & 0x7fn);
    v >>= 7n;
    if (v > 0n) byte |= 0x80;
    out.push(byte);
  } while (v > 0n);
  return out;
}

type Part = Uint8Array | number[];

function concat(parts: Part[]): Uint8Array {
  const length = parts.reduce((sum, p) => sum + p.length, 0);
  const out = new Uint8Array(length);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** A length-delimited field (wire type 2). */
function bytesField(field: number, payload: Part): Uint8Array {
  return concat([varint((field << 3) | 2), varint(payload.length), payload]);
}

function stringField(field: number, text: string): Uint8Array {
  return bytesField(field, new TextEncoder().encode(text));
}

/** A varint field (wire type 0). */
function intField(field: number, value: number): number[] {
  return [...varint(field << 3), ...varint(value)];
}

const FLOAT = 1;

function valueInfo(name: string, dims: (number | string)[]): Uint8Array {
  const shape = concat(
    dims.map((d) => bytesField(1, typeof d === 'number' ? intField(1, d) : stringField(2, d))),
  );
  const tensorType = concat([intField(1, FLOAT), bytesField(2, shape)]);
  return concat([stringField(1, name), bytesField(2, bytesField(1, tensorType))]);
}

/**
 * ONNX bytes for y[batch, n] = x[batch, k] @ B[k, n] (MatMul, opset 17), with B stored as an
 * initializer, so onnxruntime can pre-pack it as it does for a real model's weights.
 */
export function matmulModel(b: Float32Array, k: number, n: number): Uint8Array {
  const raw = new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
  const initializer = concat([
    intField(1, k),
    intField(1, n),
    intField(2, FLOAT),
    stringField(8, 'B'),
    bytesField(9, raw),
  ]);
  const node = concat([
    stringField(1, 'x'),
    stringField(1, 'B'),
    stringField(2, 'y'),
    stringField(4, 'MatMul'),
  ]);
  const graph = concat([
    bytesField(1, node),
    stringField(2, 'matmul'),
    bytesField(5, initializer),
    bytesField(11, valueInfo('x', ['batch', k])),
    bytesField(12, valueInfo('y', ['batch', n])),
  ]);
  const opset = concat([stringField(1, ''), intField(2, 17)]);
  return concat([intField(1, 8), bytesField(8, opset), bytesField(7, graph)]);
}

/** W^T [cols, rows] of a row-major f32 matrix W [rows, cols]. */
export function transposed(values: Float32Array, rows: number, cols: number): Float32Array {
  const t = new Float32Array(values.length);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) t[c * rows + r] = values[r * cols + c]!;
  }
  return t;
}

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
