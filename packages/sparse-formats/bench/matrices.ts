// Benchmark weights: one seeded normal matrix per shape, sparsified by a seeded random mask
// (unstructured: each weight kept with probability 1 - s; N:M: n random slots of every m).
import { Rng, Tensor } from '@sparsekit/core';
import {
  type DenseMatrix,
  type FormatName,
  fromDense,
  type IndexType,
  type SparseMatrix,
  type ValueDType,
} from '@sparsekit/sparse-formats';

export interface WeightCase {
  /** Row label, e.g. "70% csr u16 f16". */
  label: string;
  /** Nominal sparsity (the table reports the measured one). */
  sparsity: number;
  format: FormatName;
  dtype: ValueDType;
  indexType?: IndexType;
  n?: number;
  m?: number;
}

/** The rows of the benchmark: our dense kernels, then every sparse pattern and format. */
export function weightCases(): WeightCase[] {
  const cases: WeightCase[] = [
    { label: 'dense f32', sparsity: 0, format: 'dense', dtype: 'f32' },
    { label: 'dense f16', sparsity: 0, format: 'dense', dtype: 'f16' },
    { label: '2:4 nm f32', sparsity: 0.5, format: 'nm', dtype: 'f32', n: 2, m: 4 },
    { label: '2:4 nm f16', sparsity: 0.5, format: 'nm', dtype: 'f16', n: 2, m: 4 },
  ];
  for (const s of [0.5, 0.7, 0.9, 0.95]) {
    const pct = `${Math.round(s * 100)}%`;
    cases.push({ label: `${pct} csr u16 f16`, sparsity: s, format: 'csr', dtype: 'f16', indexType: 'u16' });
    cases.push({ label: `${pct} bitmask f16`, sparsity: s, format: 'bitmask', dtype: 'f16' });
  }
  cases.push({ label: '90% csr i32 f32', sparsity: 0.9, format: 'csr', dtype: 'f32', indexType: 'i32' });
  return cases;
}

export function denseWeight(rows: number, cols: number, seed: number): Tensor {
  return new Tensor('f32', [rows, cols], new Rng(seed).normalArray(rows * cols, 0, 0.02));
}

function unstructuredKeep(length: number, sparsity: number, rng: Rng): Uint8Array {
  const keep = new Uint8Array(length);
  for (let i = 0; i < length; i++) keep[i] = rng.uniform() >= sparsity ? 1 : 0;
  return keep;
}

function nmKeep(length: number, n: number, m: number, rng: Rng): Uint8Array {
  const keep = new Uint8Array(length);
  for (let g = 0; g + m <= length; g += m) {
    for (const slot of rng.sample(m, n)) keep[g + slot] = 1;
  }
  return keep;
}

/** Keep masks are cached per pattern so that every format of one sparsity holds the same weights. */
export class WeightFactory {
  private readonly masks = new Map<string, Uint8Array>();

  constructor(
    readonly weight: Tensor,
    readonly seed: number,
  ) {}

  dense(): DenseMatrix {
    return fromDense(this.weight, 'dense');
  }

  build(c: WeightCase): SparseMatrix {
    if (c.format === 'dense') return fromDense(this.weight, 'dense', { dtype: c.dtype });
    const key = c.format === 'nm' ? `${c.n}:${c.m}` : String(c.sparsity);
    let keep = this.masks.get(key);
    if (keep === undefined) {
      const rng = new Rng(this.seed + this.masks.size + 1);
      keep =
        c.format === 'nm'
          ? nmKeep(this.weight.size, c.n!, c.m!, rng)
          : unstructuredKeep(this.weight.size, c.sparsity, rng);
      this.masks.set(key, keep);
    }
    return fromDense(this.weight, c.format, {
      keep,
      dtype: c.dtype,
      ...(c.indexType === undefined ? {} : { indexType: c.indexType }),
      ...(c.n === undefined ? {} : { n: c.n, m: c.m! }),
    });
  }
}
