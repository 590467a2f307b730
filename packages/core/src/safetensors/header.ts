import { bytesPerElement, type DType } from '../dtype.js';
import { SafetensorsError } from '../errors.js';
import { hasLoneSurrogate, strictJsonIssue } from '../json-strict.js';

/** The largest header the reference implementation accepts (bytes). */
export const MAX_HEADER_SIZE = 100_000_000;

const TO_DTYPE: Record<string, DType> = {
  F64: 'f64',
  F32: 'f32',
  F16: 'f16',
  BF16: 'bf16',
  I64: 'i64',
  I32: 'i32',
  I16: 'i16',
  I8: 'i8',
  U8: 'u8',
  BOOL: 'bool',
};

const FROM_DTYPE: Record<DType, string> = {
  f64: 'F64',
  f32: 'F32',
  f16: 'F16',
  bf16: 'BF16',
  i64: 'I64',
  i32: 'I32',
  i16: 'I16',
  i8: 'I8',
  u8: 'U8',
  bool: 'BOOL',
};

export function safetensorsDType(dtype: DType): string {
  return FROM_DTYPE[dtype];
}

/** Where one tensor lives: byte offsets relative to the start of the data buffer. */
export interface TensorEntry {
  readonly name: string;
  readonly dtype: DType;
  readonly shape: readonly number[];
  readonly begin: number;
  readonly end: number;
}

export interface SafetensorsHeader {
  /** Entries in file order (by offset). */
  readonly entries: readonly TensorEntry[];
  readonly metadata: Readonly<Record<string, string>>;
  /** Byte offset of the data buffer from the start of the file: 8 + header length. */
  readonly dataOffset: number;
}

/**
 * Read the header length from the first 8 bytes and check it against the size of the whole file.
 * Returns the header length in bytes.
 */
export function parseHeaderLength(prefix: Uint8Array, totalBytes: number, file?: string): number {
  if (totalBytes < 8 || prefix.length < 8) {
    throw new SafetensorsError(`file is ${totalBytes} bytes, shorter than the 8-byte header length`, {
      file,
    });
  }
  const length = new DataView(prefix.buffer, prefix.byteOffset, 8).getBigUint64(0, true);
  if (length > BigInt(MAX_HEADER_SIZE)) {
    throw new SafetensorsError(`header length ${length} exceeds the limit of ${MAX_HEADER_SIZE} bytes`, {
      file,
    });
  }
  const n = Number(length);
  if (8 + n > totalBytes) {
    throw new SafetensorsError(`header length ${n} runs past the end of the ${totalBytes}-byte file`, {
      file,
    });
  }
  return n;
}

/**
 * Parse and validate a header: JSON object, known dtypes, non-negative integer shapes, offsets whose
 * byte length matches shape x dtype, and tensors that tile the data buffer exactly (no overlap, no
 * hole, nothing out of bounds), as the format requires.
 */
export function parseHeader(headerBytes: Uint8Array, dataLength: number, file?: string): SafetensorsHeader {
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(headerBytes); // a BOM stays, and is refused
  } catch {
    throw new SafetensorsError('header is not valid UTF-8', { file });
  }
  if (!text.startsWith('{')) throw new SafetensorsError("header does not start with '{'", { file });
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (cause) {
    throw new SafetensorsError(`header is not valid JSON (${(cause as Error).message})`, { file });
  }
  if (json === null || typeof json !== 'object' || Array.isArray(json)) {
    throw new SafetensorsError('header is not a JSON object', { file });
  }
  // As the reference implementation: no duplicate keys (e.g. two __metadata__), integers only.
  const issue = strictJsonIssue(text, { integers: true });
  if (issue !== undefined) throw new SafetensorsError(`header: ${issue}`, { file });
  const metadata: Record<string, string> = Object.create(null);
  const entries: TensorEntry[] = [];
  for (const [name, value] of Object.entries(json as Record<string, unknown>)) {
    if (hasLoneSurrogate(name))
      throw new SafetensorsError(`tensor name ${JSON.stringify(name)} is not valid Unicode`, { file });
    if (name === '__metadata__') {
      if (value === null || typeof value !== 'object' || Array.isArray(value)) {
        throw new SafetensorsError('__metadata__ must be an object of strings', { file });
      }
      for (const [key, item] of Object.entries(value as Record<string, unknown>)) {
        if (typeof item !== 'string') {
          throw new SafetensorsError(`__metadata__.${key} must be a string, got ${typeof item}`, { file });
        }
        metadata[key] = item;
      }
      continue;
    }
    entries.push(parseEntry(name, value, file));
  }
  entries.sort((a, b) => a.begin - b.begin || a.end - b.end);
  let cursor = 0;
  for (const entry of entries) {
    if (entry.begin < cursor) {
      throw new SafetensorsError(`data offsets [${entry.begin}, ${entry.end}] overlap another tensor`, {
        file,
        tensor: entry.name,
      });
    }
    if (entry.begin > cursor) {
      throw new SafetensorsError(`bytes [${cursor}, ${entry.begin}) of the data buffer belong to no tensor`, {
        file,
        tensor: entry.name,
      });
    }
    if (entry.end > dataLength) {
      throw new SafetensorsError(
        `data offsets [${entry.begin}, ${entry.end}] run past the ${dataLength}-byte data buffer`,
        { file, tensor: entry.name },
      );
    }
    cursor = entry.end;
  }
  if (cursor !== dataLength) {
    throw new SafetensorsError(
      `the data buffer has ${dataLength - cursor} trailing bytes that belong to no tensor`,
      {
        file,
      },
    );
  }
  return { entries, metadata, dataOffset: 8 + headerBytes.length };
}

function parseEntry(name: string, value: unknown, file: string | undefined): TensorEntry {
  const where = { file, tensor: name };
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new SafetensorsError('entry must be an object with dtype, shape and data_offsets', where);
  }
  const { dtype, shape, data_offsets: offsets } = value as Record<string, unknown>;
  if (typeof dtype !== 'string') throw new SafetensorsError('dtype must be a string', where);
  const mapped = TO_DTYPE[dtype];
  if (mapped === undefined) {
    throw new SafetensorsError(
      `unknown or unsupported dtype '${dtype}' (supported: ${Object.keys(TO_DTYPE).join(', ')})`,
      where,
    );
  }
  if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
    throw new SafetensorsError('shape must be an array of non-negative integers', where);
  }
  if (
    !Array.isArray(offsets) ||
    offsets.length !== 2 ||
    !offsets.every((o) => Number.isSafeInteger(o) && o >= 0) ||
    offsets[0] > offsets[1]
  ) {
    throw new SafetensorsError('data_offsets must be [begin, end] with 0 <= begin <= end', where);
  }
  const [begin, end] = offsets as [number, number];
  let elements = 1;
  for (const d of shape as number[]) elements *= d;
  const expected = elements * bytesPerElement(mapped);
  if (end - begin !== expected) {
    throw new SafetensorsError(
      `shape [${shape.join(', ')}] of ${dtype} needs ${expected} bytes but data_offsets span ${end - begin}`,
      where,
    );
  }
  return { name, dtype: mapped, shape: shape as number[], begin, end };
}
