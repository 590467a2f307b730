import { storageView } from '../dtype.js';
import { SafetensorsError } from '../errors.js';
import { Tensor } from '../tensor.js';
import { parseHeader, parseHeaderLength, type SafetensorsHeader, type TensorEntry } from './header.js';
import { assertLittleEndian, planLayout, type TensorMap, tensorBytes } from './layout.js';

export interface SafetensorsContents {
  readonly tensors: Record<string, Tensor>;
  readonly metadata: Record<string, string>;
}

/** Serialize tensors (and string metadata) to the bytes of a safetensors file. */
export function encodeSafetensors(
  tensors: TensorMap,
  metadata: Readonly<Record<string, string>> = {},
): Uint8Array {
  const layout = planLayout(tensors, metadata);
  const out = new Uint8Array(layout.totalBytes);
  out.set(layout.head, 0);
  for (const item of layout.tensors) out.set(tensorBytes(item.tensor), layout.head.length + item.begin);
  return out;
}

/** Parse and validate the header of an in-memory safetensors file. */
export function decodeSafetensorsHeader(bytes: Uint8Array): SafetensorsHeader {
  const n = parseHeaderLength(bytes, bytes.length);
  return parseHeader(bytes.subarray(8, 8 + n), bytes.length - 8 - n);
}

/**
 * One tensor from a file's bytes: a copy (aligned, whatever the file's alignment), or with
 * `{ copy: false }` a view of `bytes`, which must then start its own buffer (a fresh read).
 */
export function tensorFromBytes(
  entry: TensorEntry,
  bytes: Uint8Array,
  options: { copy?: boolean } = {},
): Tensor {
  assertLittleEndian();
  if (bytes.length !== entry.end - entry.begin) {
    throw new SafetensorsError(`expected ${entry.end - entry.begin} bytes, got ${bytes.length}`, {
      tensor: entry.name,
    });
  }
  let data = bytes;
  if (options.copy !== false || bytes.byteOffset !== 0) {
    data = new Uint8Array(bytes.length);
    data.set(bytes);
  }
  const size = entry.shape.reduce((a, b) => a * b, 1);
  return new Tensor(entry.dtype, entry.shape, storageView(entry.dtype, data.buffer, 0, size));
}

/** Parse a whole safetensors file held in memory (works in browsers). */
export function decodeSafetensors(bytes: Uint8Array): SafetensorsContents {
  const header = decodeSafetensorsHeader(bytes);
  const tensors: Record<string, Tensor> = Object.create(null); // a tensor may be named __proto__
  for (const entry of header.entries) {
    tensors[entry.name] = tensorFromBytes(
      entry,
      bytes.subarray(header.dataOffset + entry.begin, header.dataOffset + entry.end),
    );
  }
  return { tensors, metadata: { ...header.metadata } };
}
