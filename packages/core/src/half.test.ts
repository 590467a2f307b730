import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  bf16ArrayToF32,
  bf16BitsToF32,
  f16ArrayToF32,
  f16BitsToF32,
  f32ArrayToBf16,
  f32ArrayToF16,
  f32ToBf16Bits,
  f32ToF16Bits,
} from './half.js';

describe('f16', () => {
  it('encodes known values exactly', () => {
    const cases: Array<[number, number]> = [
      [0, 0x0000],
      [-0, 0x8000],
      [1, 0x3c00],
      [-2, 0xc000],
      [0.5, 0x3800],
      [65504, 0x7bff], // largest finite
      [2 ** -14, 0x0400], // smallest normal
      [2 ** -24, 0x0001], // smallest subnormal
      [2 ** -24 * 1023, 0x03ff], // largest subnormal
      [Number.POSITIVE_INFINITY, 0x7c00],
      [Number.NEGATIVE_INFINITY, 0xfc00],
      [0.1, 0x2e66],
      [1 / 3, 0x3555],
    ];
    for (const [value, bits] of cases) {
      expect(f32ToF16Bits(value), `encode ${value}`).toBe(bits);
      expect(Object.is(f16BitsToF32(bits), value) || Math.fround(value) !== value, `decode ${bits}`).toBe(
        true,
      );
    }
  });

  it('rounds to nearest even, including at the subnormal and overflow boundaries', () => {
    // 1 + 2^-11 is halfway between 1 and 1 + 2^-10: ties to even -> 1.
    expect(f32ToF16Bits(1 + 2 ** -11)).toBe(0x3c00);
    // 1 + 3*2^-11 is halfway between 1+2^-10 (odd) and 1+2^-9 (even) -> up.
    expect(f32ToF16Bits(1 + 3 * 2 ** -11)).toBe(0x3c02);
    expect(f32ToF16Bits(1 + 2 ** -11 + 2 ** -20)).toBe(0x3c01);
    // Half the smallest subnormal ties to even -> zero; just above rounds up.
    expect(f32ToF16Bits(2 ** -25)).toBe(0x0000);
    expect(f32ToF16Bits(2 ** -25 * 1.5)).toBe(0x0001);
    expect(f32ToF16Bits(-(2 ** -26))).toBe(0x8000);
    // 1.5 * 2^-24 ties between 1 and 2 subnormal units -> 2 (even).
    expect(f32ToF16Bits(1.5 * 2 ** -24)).toBe(0x0002);
    // Largest subnormal rounding up into the smallest normal.
    expect(f32ToF16Bits(2 ** -14 - 2 ** -26)).toBe(0x0400);
    // 65520 is halfway between 65504 and 65536 (Inf): ties to even -> Inf; just below stays finite.
    expect(f32ToF16Bits(65520)).toBe(0x7c00);
    expect(f32ToF16Bits(65519)).toBe(0x7bff);
    expect(f32ToF16Bits(1e10)).toBe(0x7c00);
    expect(f32ToF16Bits(1e-10)).toBe(0x0000);
  });

  it('keeps NaN a NaN', () => {
    const bits = f32ToF16Bits(Number.NaN);
    expect(bits & 0x7c00).toBe(0x7c00);
    expect(bits & 0x3ff).not.toBe(0);
    expect(f16BitsToF32(0x7e00)).toBeNaN();
    expect(f16BitsToF32(0xfc01)).toBeNaN();
  });

  it('round-trips every one of the 65536 bit patterns', () => {
    const all = new Uint16Array(65536);
    for (let i = 0; i < all.length; i++) all[i] = i;
    const back = f32ArrayToF16(f16ArrayToF32(all));
    const wrong: number[] = [];
    for (let i = 0; i < all.length; i++) {
      const nan = (i & 0x7c00) === 0x7c00 && (i & 0x3ff) !== 0;
      const ok = nan ? Number.isNaN(f16BitsToF32(back[i]!)) : back[i] === i;
      if (!ok) wrong.push(i);
    }
    expect(wrong).toEqual([]);
  });

  it('picks the nearest f16 for random f32 values', () => {
    fc.assert(
      fc.property(fc.float({ noNaN: true, min: -70000, max: 70000 }), (x) => {
        const bits = f32ToF16Bits(x);
        const y = f16BitsToF32(bits);
        if (!Number.isFinite(y)) return Math.abs(x) >= 65520;
        // Neighbours one unit below and above cannot be closer.
        const err = Math.abs(y - x);
        for (const neighbour of [bits - 1, bits + 1]) {
          if ((neighbour & 0x7fff) >= 0x7c00 || neighbour < 0 || ((neighbour ^ bits) & 0x8000) !== 0)
            continue;
          expect(Math.abs(f16BitsToF32(neighbour) - x)).toBeGreaterThanOrEqual(err);
        }
        return true;
      }),
      { seed: 42, numRuns: 2000 },
    );
  });
});

describe('bf16', () => {
  it('encodes and decodes known values', () => {
    expect(f32ToBf16Bits(1)).toBe(0x3f80);
    expect(f32ToBf16Bits(-2)).toBe(0xc000);
    expect(f32ToBf16Bits(Number.POSITIVE_INFINITY)).toBe(0x7f80);
    expect(bf16BitsToF32(0x3f80)).toBe(1);
    expect(bf16BitsToF32(0x0001)).toBe(2 ** -133); // subnormal
    expect(f32ToBf16Bits(2 ** -133)).toBe(0x0001);
    expect(bf16BitsToF32(f32ToBf16Bits(Number.NaN))).toBeNaN();
  });

  it('rounds to nearest even', () => {
    // 1 + 2^-8 is halfway between 1 and 1 + 2^-7 -> 1 (even).
    expect(f32ToBf16Bits(1 + 2 ** -8)).toBe(0x3f80);
    expect(f32ToBf16Bits(1 + 3 * 2 ** -8)).toBe(0x3f82);
    expect(f32ToBf16Bits(1 + 2 ** -8 + 2 ** -20)).toBe(0x3f81);
    // The largest finite f32 rounds to Inf in bf16.
    expect(f32ToBf16Bits(3.4028234663852886e38)).toBe(0x7f80);
  });

  it('round-trips arrays', () => {
    const values = new Float32Array([0, -0, 1, -1.5, 3.140625, 1e30, -1e-30]);
    expect(bf16ArrayToF32(f32ArrayToBf16(values))).toAllClose(values, { rtol: 2 ** -8, atol: 0 });
  });
});
