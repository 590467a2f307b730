import { f16Table32, f32ToF16Bits, InvalidArgumentError } from '@sparsekit/core';
import type { Indices, ValueDType, Values } from './types.js';

/** Values as f32: the array itself for f32 storage, a decoded copy for f16. */
export function valuesF32(values: Values, dtype: ValueDType): Float32Array {
  if (dtype === 'f32') return values as Float32Array;
  const table = f16Table32();
  const out = new Float32Array(values.length);
  for (let i = 0; i < values.length; i++) out[i] = table[values[i]!]!;
  return out;
}

/** Store f32 values in `dtype` (a copy for f16, the array itself for f32). */
export function encodeValues(values: Float32Array, dtype: ValueDType): Values {
  if (dtype === 'f32') return values;
  const out = new Uint16Array(values.length);
  for (let i = 0; i < values.length; i++) {
    const bits = f32ToF16Bits(values[i]!);
    // A finite value that becomes +-Inf is beyond f16's range: refuse rather than store Inf.
    if ((bits & 0x7fff) === 0x7c00 && Number.isFinite(values[i]!)) {
      throw new InvalidArgumentError(
        'f16 value',
        values[i],
        `at index ${i} exceeds the f16 range (+-65504): keep this matrix in f32`,
      );
    }
    out[i] = bits;
  }
  return out;
}

export function allocateValues(length: number, dtype: ValueDType): Values {
  return dtype === 'f32' ? new Float32Array(length) : new Uint16Array(length);
}

export function assertValueDType(dtype: unknown): asserts dtype is ValueDType {
  if (dtype !== 'f32' && dtype !== 'f16')
    throw new InvalidArgumentError('dtype', dtype, "must be 'f32' or 'f16'");
}

export type IndexType = 'i32' | 'u16' | 'auto';

/** Allocate indices into a dimension of size `extent`: u16 when asked for or ('auto') when it fits. */
export function allocateIndices(length: number, extent: number, type: IndexType = 'i32'): Indices {
  if (type === 'u16' && extent > 65536) {
    throw new InvalidArgumentError(
      'indexType',
      type,
      `u16 indices need a dimension of at most 65536, got ${extent}`,
    );
  }
  return type === 'u16' || (type === 'auto' && extent <= 65536)
    ? new Uint16Array(length)
    : new Int32Array(length);
}

/** Same index type as `like`, new length. */
export function indicesLike(like: Indices, length: number): Indices {
  return like instanceof Uint16Array ? new Uint16Array(length) : new Int32Array(length);
}
