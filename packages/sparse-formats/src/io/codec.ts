import { decodeSafetensors, encodeSafetensors, SafetensorsError, type Tensor } from '@sparsekit/core';
import type { SparseMatrix } from '../types.js';
import {
  detectCompressedTensorsBitmasks,
  FORMATS_METADATA_KEY,
  matrixFromTensors,
  matrixToTensors,
  parseStoredFormats,
  type StoredFormat,
  storedTensorNames,
} from './tensors.js';

export interface SparseFileContents {
  /** Matrices by name, each in the format it was saved in. */
  matrices: Record<string, SparseMatrix>;
  /** Tensors that belong to no matrix (biases, embeddings, ...). */
  tensors: Record<string, Tensor>;
  /** File metadata, without the entry Sparsekit uses for formats. */
  metadata: Record<string, string>;
}

/** Lay out matrices (and plain tensors) as safetensors tensors plus metadata. */
export function sparseToTensorMap(
  matrices: Readonly<Record<string, SparseMatrix>>,
  tensors: Readonly<Record<string, Tensor>> = {},
  metadata: Readonly<Record<string, string>> = {},
): { tensors: Record<string, Tensor>; metadata: Record<string, string> } {
  const out: Record<string, Tensor> = { ...tensors };
  const formats: Record<string, StoredFormat> = {};
  for (const [name, x] of Object.entries(matrices)) {
    const { tensors: parts, stored } = matrixToTensors(name, x);
    for (const [key, t] of Object.entries(parts)) {
      if (key in out) throw new SafetensorsError(`two tensors would be named '${key}'`, { tensor: key });
      out[key] = t;
    }
    formats[name] = stored;
  }
  return { tensors: out, metadata: { ...metadata, [FORMATS_METADATA_KEY]: JSON.stringify(formats) } };
}

/** Which tensors of a file make up which matrix, from the tensor names and metadata alone. */
export interface SparseFileLayout {
  /** Each matrix's metadata entry, by matrix name. */
  formats: Record<string, StoredFormat>;
  /** Tensors that belong to no matrix, in file order. */
  tensorNames: string[];
  /** File metadata, without the entry Sparsekit uses for formats. */
  metadata: Record<string, string>;
}

/** The layout of a file with tensors `names` and `metadata` (no tensor is read). */
export function sparseFileLayout(
  names: readonly string[],
  metadata: Readonly<Record<string, string>>,
): SparseFileLayout {
  const formats = parseStoredFormats(metadata);
  const prefixes = new Set(Object.values(formats).map((f) => f.prefix));
  Object.assign(formats, detectCompressedTensorsBitmasks(names, prefixes));
  const used = new Set(Object.values(formats).flatMap(storedTensorNames));
  const { [FORMATS_METADATA_KEY]: _, ...otherMetadata } = metadata;
  return { formats, tensorNames: names.filter((name) => !used.has(name)), metadata: otherMetadata };
}

/** Split a file's tensors back into matrices and plain tensors. */
export function sparseFromTensorMap(
  tensors: Readonly<Record<string, Tensor>>,
  metadata: Readonly<Record<string, string>>,
): SparseFileContents {
  const layout = sparseFileLayout(Object.keys(tensors), metadata);
  const matrices: Record<string, SparseMatrix> = Object.create(null); // a name may be __proto__
  for (const [name, stored] of Object.entries(layout.formats))
    matrices[name] = matrixFromTensors(stored, (key) => tensors[key]);
  const rest: Record<string, Tensor> = Object.create(null); // a tensor may be named __proto__
  for (const key of layout.tensorNames) rest[key] = tensors[key]!;
  return { matrices, tensors: rest, metadata: layout.metadata };
}

/** Serialize matrices to safetensors bytes (browser-safe). */
export function encodeSparseSafetensors(
  matrices: Readonly<Record<string, SparseMatrix>>,
  tensors: Readonly<Record<string, Tensor>> = {},
  metadata: Readonly<Record<string, string>> = {},
): Uint8Array {
  const laid = sparseToTensorMap(matrices, tensors, metadata);
  return encodeSafetensors(laid.tensors, laid.metadata);
}

/** Parse safetensors bytes into matrices (validated) and plain tensors. */
export function decodeSparseSafetensors(bytes: Uint8Array): SparseFileContents {
  const { tensors, metadata } = decodeSafetensors(bytes);
  return sparseFromTensorMap(tensors, metadata);
}
