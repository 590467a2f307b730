import { InvalidArgumentError, InvalidFormatError } from '@sparsekit/core';
import type { CsrMatrix, NmMatrix, ValueDType, Values } from '../types.js';
import { encodeValues, type IndexType, valuesF32 } from '../values.js';
import { checkDims, checkValues } from './common.js';
import { CsrBuilder } from './csr.js';

export interface NmFields {
  rows: number;
  cols: number;
  n: number;
  m: number;
  indices: Uint8Array;
  values: Values;
  dtype?: ValueDType;
}

/** Bits used to store one in-group position: ceil(log2 m), at least 1. */
export function nmIndexBits(m: number): number {
  return Math.max(1, Math.ceil(Math.log2(m)));
}

/** Bytes of the packed position array for `slots` slots. */
export function nmIndexBytes(slots: number, m: number): number {
  return Math.ceil((slots * nmIndexBits(m)) / 8);
}

/** Read the position of slot `slot` from packed indices (little-endian bit order). */
export function readNmPosition(indices: Uint8Array, slot: number, bits: number): number {
  const bit = slot * bits;
  const byte = bit >>> 3;
  const word = (indices[byte] ?? 0) | ((indices[byte + 1] ?? 0) << 8) | ((indices[byte + 2] ?? 0) << 16);
  return (word >>> (bit & 7)) & ((1 << bits) - 1);
}

function writeNmPosition(indices: Uint8Array, slot: number, bits: number, position: number): void {
  for (let b = 0; b < bits; b++) {
    if ((position >>> b) & 1) {
      const bit = slot * bits + b;
      indices[bit >>> 3]! |= 1 << (bit & 7);
    }
  }
}

export function checkNmPattern(n: number, m: number, cols: number): void {
  if (!Number.isInteger(m) || m < 2 || m > 65536)
    throw new InvalidArgumentError('m', m, 'must be an integer in [2, 65536]');
  if (!Number.isInteger(n) || n < 1 || n >= m)
    throw new InvalidArgumentError('n', n, `must be an integer with 1 <= n < m = ${m}`);
  if (cols % m !== 0) throw new InvalidFormatError('nm', `m = ${m} does not divide cols = ${cols}`);
}

export function nm(fields: NmFields): NmMatrix {
  const m: NmMatrix = {
    format: 'nm',
    dtype: fields.dtype ?? 'f32',
    indexBits: nmIndexBits(fields.m),
    ...fields,
  };
  validateNm(m);
  return m;
}

export function validateNm(x: NmMatrix): void {
  checkDims('nm', x.rows, x.cols);
  checkNmPattern(x.n, x.m, x.cols);
  if (x.indexBits !== nmIndexBits(x.m)) {
    throw new InvalidFormatError(
      'nm',
      `indexBits is ${x.indexBits}, expected ${nmIndexBits(x.m)} for m = ${x.m}`,
    );
  }
  const groups = x.cols / x.m;
  const slots = x.rows * groups * x.n;
  checkValues('nm', x.values, x.dtype, slots);
  if (!(x.indices instanceof Uint8Array) || x.indices.length !== nmIndexBytes(slots, x.m)) {
    throw new InvalidFormatError(
      'nm',
      `indices must be a Uint8Array of ${nmIndexBytes(slots, x.m)} bytes (${slots} positions of ${x.indexBits} bits)`,
    );
  }
  for (let group = 0; group < x.rows * groups; group++) {
    let previous = -1;
    for (let s = 0; s < x.n; s++) {
      const slot = group * x.n + s;
      const position = readNmPosition(x.indices, slot, x.indexBits);
      if (position >= x.m || position <= previous) {
        throw new InvalidFormatError(
          'nm',
          `positions in group ${group % groups} of row ${Math.floor(group / groups)} must be strictly increasing and below m = ${x.m} (got ${previous} then ${position})`,
          slot,
        );
      }
      previous = position;
    }
  }
}

/** Pack CSR into N:M; throws if any group of m columns holds more than n nonzeros. */
export function csrToNm(x: CsrMatrix, n: number, m: number): NmMatrix {
  checkNmPattern(n, m, x.cols);
  const groups = x.cols / m;
  const bits = nmIndexBits(m);
  const slots = x.rows * groups * n;
  const values = new Float32Array(slots);
  const indices = new Uint8Array(nmIndexBytes(slots, m));
  const source = valuesF32(x.values, x.dtype);
  const used = new Uint8Array(m);
  const positions: number[] = [];
  const kept: number[] = [];
  for (let r = 0; r < x.rows; r++) {
    let k = x.indptr[r]!;
    const end = x.indptr[r + 1]!;
    for (let g = 0; g < groups; g++) {
      positions.length = 0;
      kept.length = 0;
      for (; k < end && x.indices[k]! < (g + 1) * m; k++) {
        if (source[k] === 0) continue;
        if (positions.length === n) {
          throw new InvalidFormatError(
            'nm',
            `row ${r}, group ${g} (columns ${g * m}..${(g + 1) * m - 1}) holds more than n = ${n} nonzeros; prune it to ${n}:${m} first`,
            r * x.cols + x.indices[k]!,
          );
        }
        positions.push(x.indices[k]! - g * m);
        kept.push(source[k]!);
      }
      // Pad with the lowest unused positions (value 0), keeping positions sorted.
      used.fill(0);
      for (const p of positions) used[p] = 1;
      for (let p = 0; positions.length < n; p++) {
        if (!used[p]) {
          positions.push(p);
          kept.push(0);
        }
      }
      const order = positions.map((_, i) => i).sort((a, b) => positions[a]! - positions[b]!);
      const base = (r * groups + g) * n;
      for (let s = 0; s < n; s++) {
        values[base + s] = kept[order[s]!]!;
        writeNmPosition(indices, base + s, bits, positions[order[s]!]!);
      }
    }
  }
  return {
    format: 'nm',
    rows: x.rows,
    cols: x.cols,
    n,
    m,
    indexBits: bits,
    dtype: x.dtype,
    indices,
    values: encodeValues(values, x.dtype),
  };
}

export function nmToCsr(x: NmMatrix, indexType: IndexType = 'i32'): CsrMatrix {
  const builder = new CsrBuilder(x.rows, x.cols, x.values.length);
  forEachNm(x, (r, c, v) => builder.push(r, c, v));
  return builder.finish(x.dtype, indexType);
}

export function forEachNm(x: NmMatrix, fn: (row: number, col: number, value: number) => void): void {
  const values = valuesF32(x.values, x.dtype);
  const groups = x.cols / x.m;
  for (let r = 0; r < x.rows; r++) {
    for (let g = 0; g < groups; g++) {
      const base = (r * groups + g) * x.n;
      for (let s = 0; s < x.n; s++) {
        const v = values[base + s]!;
        if (v !== 0) fn(r, g * x.m + readNmPosition(x.indices, base + s, x.indexBits), v);
      }
    }
  }
}
