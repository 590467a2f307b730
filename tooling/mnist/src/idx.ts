// The IDX format of the MNIST files (LeCun's): a 4-byte magic (0, 0, type, rank), rank big-endian
// u32 dimensions, then the values. Only unsigned bytes (type 0x08), which MNIST uses.
import { InvalidFormatError } from '@sparsekit/core';

export interface IdxArray {
  shape: number[];
  data: Uint8Array;
}

export function readIdx(bytes: Uint8Array, what = 'IDX file'): IdxArray {
  if (bytes.length < 4)
    throw new InvalidFormatError('idx', `${what} is ${bytes.length} bytes, shorter than its magic`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (bytes[0] !== 0 || bytes[1] !== 0)
    throw new InvalidFormatError('idx', `${what} does not start with IDX's two zero bytes`);
  if (bytes[2] !== 0x08)
    throw new InvalidFormatError(
      'idx',
      `${what} holds type 0x${bytes[2]!.toString(16)}; only unsigned bytes (0x08) are read`,
    );
  const rank = bytes[3]!;
  if (rank < 1 || rank > 4) throw new InvalidFormatError('idx', `${what} declares rank ${rank}`);
  const header = 4 + 4 * rank;
  if (bytes.length < header) throw new InvalidFormatError('idx', `${what} ends inside its dimensions`);
  const shape = Array.from({ length: rank }, (_, i) => view.getUint32(4 + 4 * i, false));
  const count = shape.reduce((a, b) => a * b, 1);
  if (bytes.length - header !== count)
    throw new InvalidFormatError(
      'idx',
      `${what} declares [${shape.join(', ')}] = ${count} values but holds ${bytes.length - header}`,
    );
  return { shape, data: bytes.subarray(header) };
}
