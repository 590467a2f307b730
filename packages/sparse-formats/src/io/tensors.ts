import { InvalidFormatError, SafetensorsError, Tensor } from '@sparsekit/core';
import { nmIndexBits } from '../formats/nm.js';
import type { FormatName, SparseMatrix, ValueDType, Values } from '../types.js';
import { validate } from '../validate.js';

/** Metadata key under which the format of every matrix in a file is recorded (a JSON string). */
export const FORMATS_METADATA_KEY = 'sparsekit.formats';

/** What the metadata records per matrix: its format, the tensor-name prefix and the format's parameters. */
export interface StoredFormat {
  format: FormatName;
  prefix: string;
  n?: number;
  m?: number;
  blockShape?: [number, number];
}

/**
 * The prefix of a matrix's tensors. Bitmask follows compressed-tensors: a trailing `.weight` is dropped
 * (`mlp.down_proj.weight` is stored as `mlp.down_proj.compressed`, `.bitmask`, `.shape`, `.row_offsets`).
 */
export function storagePrefix(name: string, format: FormatName): string {
  return format === 'bitmask' && name.endsWith('.weight') ? name.slice(0, -'.weight'.length) : name;
}

/** The tensor-name suffixes each format stores its matrix in ('' is the prefix itself). */
const STORED_PARTS: Record<FormatName, readonly string[]> = {
  dense: [''],
  coo: ['row_indices', 'col_indices', 'values', 'shape'],
  csr: ['indptr', 'indices', 'values', 'shape'],
  csc: ['indptr', 'indices', 'values', 'shape'],
  bsr: ['indptr', 'indices', 'values', 'shape'],
  nm: ['values', 'indices', 'shape'],
  bitmask: ['compressed', 'bitmask', 'shape', 'row_offsets'],
};

/** The names of the tensors a stored matrix is made of, from its metadata entry alone. */
export function storedTensorNames(stored: StoredFormat): string[] {
  return (STORED_PARTS[stored.format] ?? []).map((part) =>
    part === '' ? stored.prefix : `${stored.prefix}.${part}`,
  );
}

function valueTensor(values: Values, dtype: ValueDType, shape: number[]): Tensor {
  return dtype === 'f32'
    ? new Tensor('f32', shape, values as Float32Array)
    : new Tensor('f16', shape, values as Uint16Array);
}

function shapeTensor(x: SparseMatrix): Tensor {
  return new Tensor('i64', [2], new BigInt64Array([BigInt(x.rows), BigInt(x.cols)]));
}

function i32(a: ArrayLike<number>): Tensor<'i32'> {
  return new Tensor('i32', [a.length], a instanceof Int32Array ? a : Int32Array.from(a));
}

/** The tensors that store a matrix, and the metadata entry that describes them. */
export function matrixToTensors(
  name: string,
  x: SparseMatrix,
): { tensors: Record<string, Tensor>; stored: StoredFormat } {
  const prefix = storagePrefix(name, x.format);
  const stored: StoredFormat = { format: x.format, prefix };
  const t: Record<string, Tensor> = Object.create(null); // a tensor may be named __proto__
  switch (x.format) {
    case 'dense':
      t[prefix] = valueTensor(x.values, x.dtype, [x.rows, x.cols]);
      break;
    case 'coo':
      t[`${prefix}.row_indices`] = i32(x.rowIndices);
      t[`${prefix}.col_indices`] = i32(x.colIndices);
      t[`${prefix}.values`] = valueTensor(x.values, x.dtype, [x.values.length]);
      t[`${prefix}.shape`] = shapeTensor(x);
      break;
    case 'csr':
    case 'csc':
      t[`${prefix}.indptr`] = i32(x.indptr);
      t[`${prefix}.indices`] = i32(x.indices);
      t[`${prefix}.values`] = valueTensor(x.values, x.dtype, [x.values.length]);
      t[`${prefix}.shape`] = shapeTensor(x);
      break;
    case 'bsr':
      t[`${prefix}.indptr`] = i32(x.indptr);
      t[`${prefix}.indices`] = i32(x.indices);
      t[`${prefix}.values`] = valueTensor(x.values, x.dtype, [x.indices.length, x.blockRows, x.blockCols]);
      t[`${prefix}.shape`] = shapeTensor(x);
      stored.blockShape = [x.blockRows, x.blockCols];
      break;
    case 'nm':
      t[`${prefix}.values`] = valueTensor(x.values, x.dtype, [x.rows, (x.cols / x.m) * x.n]);
      t[`${prefix}.indices`] = new Tensor('u8', [x.indices.length], x.indices);
      t[`${prefix}.shape`] = shapeTensor(x);
      stored.n = x.n;
      stored.m = x.m;
      break;
    case 'bitmask':
      t[`${prefix}.compressed`] = valueTensor(x.values, x.dtype, [x.values.length]);
      t[`${prefix}.bitmask`] = new Tensor('u8', [x.rows, Math.ceil(x.cols / 8)], x.bitmask);
      t[`${prefix}.shape`] = shapeTensor(x);
      t[`${prefix}.row_offsets`] = new Tensor(
        'i64',
        [x.rows],
        BigInt64Array.from(x.rowOffsets, (v) => BigInt(v)),
      );
      break;
  }
  return { tensors: t, stored };
}

/** Rebuild (and validate) a matrix from its tensors, looked up by name. */
export function matrixFromTensors(
  stored: StoredFormat,
  tensors: (name: string) => Tensor | undefined,
): SparseMatrix {
  const { prefix, format } = stored;
  const take = (suffix: string): Tensor => {
    const key = suffix === '' ? prefix : `${prefix}.${suffix}`;
    const t = tensors(key);
    if (t === undefined)
      throw new SafetensorsError(
        `the ${format} matrix '${prefix}' needs a tensor '${key}', which is missing`,
        { tensor: key },
      );
    return t;
  };
  const values = (t: Tensor): { values: Values; dtype: ValueDType } => {
    if (t.dtype === 'f32') return { values: t.data as Float32Array, dtype: 'f32' };
    if (t.dtype === 'f16') return { values: t.data as Uint16Array, dtype: 'f16' };
    if (t.dtype === 'bf16' || t.dtype === 'f64') return { values: t.toFloat32Array(true), dtype: 'f32' };
    throw new InvalidFormatError(
      format,
      `values of '${prefix}' have dtype ${t.dtype}; expected F32, F16, BF16 or F64`,
    );
  };
  const ints = (t: Tensor): Int32Array => {
    if (t.dtype === 'i32') return t.data as Int32Array;
    if (t.dtype === 'i64' || t.dtype === 'i16' || t.dtype === 'u8') {
      const out = new Int32Array(t.size);
      for (let i = 0; i < t.size; i++) {
        const v = Number(t.data[i]!);
        if (v > 2 ** 31 - 1 || v < -(2 ** 31))
          throw new InvalidFormatError(format, `index ${v} of '${prefix}' does not fit in 32 bits`, i);
        out[i] = v;
      }
      return out;
    }
    throw new InvalidFormatError(
      format,
      `indices of '${prefix}' have dtype ${t.dtype}; expected an integer dtype`,
    );
  };
  const shape = (): [number, number] => {
    if (format === 'dense') {
      const t = take('');
      if (t.rank !== 2) throw new InvalidFormatError('dense', `'${prefix}' has rank ${t.rank}, expected 2`);
      return [t.shape[0]!, t.shape[1]!];
    }
    const s = ints(take('shape'));
    if (s.length !== 2)
      throw new InvalidFormatError(format, `'${prefix}.shape' must hold 2 dimensions, got ${s.length}`);
    return [s[0]!, s[1]!];
  };
  const [rows, cols] = shape();
  let x: SparseMatrix;
  switch (format) {
    case 'dense':
      x = { format, rows, cols, ...values(take('')) };
      break;
    case 'coo':
      x = {
        format,
        rows,
        cols,
        rowIndices: ints(take('row_indices')),
        colIndices: ints(take('col_indices')),
        ...values(take('values')),
      };
      break;
    case 'csr':
    case 'csc':
      x = {
        format,
        rows,
        cols,
        indptr: ints(take('indptr')),
        indices: ints(take('indices')),
        ...values(take('values')),
      };
      break;
    case 'bsr': {
      const v = take('values');
      const shape = stored.blockShape ?? [v.shape[1] ?? 0, v.shape[2] ?? 0];
      if (!Array.isArray(shape) || shape.length !== 2 || !shape.every((d) => Number.isInteger(d) && d > 0))
        throw new InvalidFormatError(
          'bsr',
          `${name}: blockShape ${JSON.stringify(shape)} must be [rows, cols] of positive integers`,
        );
      const [R, C] = shape as [number, number];
      x = {
        format,
        rows,
        cols,
        blockRows: R,
        blockCols: C,
        indptr: ints(take('indptr')),
        indices: ints(take('indices')),
        ...values(v),
      };
      break;
    }
    case 'nm': {
      const { n, m } = stored;
      if (n === undefined || m === undefined)
        throw new InvalidFormatError('nm', `metadata for '${prefix}' lacks n and m`);
      const idx = take('indices');
      if (idx.dtype !== 'u8')
        throw new InvalidFormatError('nm', `'${prefix}.indices' must be U8, got ${idx.dtype}`);
      x = {
        format,
        rows,
        cols,
        n,
        m,
        indexBits: nmIndexBits(m),
        indices: idx.data as Uint8Array,
        ...values(take('values')),
      };
      break;
    }
    case 'bitmask': {
      const bits = take('bitmask');
      if (bits.dtype !== 'u8')
        throw new InvalidFormatError('bitmask', `'${prefix}.bitmask' must be U8, got ${bits.dtype}`);
      x = {
        format,
        rows,
        cols,
        bitmask: bits.data as Uint8Array,
        rowOffsets: ints(take('row_offsets')),
        ...values(take('compressed')),
      };
      break;
    }
    default:
      throw new InvalidFormatError(
        'safetensors',
        `unknown sparse format '${String(format)}' for '${prefix}'`,
      );
  }
  try {
    validate(x);
  } catch (error) {
    // Name the stored matrix: a file's damage is otherwise hard to place.
    if (InvalidFormatError.isInstance(error))
      throw new InvalidFormatError(
        error.format,
        `stored matrix '${prefix}': ${error.reason}`,
        error.position,
        {
          tensor: prefix,
          hint: 'a packed layer of the weights file is damaged: save the model again',
          cause: error,
        },
      );
    throw error;
  }
  return x;
}

/** Parse the formats recorded in file metadata, checking their shape. */
export function parseStoredFormats(metadata: Readonly<Record<string, string>>): Record<string, StoredFormat> {
  const text = metadata[FORMATS_METADATA_KEY];
  if (text === undefined) return {};
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new SafetensorsError(`metadata '${FORMATS_METADATA_KEY}' is not valid JSON`);
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new SafetensorsError(`metadata '${FORMATS_METADATA_KEY}' must be a JSON object`);
  }
  for (const [name, entry] of Object.entries(parsed as Record<string, unknown>)) {
    const e = entry as Partial<StoredFormat> | null;
    if (e === null || typeof e !== 'object' || typeof e.format !== 'string' || typeof e.prefix !== 'string') {
      throw new SafetensorsError(
        `metadata '${FORMATS_METADATA_KEY}' entry '${name}' needs string fields format and prefix`,
      );
    }
  }
  return parsed as Record<string, StoredFormat>;
}

/**
 * Matrices stored by compressed-tensors' sparse-bitmask compressor (recognised by their four tensors)
 * that the metadata does not describe; named `<prefix>.weight` as compressed-tensors restores them.
 */
export function detectCompressedTensorsBitmasks(
  names: Iterable<string>,
  known: ReadonlySet<string>,
): Record<string, StoredFormat> {
  const all = new Set(names);
  const found: Record<string, StoredFormat> = {};
  for (const name of all) {
    if (!name.endsWith('.bitmask')) continue;
    const prefix = name.slice(0, -'.bitmask'.length);
    if (known.has(prefix)) continue;
    if (['compressed', 'shape', 'row_offsets'].every((s) => all.has(`${prefix}.${s}`))) {
      found[`${prefix}.weight`] = { format: 'bitmask', prefix };
    }
  }
  return found;
}
