// A TensorFlow.js LayersModel's weights stored sparse: one safetensors shard where each float32
// weight of rank >= 2 that is sparse enough is a bitmask or CSR matrix (optionally f16 values), the
// rest dense, and a model.json whose manifest names that shard. `decodeSparseModel` gives back the
// dense ModelArtifacts, so `tf.loadLayersModel` reads such a folder through an IOHandler
// (`sparseModelHandler`, or `sparseModelFiles` in the node entry). Pruned weights stay zeros
// through save and load, and the files shrink with the sparsity (tensorflow#32805: "pruned to 50%
// and 90% but the models are the same size").
import { InvalidFormatError, Tensor, transposeValues } from '@sparsekit/core';
import type * as TF from '@tensorflow/tfjs-core';
import { fromDense, toDenseArray } from '../convert.js';
import { byteSize } from '../stats.js';
import type { SparseMatrix } from '../types.js';
import { decodeSparseSafetensors, encodeSparseSafetensors } from './codec.js';

export const SPARSE_SHARD_NAME = 'weights.sparse.safetensors';
const MARKER = 'sparsekit-sparse-weights';

export interface SparseModelOptions {
  /** How sparse weights are stored: 'bitmask', 'csr', or 'auto' (default: the smaller of the two). */
  format?: 'bitmask' | 'csr' | 'auto';
  /** Values in 'f32' (default; loads bit-identical) or 'f16' (half the value bytes, rounded). */
  dtype?: 'f32' | 'f16';
  /** Weights sparser than this are stored sparse (default 0.25); the rest dense. */
  minSparsity?: number;
}

export interface SparseWeightReport {
  name: string;
  shape: number[];
  format: SparseMatrix['format'] | 'raw';
  sparsity: number;
  bytes: number;
  denseBytes: number;
}

/** model.json as tfjs writes it, with this package's entry saying how the shard is laid out. */
export interface SparseModelJson {
  format?: string;
  generatedBy?: string;
  convertedBy?: string | null;
  modelTopology: unknown;
  weightsManifest: Array<{ paths: string[]; weights: TF.io.WeightsManifestEntry[] }>;
  [MARKER]: { version: 1; shard: string; transposed?: string[] };
  [key: string]: unknown;
}

/** The byte arrays one after another. */
function concatBytes(parts: readonly ArrayBuffer[] | readonly Uint8Array[]): Uint8Array<ArrayBuffer> {
  const views = parts.map((p) => (p instanceof Uint8Array ? p : new Uint8Array(p)));
  const out = new Uint8Array(views.reduce((n, p) => n + p.byteLength, 0));
  let at = 0;
  for (const p of views) {
    out.set(p, at);
    at += p.byteLength;
  }
  return out;
}

function concatWeightData(data: TF.io.ModelArtifacts['weightData']): Uint8Array {
  if (data === undefined) return new Uint8Array(0);
  return concatBytes(Array.isArray(data) ? data : [data]);
}

const BYTES: Record<string, number> = {
  float32: 4,
  int32: 4,
  bool: 1,
  uint8: 1,
  uint16: 2,
  float16: 2,
  int8: 1,
};

/** The sparse shard and model.json of a model's artifacts (from `model.save(handler)`). */
export function encodeSparseModel(
  artifacts: TF.io.ModelArtifacts,
  options: SparseModelOptions = {},
): { modelJson: SparseModelJson; shard: Uint8Array; report: SparseWeightReport[] } {
  const format = options.format ?? 'auto';
  const dtype = options.dtype ?? 'f32';
  const minSparsity = options.minSparsity ?? 0.25;
  const specs = artifacts.weightSpecs ?? [];
  const data = concatWeightData(artifacts.weightData);
  const matrices: Record<string, SparseMatrix> = {};
  const tensors: Record<string, Tensor> = {};
  const report: SparseWeightReport[] = [];
  const transposed: string[] = [];
  let offset = 0;
  for (const spec of specs) {
    if (spec.quantization !== undefined)
      throw new InvalidFormatError('tfjs model', `weight ${spec.name} is quantized; save it unquantized`);
    const count = spec.shape.reduce((a, b) => a * b, 1);
    const width = BYTES[spec.dtype];
    if (width === undefined)
      throw new InvalidFormatError('tfjs model', `weight ${spec.name} has dtype ${spec.dtype}`);
    const bytes = data.slice(offset, offset + count * width);
    if (bytes.length !== count * width)
      throw new InvalidFormatError('tfjs model', `weight data ends inside ${spec.name}`);
    offset += count * width;
    const denseBytes = count * width;
    if (spec.dtype === 'float32' && spec.shape.length >= 2) {
      const values = new Float32Array(bytes.buffer, bytes.byteOffset, count);
      let zeros = 0;
      for (let i = 0; i < count; i++) if (values[i] === 0) zeros++;
      const sparsity = count === 0 ? 0 : zeros / count;
      // The weight as a matrix [prod(shape[:-1]), shape[-1]], stored transposed when that has fewer
      // rows (a Dense kernel [in, out] with in >> out), since the formats keep per-row offsets.
      const last = spec.shape.at(-1)!;
      const lead = count / last;
      const flip = lead > last;
      if (flip) transposed.push(spec.name);
      const dense = flip
        ? new Tensor('f32', [last, lead], transposeValues(values, lead, last))
        : new Tensor('f32', [lead, last], values);
      let m: SparseMatrix;
      if (sparsity < minSparsity) m = fromDense(dense, 'dense', { dtype });
      else if (format === 'auto') {
        const a = fromDense(dense, 'bitmask', { dtype });
        const b = fromDense(dense, 'csr', { dtype, indexType: 'auto' });
        m = byteSize(a) <= byteSize(b) ? a : b;
      } else m = fromDense(dense, format, { dtype, indexType: 'auto' });
      matrices[spec.name] = m;
      report.push({
        name: spec.name,
        shape: spec.shape,
        format: m.format,
        sparsity,
        bytes: byteSize(m),
        denseBytes,
      });
    } else {
      tensors[spec.name] = new Tensor('u8', [bytes.length], bytes);
      report.push({
        name: spec.name,
        shape: spec.shape,
        format: 'raw',
        sparsity: 0,
        bytes: bytes.length,
        denseBytes,
      });
    }
  }
  const shard = encodeSparseSafetensors(matrices, tensors, { producer: 'sparsekit' });
  const modelJson: SparseModelJson = {
    format: artifacts.format ?? 'layers-model',
    generatedBy: artifacts.generatedBy ?? 'TensorFlow.js',
    convertedBy: artifacts.convertedBy ?? null,
    modelTopology: artifacts.modelTopology,
    weightsManifest: [{ paths: [SPARSE_SHARD_NAME], weights: specs }],
    [MARKER]: { version: 1, shard: SPARSE_SHARD_NAME, ...(transposed.length > 0 ? { transposed } : {}) },
    ...(artifacts.trainingConfig === undefined ? {} : { trainingConfig: artifacts.trainingConfig }),
    ...(artifacts.userDefinedMetadata === undefined
      ? {}
      : { userDefinedMetadata: artifacts.userDefinedMetadata }),
  };
  return { modelJson, shard, report };
}

/** Dense ModelArtifacts from a sparse model.json and its shard (checked against the manifest). */
export function decodeSparseModel(modelJson: unknown, shard: Uint8Array): TF.io.ModelArtifacts {
  const json = modelJson as Partial<SparseModelJson> | null;
  if (json === null || typeof json !== 'object' || json[MARKER] === undefined)
    throw new InvalidFormatError(
      'tfjs model',
      `model.json has no "${MARKER}" entry: not a sparse model folder`,
    );
  const specs = json.weightsManifest?.flatMap((g) => g.weights) ?? [];
  const { matrices, tensors } = decodeSparseSafetensors(shard);
  const flipped = new Set(json[MARKER].transposed ?? []);
  const parts: Uint8Array[] = [];
  for (const spec of specs) {
    const count = spec.shape.reduce((a, b) => a * b, 1);
    const m = matrices[spec.name];
    const t = tensors[spec.name];
    if (m !== undefined) {
      if (m.rows * m.cols !== count)
        throw new InvalidFormatError(
          'tfjs model',
          `weight ${spec.name}: the shard holds ${m.rows * m.cols} values, the manifest ${count}`,
        );
      const stored = toDenseArray(m);
      const values = flipped.has(spec.name) ? transposeValues(stored, m.rows, m.cols) : stored;
      parts.push(new Uint8Array(values.buffer, values.byteOffset, values.byteLength));
    } else if (t !== undefined) {
      const bytes = new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
      if (bytes.length !== count * (BYTES[spec.dtype] ?? 0))
        throw new InvalidFormatError(
          'tfjs model',
          `weight ${spec.name} has ${bytes.length} bytes in the shard`,
        );
      parts.push(bytes);
    } else throw new InvalidFormatError('tfjs model', `the shard has no weight ${spec.name}`);
  }
  const weightData = concatBytes(parts);
  return {
    modelTopology: json.modelTopology as TF.io.ModelArtifacts['modelTopology'],
    weightSpecs: specs,
    weightData: weightData.buffer,
    format: json.format as string,
    generatedBy: json.generatedBy as string,
    convertedBy: (json.convertedBy as string | null) ?? null,
    ...(json.trainingConfig === undefined
      ? {}
      : { trainingConfig: json.trainingConfig as TF.io.TrainingConfig }),
    ...(json.userDefinedMetadata === undefined
      ? {}
      : { userDefinedMetadata: json.userDefinedMetadata as Record<string, never> }),
  };
}

/** An IOHandler over a sparse model held in memory: `tf.loadLayersModel(sparseModelHandler(json, shard))`. */
export function sparseModelHandler(modelJson: unknown, shard: Uint8Array): TF.io.IOHandler {
  return { load: async () => decodeSparseModel(modelJson, shard) };
}
