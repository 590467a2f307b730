import { UnsupportedDTypeError } from './errors.js';

/**
 * Element types. Half-precision floats (`f16`, `bf16`) are stored as 16-bit patterns in a
 * `Uint16Array`; `bool` is one byte per element (0 or 1), as in safetensors.
 */
export type DType = 'f64' | 'f32' | 'f16' | 'bf16' | 'i64' | 'i32' | 'i16' | 'i8' | 'u8' | 'bool';

export const DTYPES: readonly DType[] = [
  'f64',
  'f32',
  'f16',
  'bf16',
  'i64',
  'i32',
  'i16',
  'i8',
  'u8',
  'bool',
];

export interface StorageTypes {
  f64: Float64Array;
  f32: Float32Array;
  f16: Uint16Array;
  bf16: Uint16Array;
  i64: BigInt64Array;
  i32: Int32Array;
  i16: Int16Array;
  i8: Int8Array;
  u8: Uint8Array;
  bool: Uint8Array;
}

export type Storage<D extends DType = DType> = StorageTypes[D];

const BYTES: Record<DType, number> = {
  f64: 8,
  f32: 4,
  f16: 2,
  bf16: 2,
  i64: 8,
  i32: 4,
  i16: 2,
  i8: 1,
  u8: 1,
  bool: 1,
};

export function bytesPerElement(dtype: DType): number {
  return BYTES[dtype];
}

export function isDType(value: unknown): value is DType {
  return typeof value === 'string' && Object.hasOwn(BYTES, value);
}

export function isFloatDType(dtype: DType): dtype is 'f64' | 'f32' | 'f16' | 'bf16' {
  return dtype === 'f64' || dtype === 'f32' || dtype === 'f16' || dtype === 'bf16';
}

/** Allocate zeroed storage of `length` elements. */
export function allocate<D extends DType>(dtype: D, length: number): Storage<D> {
  return storageView(dtype, new ArrayBuffer(length * BYTES[dtype]), 0, length);
}

/** A typed-array view of `length` elements of `dtype` over `buffer` from `byteOffset` (no copy). */
export function storageView<D extends DType>(
  dtype: D,
  buffer: ArrayBufferLike,
  byteOffset: number,
  length: number,
): Storage<D> {
  switch (dtype) {
    case 'f64':
      return new Float64Array(buffer, byteOffset, length) as Storage<D>;
    case 'f32':
      return new Float32Array(buffer, byteOffset, length) as Storage<D>;
    case 'f16':
    case 'bf16':
      return new Uint16Array(buffer, byteOffset, length) as Storage<D>;
    case 'i64':
      return new BigInt64Array(buffer, byteOffset, length) as Storage<D>;
    case 'i32':
      return new Int32Array(buffer, byteOffset, length) as Storage<D>;
    case 'i16':
      return new Int16Array(buffer, byteOffset, length) as Storage<D>;
    case 'i8':
      return new Int8Array(buffer, byteOffset, length) as Storage<D>;
    case 'u8':
    case 'bool':
      return new Uint8Array(buffer, byteOffset, length) as Storage<D>;
    default:
      throw new UnsupportedDTypeError(String(dtype), DTYPES, 'storageView');
  }
}

/** The dtype whose storage class matches a typed array (`Uint16Array` maps to f16; `Uint8Array` to u8). */
export function dtypeOfStorage(data: Storage): DType {
  if (data instanceof Float32Array) return 'f32';
  if (data instanceof Float64Array) return 'f64';
  if (data instanceof Uint16Array) return 'f16';
  if (data instanceof Int32Array) return 'i32';
  if (data instanceof Int16Array) return 'i16';
  if (data instanceof Int8Array) return 'i8';
  if (data instanceof Uint8Array) return 'u8';
  if (data instanceof BigInt64Array) return 'i64';
  throw new UnsupportedDTypeError(Object.prototype.toString.call(data), DTYPES, 'dtypeOfStorage');
}
