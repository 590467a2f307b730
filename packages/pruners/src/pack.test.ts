import { Rng, Tensor } from '@sparsekit/core';
import { dense, type PackableLinear, type SparseMatrix, toDenseArray } from '@sparsekit/sparse-formats';
import { describe, expect, it } from 'vitest';
import { magnitude } from './methods/magnitude.js';
import { packLayer, packLayers, packWeight } from './pack.js';

describe('packWeight', () => {
  const rows = 8;
  const cols = 24;
  const w = new Rng(1).normalArray(rows * cols);

  it('packs N:M as N:M, sparse unstructured as CSR u16, dense-ish as bitmask; values unchanged', () => {
    const nm = magnitude(w, rows, cols, { n: 2, m: 4 }).weight;
    nm[0] = 0; // a group with a single nonzero still packs (an explicit zero slot)
    const packedNm = packWeight(new Tensor('f32', [rows, cols], nm), { n: 2, m: 4 });
    expect(packedNm.format).toBe('nm');
    expect(toDenseArray(packedNm)).toEqual(nm);
    const sparse = magnitude(w, rows, cols, { sparsity: 0.7 }).weight;
    const csr = packWeight(new Tensor('f32', [rows, cols], sparse));
    expect(csr.format).toBe('csr');
    expect(toDenseArray(csr)).toEqual(sparse);
    const light = magnitude(w, rows, cols, { sparsity: 0.3 }).weight;
    const bitmask = packWeight(new Tensor('f32', [rows, cols], light));
    expect(bitmask.format).toBe('bitmask');
    expect(toDenseArray(bitmask)).toEqual(light);
  });

  it('refuses a weight that does not follow the pattern', () => {
    expect(() => packWeight(new Tensor('f32', [rows, cols], w), { n: 2, m: 4 })).toThrow(
      /holds more than n = 2 nonzeros; prune it to 2:4 first/,
    );
  });
});

describe('packLayers', () => {
  it('packs the layers a pattern names, through the PackableLinear interface', () => {
    const make = (name: string) => {
      let matrix: SparseMatrix = dense({
        rows: 4,
        cols: 8,
        values: magnitude(new Rng(2).normalArray(32), 4, 8, { n: 2, m: 4 }).weight,
      });
      const layer: PackableLinear = {
        name,
        inFeatures: 8,
        outFeatures: 4,
        get matrix() {
          return matrix;
        },
        setMatrix: (m) => {
          matrix = m;
        },
        getWeight: () => new Tensor('f32', [4, 8], toDenseArray(matrix)),
        setWeight: () => undefined,
      };
      return layer;
    };
    const layers = [make('a'), make('b')];
    const before = toDenseArray(layers[0]!.matrix);
    packLayers({ linearLayers: () => layers }, (l) => (l.name === 'a' ? { n: 2, m: 4 } : undefined));
    expect(layers[0]!.matrix.format).toBe('nm');
    expect(toDenseArray(layers[0]!.matrix)).toEqual(before);
    expect(layers[1]!.matrix.format).toBe('dense');
    expect(packLayer(layers[1]!).format).toBe('csr'); // half the weights kept: CSR is the smaller
  });
});
