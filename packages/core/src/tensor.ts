import { allocate, type DType, isFloatDType, type Storage } from './dtype.js';
import { InvalidArgumentError, ShapeMismatchError } from './errors.js';
import { bf16BitsToF32, f16BitsToF32, f16Table32, f32ToBf16Bits, f32ToF16Bits } from './half.js';
import { resolveShape, type Shape, shapeSize, stridesOf } from './shape.js';

const INT_RANGES: Partial<Record<DType, readonly [number, number]>> = {
  i32: [-2147483648, 2147483647],
  i16: [-32768, 32767],
  i8: [-128, 127],
  u8: [0, 255],
  bool: [0, 1],
};

/**
 * A dense, row-major n-d array over a typed array. Tensors are cheap views: `reshape` shares storage.
 * Element access through `get`/`set` converts half floats to and from f32 numbers.
 */
export class Tensor<D extends DType = DType> {
  readonly dtype: D;
  readonly shape: readonly number[];
  readonly data: Storage<D>;
  readonly size: number;

  constructor(dtype: D, shape: Shape, data: Storage<D>) {
    const size = shapeSize(shape);
    if (data.length !== size) {
      throw new ShapeMismatchError(
        [size],
        [data.length],
        `data of a ${dtype} tensor of shape [${shape.join(', ')}]`,
      );
    }
    this.dtype = dtype;
    this.shape = Object.freeze([...shape]);
    this.data = data;
    this.size = size;
  }

  static zeros<D extends DType = 'f32'>(shape: Shape, dtype: D = 'f32' as D): Tensor<D> {
    return new Tensor(dtype, shape, allocate(dtype, shapeSize(shape)));
  }

  /** An f32 tensor; copies plain arrays, wraps a Float32Array without copying. */
  static f32(data: Float32Array | readonly number[], shape: Shape = [data.length]): Tensor<'f32'> {
    return new Tensor('f32', shape, data instanceof Float32Array ? data : Float32Array.from(data));
  }

  /** Build a tensor of any dtype from numbers (half floats are rounded to nearest even). */
  static fromNumbers<D extends DType>(
    dtype: D,
    values: ArrayLike<number>,
    shape: Shape = [values.length],
  ): Tensor<D> {
    const t = Tensor.zeros(shape, dtype);
    if (values.length !== t.size) throw new ShapeMismatchError([t.size], [values.length], 'values');
    for (let i = 0; i < values.length; i++) t.setFlat(i, values[i]!);
    return t;
  }

  get rank(): number {
    return this.shape.length;
  }

  get strides(): number[] {
    return stridesOf(this.shape);
  }

  /** Flat offset of a multi-index; throws on a wrong rank or an out-of-range index. */
  offset(index: readonly number[]): number {
    if (index.length !== this.shape.length)
      throw new ShapeMismatchError([this.shape.length], [index.length], 'index rank');
    let offset = 0;
    for (let axis = 0; axis < index.length; axis++) {
      const i = index[axis]!;
      const dim = this.shape[axis]!;
      if (!Number.isInteger(i) || i < 0 || i >= dim) {
        throw new InvalidArgumentError(`index[${axis}]`, i, `must be an integer in [0, ${dim})`);
      }
      offset = offset * dim + i;
    }
    return offset;
  }

  get(...index: number[]): number {
    return this.getFlat(this.offset(index));
  }

  set(value: number, ...index: number[]): void {
    this.setFlat(this.offset(index), value);
  }

  getFlat(i: number): number {
    const raw = this.data[i];
    if (raw === undefined) throw new InvalidArgumentError('flat index', i, `must be in [0, ${this.size})`);
    if (this.dtype === 'f16') return f16BitsToF32(raw as number);
    if (this.dtype === 'bf16') return bf16BitsToF32(raw as number);
    return Number(raw);
  }

  setFlat(i: number, value: number): void {
    if (!Number.isInteger(i) || i < 0 || i >= this.size) {
      throw new InvalidArgumentError('flat index', i, `must be in [0, ${this.size})`);
    }
    const data = this.data as Storage;
    switch (this.dtype) {
      case 'f16':
        (data as Uint16Array)[i] = f32ToF16Bits(value);
        return;
      case 'bf16':
        (data as Uint16Array)[i] = f32ToBf16Bits(value);
        return;
      case 'i64':
        (data as BigInt64Array)[i] = BigInt(Math.trunc(value));
        return;
      case 'f32':
      case 'f64':
        (data as Float32Array)[i] = value;
        return;
      default:
        (data as Int32Array)[i] = saturate(this.dtype, value);
    }
  }

  /** Same storage, new shape (one dimension may be -1). */
  reshape(shape: Shape): Tensor<D> {
    return new Tensor(this.dtype, resolveShape(shape, this.size), this.data);
  }

  /**
   * Convert to another dtype (always a copy). Floats round to nearest even; conversion to an integer
   * dtype rounds toward zero and saturates to the type's range, NaN becoming 0.
   */
  astype<E extends DType>(dtype: E): Tensor<E> {
    if (dtype === 'f32') return Tensor.f32(this.toFloat32Array(true), this.shape) as unknown as Tensor<E>;
    const out = Tensor.zeros(this.shape, dtype);
    if ((this.dtype as DType) === dtype) {
      (out.data as Storage).set(this.data as never);
      return out;
    }
    if (this.dtype === 'i64') {
      for (let i = 0; i < this.size; i++) out.setFlat(i, Number((this.data as BigInt64Array)[i]!));
      return out;
    }
    const values = this.toFloat32OrNumbers();
    for (let i = 0; i < this.size; i++) out.setFlat(i, values[i]!);
    return out;
  }

  /** Values as a Float32Array: the storage itself for f32 tensors unless `copy`, else a converted copy. */
  toFloat32Array(copy = false): Float32Array {
    if (this.dtype === 'f32') {
      const data = this.data as Float32Array;
      return copy ? data.slice() : data;
    }
    const out = new Float32Array(this.size);
    if (this.dtype === 'f16') {
      const table = f16Table32();
      const bits = this.data as Uint16Array;
      for (let i = 0; i < out.length; i++) out[i] = table[bits[i]!]!;
    } else if (this.dtype === 'bf16') {
      const bits = this.data as Uint16Array;
      const view = new Uint32Array(out.buffer);
      for (let i = 0; i < out.length; i++) view[i] = bits[i]! << 16;
    } else if (this.dtype === 'i64') {
      const data = this.data as BigInt64Array;
      for (let i = 0; i < out.length; i++) out[i] = Number(data[i]!);
    } else {
      out.set(this.data as Float64Array);
    }
    return out;
  }

  /** Plain nested-free array of numbers (for small tensors, tests and printing). */
  toArray(): number[] {
    const out = new Array<number>(this.size);
    for (let i = 0; i < this.size; i++) out[i] = this.getFlat(i);
    return out;
  }

  private toFloat32OrNumbers(): ArrayLike<number> {
    if (this.dtype === 'f64') return this.data as Float64Array;
    if (isFloatDType(this.dtype) || this.dtype === 'i64') return this.toFloat32Array();
    return this.data as ArrayLike<number>;
  }
}

function saturate(dtype: DType, value: number): number {
  const range = INT_RANGES[dtype];
  if (range === undefined || Number.isNaN(value)) return 0;
  const truncated = Math.trunc(value);
  return Math.min(Math.max(truncated, range[0]), range[1]);
}
