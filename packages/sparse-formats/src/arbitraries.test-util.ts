import { Rng } from '@sparsekit/core';
import fc from 'fast-check';

/** A random dense matrix description: shape, density (including all-zero and fully dense), empty rows. */
export interface DenseCase {
  rows: number;
  cols: number;
  values: Float32Array;
}

export interface DenseCaseOptions {
  rowMultiple?: number;
  colMultiple?: number;
  /** Prune each group of m columns to at most n nonzeros. */
  nm?: [number, number];
}

export function makeDense(
  rows: number,
  cols: number,
  density: number,
  seed: number,
  emptyRows: boolean,
  nmPattern?: [number, number],
): Float32Array {
  const rng = new Rng(seed);
  const values = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    if (emptyRows && r % 3 === 1) continue;
    for (let c = 0; c < cols; c++) {
      if (rng.uniform() < density) values[r * cols + c] = Math.fround(rng.normal());
    }
  }
  if (nmPattern !== undefined) {
    const [n, m] = nmPattern;
    for (let r = 0; r < rows; r++) {
      for (let g = 0; g < cols / m; g++) {
        const base = r * cols + g * m;
        const order = Array.from({ length: m }, (_, i) => i).sort(
          (a, b) => Math.abs(values[base + b]!) - Math.abs(values[base + a]!),
        );
        for (const i of order.slice(n)) values[base + i] = 0;
      }
    }
  }
  return values;
}

export function denseCase(options: DenseCaseOptions = {}): fc.Arbitrary<DenseCase> {
  const { rowMultiple = 1, colMultiple = 1, nm } = options;
  return fc
    .record({
      rowBlocks: fc.integer({ min: 0, max: Math.max(1, Math.floor(10 / rowMultiple)) }),
      colBlocks: fc.integer({ min: 0, max: Math.max(1, Math.floor(12 / colMultiple)) }),
      density: fc.constantFrom(0, 0.05, 0.3, 0.6, 1),
      seed: fc.integer({ min: 0, max: 2 ** 31 - 1 }),
      emptyRows: fc.boolean(),
    })
    .map(({ rowBlocks, colBlocks, density, seed, emptyRows }) => {
      const rows = rowBlocks * rowMultiple;
      const cols = colBlocks * colMultiple;
      return { rows, cols, values: makeDense(rows, cols, density, seed, emptyRows, nm) };
    });
}

export const FC_OPTIONS = { seed: 1234, numRuns: 60 } as const;
