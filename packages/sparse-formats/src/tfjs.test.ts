import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  InvalidFormatError,
  loadTfjs,
  Rng,
  ShapeMismatchError,
  SparsekitError,
  Tensor,
} from '@sparsekit/core';
import type * as TF from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { beforeAll, describe, expect, it } from 'vitest';
import { fromDense, toDenseArray } from './convert.js';
import { sparseModelFiles } from './io/tfjs-files.js';
import {
  encodeSparseModel,
  fromSparseTensor,
  fromTensor,
  sparseDenseMatMul,
  sparseModelHandler,
  toSparseTensor,
  toTensor,
} from './tfjs.js';

let tf: typeof TF;
beforeAll(async () => {
  ({ tf } = await loadTfjs());
});

function sparseValues(rows: number, cols: number, density: number, seed: number): Float32Array {
  const rng = new Rng(seed);
  return Float32Array.from({ length: rows * cols }, () => (rng.uniform(0, 1) < density ? rng.normal() : 0));
}

const close = (a: ArrayLike<number>, b: ArrayLike<number>, tol = 1e-5) => {
  expect(a.length).toBe(b.length);
  for (let i = 0; i < a.length; i++)
    expect(Math.abs(a[i]! - b[i]!)).toBeLessThanOrEqual(tol * (1 + Math.abs(b[i]!)));
};

describe('sparse matrices and tf.Tensor', () => {
  it('convert both ways, and through the SparseTensor triple', () => {
    const values = sparseValues(5, 7, 0.3, 1);
    for (const format of ['csr', 'coo', 'bitmask', 'dense'] as const) {
      const m = fromDense(new Tensor('f32', [5, 7], values), format);
      const t = toTensor(tf, m);
      expect(t.shape).toEqual([5, 7]);
      expect(Array.from(t.dataSync())).toEqual(Array.from(values));
      expect(Array.from(toDenseArray(fromTensor(t, format)))).toEqual(Array.from(values));
    }
    const m = fromDense(new Tensor('f32', [5, 7], values), 'csr');
    const triple = toSparseTensor(tf, m);
    expect(triple.denseShape).toEqual([5, 7]);
    expect(triple.indices.dtype).toBe('int32');
    expect(Array.from(tf.sparseToDense(triple.indices, triple.values, triple.denseShape).dataSync())).toEqual(
      Array.from(values),
    );
    expect(Array.from(toDenseArray(fromSparseTensor(triple)))).toEqual(Array.from(values));
    // Unsorted input is sorted; out-of-range and duplicate indices are refused.
    const coo = fromSparseTensor({ indices: [1, 2, 0, 1], values: [5, 3], denseShape: [2, 3] });
    expect(Array.from(coo.rowIndices)).toEqual([0, 1]);
    expect(() => fromSparseTensor({ indices: [0, 3], values: [1], denseShape: [2, 3] })).toThrow(
      InvalidFormatError,
    );
    expect(() => fromSparseTensor({ indices: [0, 1, 0, 1], values: [1, 2], denseShape: [2, 3] })).toThrow(
      InvalidFormatError,
    );
    expect(() => fromSparseTensor({ indices: [0, 1, 0], values: [1, 2], denseShape: [2, 3] })).toThrow(
      ShapeMismatchError,
    );
    expect(() => fromTensor(tf.zeros([2, 2, 2]), 'csr')).toThrow(ShapeMismatchError);
  });

  it('sparseDenseMatMul matches a dense matMul, values and gradients', () => {
    const [M, K, N] = [6, 9, 4];
    const a = sparseValues(M, K, 0.35, 2);
    const sparse = fromDense(new Tensor('f32', [M, K], a), 'csr');
    const rng = new Rng(3);
    const b = tf.tensor2d(rng.normalArray(K * N), [K, N]);
    const w = tf.tensor2d(rng.normalArray(M * N), [M, N]);
    const dense = tf.tensor2d(a, [M, K]);
    close(sparseDenseMatMul(tf, sparse, b).dataSync(), tf.matMul(dense, b).dataSync());
    const values = tf.tensor1d(sparse.values as Float32Array);
    const [gValues, gB] = tf.grads((v: TF.Tensor, x: TF.Tensor) =>
      tf.sum(tf.mul(sparseDenseMatMul(tf, sparse, x as TF.Tensor2D, { values: v as TF.Tensor1D }), w)),
    )([values, b]);
    const [gA, gB2] = tf.grads((x: TF.Tensor, y: TF.Tensor) =>
      tf.sum(tf.mul(tf.matMul(x as TF.Tensor2D, y as TF.Tensor2D), w)),
    )([dense, b]);
    close(gB!.dataSync(), gB2!.dataSync());
    const dA = gA!.dataSync();
    const expected: number[] = [];
    for (let r = 0; r < M; r++)
      for (let c = 0; c < K; c++) if (a[r * K + c] !== 0) expected.push(dA[r * K + c]!);
    close(gValues!.dataSync(), expected);
    // Without `values`, the gradient to B alone.
    close(
      tf
        .grad((x: TF.Tensor) => tf.sum(tf.mul(sparseDenseMatMul(tf, sparse, x as TF.Tensor2D), w)))(b)
        .dataSync(),
      gB2!.dataSync(),
    );
    expect(() => sparseDenseMatMul(tf, sparse, tf.zeros([K + 1, N]) as TF.Tensor2D)).toThrow(
      ShapeMismatchError,
    );
    expect(() => sparseDenseMatMul(tf, sparse, b, { values: tf.zeros([3]) as TF.Tensor1D })).toThrow(
      ShapeMismatchError,
    );
  });
});

describe('tfjs LayersModels with sparse weight shards', () => {
  function prunedModel() {
    const model = tfl.sequential({
      layers: [
        tfl.layers.dense({ units: 64, inputShape: [32], activation: 'relu' }),
        tfl.layers.dense({ units: 10 }),
      ],
    });
    for (const layer of model.layers) {
      const [k, bias] = layer.getWeights();
      const v = Float32Array.from(k!.dataSync());
      for (let i = 0; i < v.length; i++) if (i % 10 < 8) v[i] = 0; // 80% zeros
      layer.setWeights([tf.tensor(v, k!.shape), bias!]);
    }
    return model;
  }
  const artifactsOf = async (model: tfl.LayersModel) => {
    let saved: TF.io.ModelArtifacts | undefined;
    await model.save(
      tf.io.withSaveHandler(async (a) => {
        saved = a;
        return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
      }),
    );
    return saved!;
  };

  it('shrinks the files and loads back identical outputs (f32), close ones (f16)', async () => {
    const model = prunedModel();
    const artifacts = await artifactsOf(model);
    const denseBytes = (artifacts.weightData as ArrayBuffer).byteLength;
    const x = tf.tensor2d(new Rng(9).normalArray(3 * 32), [3, 32]);
    const expected = (model.predict(x) as TF.Tensor).dataSync();
    const f32 = encodeSparseModel(artifacts);
    expect(f32.report.map((r) => r.format)).toEqual(['bitmask', 'raw', 'bitmask', 'raw']);
    expect(f32.shard.length).toBeLessThan(0.45 * denseBytes);
    const back = await tfl.loadLayersModel(sparseModelHandler(f32.modelJson, f32.shard));
    expect(Array.from((back.predict(x) as TF.Tensor).dataSync())).toEqual(Array.from(expected));
    expect(encodeSparseModel(artifacts, { format: 'csr' }).report[0]!.format).toBe('csr');
    const f16 = encodeSparseModel(artifacts, { dtype: 'f16' });
    expect(f16.shard.length).toBeLessThan(f32.shard.length);
    expect(f16.report[0]!.bytes).toBeLessThan(0.6 * f32.report[0]!.bytes);
    const half = await tfl.loadLayersModel(sparseModelHandler(f16.modelJson, f16.shard));
    close((half.predict(x) as TF.Tensor).dataSync(), expected, 5e-3);
  });

  it('saves to and loads from a folder, and refuses damaged files with typed errors', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sparse-tfjs-'));
    try {
      const model = prunedModel();
      const out = join(dir, 'model');
      await model.save(sparseModelFiles(out));
      await model.save(sparseModelFiles(out)); // replaces
      const back = await tfl.loadLayersModel(sparseModelFiles(out));
      const x = tf.ones([1, 32]);
      expect(Array.from((back.predict(x) as TF.Tensor).dataSync())).toEqual(
        Array.from((model.predict(x) as TF.Tensor).dataSync()),
      );
      const shard = join(out, 'weights.sparse.safetensors');
      const bytes = readFileSync(shard);
      writeFileSync(shard, bytes.subarray(0, bytes.length - 100));
      const truncated = await tfl.loadLayersModel(sparseModelFiles(out)).catch((e: unknown) => e);
      expect(SparsekitError.isInstance(truncated)).toBe(true);
      const header = Buffer.from(bytes);
      header.writeBigUInt64LE(1n << 40n, 0); // a huge declared header
      writeFileSync(shard, header);
      expect(
        SparsekitError.isInstance(await tfl.loadLayersModel(sparseModelFiles(out)).catch((e: unknown) => e)),
      ).toBe(true);
      writeFileSync(join(out, 'model.json'), '{"modelTopology": {}}');
      const plain = await tfl.loadLayersModel(sparseModelFiles(out)).catch((e: unknown) => e);
      expect(SparsekitError.isInstance(plain)).toBe(true);
      expect(() => encodeSparseModel({ modelTopology: {} }, {})).not.toThrow();
      await expect(sparseModelHandler({ modelTopology: {} }, new Uint8Array(8)).load!()).rejects.toThrow(
        'not a sparse model folder',
      );
      writeFileSync(join(out, 'model.json'), '{');
      expect(
        SparsekitError.isInstance(await tfl.loadLayersModel(sparseModelFiles(out)).catch((e: unknown) => e)),
      ).toBe(true);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
