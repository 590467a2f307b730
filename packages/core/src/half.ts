/**
 * IEEE 754 binary16 (f16) and bfloat16 (bf16) conversions, bit-exact, with round-to-nearest-even,
 * NaN and Inf preserved and subnormals handled. Half values are stored as their 16-bit patterns
 * (`Uint16Array`), the way safetensors and GPUs store them.
 */

const scratchF32 = new Float32Array(1);
const scratchU32 = new Uint32Array(scratchF32.buffer);

/** Bits of the f16 nearest to `value` (ties to even). Values beyond the f16 range become ±Inf. */
export function f32ToF16Bits(value: number): number {
  scratchF32[0] = value;
  const x = scratchU32[0]!;
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  const mant = x & 0x7fffff;
  if (exp === 0xff) {
    // Inf stays Inf; NaN stays a (quiet) NaN, keeping the top payload bits.
    return mant === 0 ? sign | 0x7c00 : sign | 0x7e00 | (mant >>> 13);
  }
  const halfExp = exp - 112; // re-biased exponent: exp - 127 + 15
  if (halfExp >= 0x1f) return sign | 0x7c00;
  if (halfExp <= 0) {
    // Result is an f16 subnormal (or zero): significand * 2^(exp-150) expressed in units of 2^-24.
    const shift = 126 - exp;
    if (shift > 24) return sign;
    const significand = mant | 0x800000;
    let bits = significand >>> shift;
    const rest = significand & ((1 << shift) - 1);
    const halfway = 1 << (shift - 1);
    if (rest > halfway || (rest === halfway && (bits & 1) === 1)) bits += 1;
    return sign | bits;
  }
  let bits = (halfExp << 10) | (mant >>> 13);
  const rest = mant & 0x1fff;
  if (rest > 0x1000 || (rest === 0x1000 && (bits & 1) === 1)) bits += 1; // may carry into Inf: correct
  return sign | bits;
}

/** The f32 value of f16 bits (exact: every f16 is representable in f32). */
export function f16BitsToF32(bits: number): number {
  const sign = (bits & 0x8000) << 16;
  const exp = (bits >>> 10) & 0x1f;
  const mant = bits & 0x3ff;
  if (exp === 0) {
    const magnitude = mant * 2 ** -24;
    return sign === 0 ? magnitude : -magnitude;
  }
  if (exp === 0x1f) {
    scratchU32[0] = (sign | 0x7f800000 | (mant << 13)) >>> 0;
    return scratchF32[0]!;
  }
  scratchU32[0] = (sign | ((exp + 112) << 23) | (mant << 13)) >>> 0;
  return scratchF32[0]!;
}

/** Bits of the bf16 nearest to `value` (ties to even); NaN stays a quiet NaN. */
export function f32ToBf16Bits(value: number): number {
  scratchF32[0] = value;
  const x = scratchU32[0]!;
  if ((x & 0x7f800000) === 0x7f800000 && (x & 0x7fffff) !== 0) return ((x >>> 16) | 0x40) & 0xffff;
  return ((x + 0x7fff + ((x >>> 16) & 1)) >>> 16) & 0xffff;
}

/** The f32 value of bf16 bits (exact). */
export function bf16BitsToF32(bits: number): number {
  scratchU32[0] = (bits & 0xffff) << 16;
  return scratchF32[0]!;
}

let f16Table: Float32Array | undefined;

/** A 65536-entry table from f16 bits to f32, built on first use; the fast path for bulk decoding. */
export function f16Table32(): Float32Array {
  if (f16Table === undefined) {
    const table = new Float32Array(65536);
    for (let i = 0; i < 65536; i++) table[i] = f16BitsToF32(i);
    f16Table = table;
  }
  return f16Table;
}

export function f32ArrayToF16(
  src: ArrayLike<number>,
  dst: Uint16Array = new Uint16Array(src.length),
): Uint16Array {
  for (let i = 0; i < src.length; i++) dst[i] = f32ToF16Bits(src[i]!);
  return dst;
}

export function f16ArrayToF32(
  src: Uint16Array,
  dst: Float32Array = new Float32Array(src.length),
): Float32Array {
  const table = f16Table32();
  for (let i = 0; i < src.length; i++) dst[i] = table[src[i]!]!;
  return dst;
}

export function f32ArrayToBf16(
  src: ArrayLike<number>,
  dst: Uint16Array = new Uint16Array(src.length),
): Uint16Array {
  for (let i = 0; i < src.length; i++) dst[i] = f32ToBf16Bits(src[i]!);
  return dst;
}

export function bf16ArrayToF32(
  src: Uint16Array,
  dst: Float32Array = new Float32Array(src.length),
): Float32Array {
  const out = new Uint32Array(dst.buffer, dst.byteOffset, dst.length);
  for (let i = 0; i < src.length; i++) out[i] = src[i]! << 16;
  return dst;
}
