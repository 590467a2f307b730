import { bytesPerElement } from '../dtype.js';
import { InvalidArgumentError, SafetensorsError } from '../errors.js';
import type { Tensor } from '../tensor.js';
import { safetensorsDType } from './header.js';

export type TensorMap = Readonly<Record<string, Tensor>> | ReadonlyMap<string, Tensor>;

export interface PlannedTensor {
  readonly name: string;
  readonly tensor: Tensor;
  readonly begin: number;
  readonly end: number;
}

export interface SafetensorsLayout {
  /** The 8-byte length prefix followed by the space-padded JSON header. */
  readonly head: Uint8Array;
  /** Tensors in data order with their offsets in the data buffer. */
  readonly tensors: readonly PlannedTensor[];
  /** Total file size in bytes. */
  readonly totalBytes: number;
}

/**
 * Lay out a file as the reference writer does: tensors ordered by element size (largest first), then by
 * name, packed back to back; `__metadata__` first in the header; the header padded with spaces to a
 * multiple of 8 so that every tensor is aligned to its element size in the file.
 */
export function planLayout(
  tensors: TensorMap,
  metadata: Readonly<Record<string, string>> = {},
): SafetensorsLayout {
  const items =
    tensors instanceof Map ? [...tensors.entries()] : Object.entries(tensors as Record<string, Tensor>);
  for (const [name] of items) {
    if (name === '__metadata__')
      throw new InvalidArgumentError('tensor name', name, 'is reserved by the format');
  }
  for (const [key, value] of Object.entries(metadata)) {
    if (typeof value !== 'string')
      throw new InvalidArgumentError(`metadata.${key}`, value, 'must be a string');
  }
  items.sort(
    ([an, a], [bn, b]) =>
      bytesPerElement(b.dtype) - bytesPerElement(a.dtype) || (an < bn ? -1 : an > bn ? 1 : 0),
  );
  const header: Record<string, unknown> = Object.create(null); // a tensor may be named __proto__
  if (Object.keys(metadata).length > 0) header.__metadata__ = metadata;
  const planned: PlannedTensor[] = [];
  let offset = 0;
  for (const [name, tensor] of items) {
    const bytes = tensor.size * bytesPerElement(tensor.dtype);
    planned.push({ name, tensor, begin: offset, end: offset + bytes });
    header[name] = {
      dtype: safetensorsDType(tensor.dtype),
      shape: tensor.shape,
      data_offsets: [offset, offset + bytes],
    };
    offset += bytes;
  }
  const json = new TextEncoder().encode(JSON.stringify(header));
  const padded = Math.ceil(json.length / 8) * 8;
  const head = new Uint8Array(8 + padded).fill(0x20, 8 + json.length);
  new DataView(head.buffer).setBigUint64(0, BigInt(padded), true);
  head.set(json, 8);
  return { head, tensors: planned, totalBytes: head.length + offset };
}

/** The raw little-endian bytes of a tensor's storage (a view, no copy). */
export function tensorBytes(tensor: Tensor): Uint8Array {
  assertLittleEndian();
  const data = tensor.data;
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

let littleEndian: boolean | undefined;

export function assertLittleEndian(): void {
  littleEndian ??= new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
  if (!littleEndian) throw new SafetensorsError('big-endian hosts are not supported');
}
