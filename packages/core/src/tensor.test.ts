import { describe, expect, it } from 'vitest';
import { InvalidArgumentError, ShapeMismatchError } from './errors.js';
import { Tensor } from './tensor.js';

describe('Tensor', () => {
  it('indexes row-major and reshapes without copying', () => {
    const t = Tensor.f32([0, 1, 2, 3, 4, 5], [2, 3]);
    expect(t.get(1, 2)).toBe(5);
    expect(t.strides).toEqual([3, 1]);
    const r = t.reshape([3, -1]);
    expect(r.shape).toEqual([3, 2]);
    r.set(42, 0, 1);
    expect(t.get(0, 1)).toBe(42);
  });

  it('rejects bad shapes and indices with typed errors', () => {
    expect(() => Tensor.f32([1, 2, 3], [2, 2])).toThrow(ShapeMismatchError);
    expect(() => Tensor.zeros([2, -1])).toThrow(InvalidArgumentError);
    const t = Tensor.zeros([2, 2]);
    expect(() => t.get(2, 0)).toThrow(InvalidArgumentError);
    expect(() => t.get(0)).toThrow(ShapeMismatchError);
    expect(() => t.reshape([3, -1])).toThrow(ShapeMismatchError);
    expect(() => t.reshape([-1, -1])).toThrow(InvalidArgumentError);
  });

  it('stores f16 and bf16 as bits and converts on access', () => {
    const h = Tensor.fromNumbers('f16', [1, 0.1, -65504]);
    expect(Array.from(h.data)).toEqual([0x3c00, 0x2e66, 0xfbff]);
    expect(h.toArray()).toEqual([1, 0.0999755859375, -65504]);
    const b = Tensor.fromNumbers('bf16', [1, -2]);
    expect(Array.from(b.data)).toEqual([0x3f80, 0xc000]);
    expect(Array.from(b.toFloat32Array())).toEqual([1, -2]);
  });

  it('converts between dtypes: floats round, integers truncate and saturate', () => {
    const t = Tensor.f32([1.7, -1.7, 300, -300, Number.NaN]);
    expect(t.astype('i8').toArray()).toEqual([1, -1, 127, -128, 0]);
    expect(t.astype('u8').toArray()).toEqual([1, 0, 255, 0, 0]);
    expect(t.astype('bool').toArray()).toEqual([1, 0, 1, 0, 0]);
    expect(t.astype('f16').astype('f32').toArray().slice(0, 4)).toEqual([
      1.7001953125, -1.7001953125, 300, -300,
    ]);
    expect(Tensor.fromNumbers('i64', [5, -3]).astype('f64').toArray()).toEqual([5, -3]);
    expect(Tensor.fromNumbers('i32', [5, -3]).astype('i64').data).toEqual(new BigInt64Array([5n, -3n]));
  });

  it('supports every dtype including rank 0 and empty tensors', () => {
    for (const dtype of ['f64', 'f32', 'f16', 'bf16', 'i64', 'i32', 'i16', 'i8', 'u8', 'bool'] as const) {
      const t = Tensor.fromNumbers(dtype, [1], []);
      expect(t.size).toBe(1);
      expect(t.get()).toBe(1);
      expect(Tensor.zeros([0, 4], dtype).size).toBe(0);
    }
  });
});
