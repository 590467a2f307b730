import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  decodeSafetensors,
  encodeSafetensors,
  InvalidFormatError,
  SafetensorsError,
  Tensor,
} from '@sparsekit/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeDense } from '../arbitraries.test-util.js';
import { fromDense, toDenseArray } from '../convert.js';
import type { FormatName, SparseMatrix } from '../types.js';
import { decodeSparseSafetensors, encodeSparseSafetensors } from './codec.js';
import { loadSparseSafetensors, SparseSafetensorsFile, saveSparseSafetensors } from './node.js';
import { FORMATS_METADATA_KEY, matrixToTensors, storedTensorNames } from './tensors.js';

const W = new Tensor('f32', [6, 8], makeDense(6, 8, 0.5, 11, true, [2, 4]));

const ALL: Array<[FormatName, object]> = [
  ['dense', {}],
  ['coo', {}],
  ['csr', {}],
  ['csc', {}],
  ['bsr', { blockShape: [3, 2] }],
  ['nm', { n: 2, m: 4 }],
  ['bitmask', {}],
];

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'sparsekit-formats-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('sparse safetensors', () => {
  it('round-trips every format (f32 and f16), plain tensors and metadata, loading each in its format', () => {
    const matrices: Record<string, SparseMatrix> = {};
    for (const [format, options] of ALL) {
      matrices[`${format}.weight`] = fromDense(W, format, options);
      matrices[`${format}16.weight`] = fromDense(W, format, { ...options, dtype: 'f16' });
    }
    const bias = Tensor.f32([1, 2, 3]);
    const bytes = encodeSparseSafetensors(matrices, { 'lm.bias': bias }, { source: 'test' });
    const back = decodeSparseSafetensors(bytes);
    expect(Object.keys(back.matrices).sort()).toEqual(Object.keys(matrices).sort());
    for (const [name, x] of Object.entries(matrices)) {
      const y = back.matrices[name]!;
      expect(y.format, name).toBe(x.format);
      expect(y.dtype, name).toBe(x.dtype);
      expect(toDenseArray(y), name).toEqual(toDenseArray(x));
    }
    expect(back.matrices['nm.weight']).toMatchObject({ n: 2, m: 4 });
    expect(back.matrices['bsr.weight']).toMatchObject({ blockRows: 3, blockCols: 2 });
    expect(Object.keys(back.tensors)).toEqual(['lm.bias']);
    expect(back.metadata).toEqual({ source: 'test' });
  });

  it('writes bitmask with the compressed-tensors names, dtypes and bit order', () => {
    const x = fromDense(
      new Tensor(
        'f32',
        [2, 10],
        Float32Array.from({ length: 20 }, (_, i) => (i % 3 === 0 ? i : 0)),
      ),
      'bitmask',
    );
    const { tensors } = decodeSafetensors(encodeSparseSafetensors({ 'mlp.down_proj.weight': x }));
    expect(Object.keys(tensors).sort()).toEqual([
      'mlp.down_proj.bitmask',
      'mlp.down_proj.compressed',
      'mlp.down_proj.row_offsets',
      'mlp.down_proj.shape',
    ]);
    // Row 0 holds nonzeros at columns 3, 6, 9 (element 0 is zero); row 1 (elements 10..19) keeps 12, 15, 18 -> columns 2, 5, 8.
    // numpy.packbits(..., bitorder='little'): bit b of byte k is column 8k + b.
    expect(tensors['mlp.down_proj.bitmask']!.shape).toEqual([2, 2]);
    expect(Array.from(tensors['mlp.down_proj.bitmask']!.data as Uint8Array)).toEqual([
      0b01001000, 0b10, 0b00100100, 0b1,
    ]);
    expect(tensors['mlp.down_proj.shape']!.dtype).toBe('i64');
    expect(tensors['mlp.down_proj.shape']!.toArray()).toEqual([2, 10]);
    expect(tensors['mlp.down_proj.row_offsets']!.dtype).toBe('i64');
    expect(tensors['mlp.down_proj.row_offsets']!.toArray()).toEqual([0, 3]);
    expect(tensors['mlp.down_proj.compressed']!.toArray()).toEqual([3, 6, 9, 12, 15, 18]);
  });

  it('reads a sparse-bitmask file that compressed-tensors wrote (no Sparsekit metadata)', () => {
    // What BitmaskTensor.from_dense writes for [[0, 1.5, 0, 0, 0, 0, 0, 0, 0, -2], [0]*10] in f16.
    const bytes = encodeSafetensors(
      {
        'model.layers.0.mlp.up_proj.compressed': Tensor.fromNumbers('f16', [1.5, -2]),
        'model.layers.0.mlp.up_proj.bitmask': new Tensor('u8', [2, 2], Uint8Array.of(0b10, 0b10, 0, 0)),
        'model.layers.0.mlp.up_proj.shape': Tensor.fromNumbers('i64', [2, 10]),
        'model.layers.0.mlp.up_proj.row_offsets': Tensor.fromNumbers('i64', [0, 2]),
        'model.layers.0.mlp.up_proj.bias': Tensor.f32([0, 0]),
      },
      { format: 'pt' },
    );
    const { matrices, tensors } = decodeSparseSafetensors(bytes);
    const x = matrices['model.layers.0.mlp.up_proj.weight']!;
    expect(x.format).toBe('bitmask');
    expect(x.dtype).toBe('f16');
    expect(Array.from(toDenseArray(x))).toEqual([0, 1.5, 0, 0, 0, 0, 0, 0, 0, -2, ...new Array(10).fill(0)]);
    expect(Object.keys(tensors)).toEqual(['model.layers.0.mlp.up_proj.bias']);
  });

  it('rejects corrupt sparse data with typed errors', () => {
    const good = fromDense(W, 'csr');
    const laid = decodeSafetensors(encodeSparseSafetensors({ w: good }));
    const indices = laid.tensors['w.indices']!.data as Int32Array;
    indices[0] = 99;
    const corrupt = encodeSafetensors(laid.tensors, laid.metadata);
    expect(() => decodeSparseSafetensors(corrupt)).toThrow(InvalidFormatError);
    expect(() => decodeSparseSafetensors(corrupt)).toThrow(/Invalid csr: stored matrix 'w': /);

    const missing = { ...laid.tensors };
    delete missing['w.indptr'];
    expect(() => decodeSparseSafetensors(encodeSafetensors(missing, laid.metadata))).toThrow(
      /needs a tensor 'w.indptr'/,
    );
    expect(() => decodeSparseSafetensors(encodeSafetensors({}, { [FORMATS_METADATA_KEY]: '{oops' }))).toThrow(
      SafetensorsError,
    );
  });

  it('saves atomically to disk and loads back; a failed save leaves the old file', async () => {
    const path = join(dir, 'sparse.safetensors');
    await saveSparseSafetensors(path, { 'a.weight': fromDense(W, 'nm', { n: 2, m: 4 }) });
    const loaded = await loadSparseSafetensors(path);
    expect(toDenseArray(loaded.matrices['a.weight']!)).toEqual(W.toFloat32Array());
    await expect(
      saveSparseSafetensors(
        path,
        { 'a.weight': fromDense(W, 'csr') },
        { 'a.weight.indptr': Tensor.f32([1]) },
      ),
    ).rejects.toThrow(/two tensors would be named/);
    expect((await loadSparseSafetensors(path)).matrices['a.weight']!.format).toBe('nm');
    expect((await readdir(dir)).filter((f) => f.includes('.tmp-'))).toEqual([]);
    await writeFile(join(dir, 'bad.safetensors'), 'not a safetensors file at all');
    await expect(loadSparseSafetensors(join(dir, 'bad.safetensors'))).rejects.toThrow(SafetensorsError);
  });

  it('names the tensors of every format from the metadata entry alone, as matrixToTensors lays them out', () => {
    for (const [format, options] of ALL) {
      const { tensors, stored } = matrixToTensors('x.weight', fromDense(W, format, options));
      expect(storedTensorNames(stored).sort(), format).toEqual(Object.keys(tensors).sort());
    }
  });

  it('opens a file reading its header alone, then reads one matrix or tensor at a time', async () => {
    const path = join(dir, 'lazy.safetensors');
    const matrices = { 'a.weight': fromDense(W, 'csr'), 'b.weight': fromDense(W, 'bitmask') };
    await saveSparseSafetensors(path, matrices, { 'a.bias': Tensor.f32([1, 2]) }, { source: 'test' });
    const file = await SparseSafetensorsFile.open(path);
    try {
      expect(file.matrixNames().sort()).toEqual(['a.weight', 'b.weight']);
      expect(file.tensorNames()).toEqual(['a.bias']);
      expect(file.metadata).toEqual({ source: 'test' });
      expect(file.entry('a.bias').shape).toEqual([2]);
      expect(toDenseArray(file.readMatrixSync('b.weight'))).toEqual(W.toFloat32Array());
      expect((await file.readMatrix('a.weight')).format).toBe('csr');
      expect(file.readTensorSync('a.bias').toArray()).toEqual([1, 2]);
      expect((await file.readTensor('a.bias')).toArray()).toEqual([1, 2]);
      expect(() => file.readMatrixSync('a.bias')).toThrow(/no matrix named 'a.bias'/);
    } finally {
      await file.close();
    }
  });
});
