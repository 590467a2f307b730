import { InvalidArgumentError, ShapeMismatchError } from './errors.js';

export type Shape = readonly number[];

/** Number of elements of a shape; throws on negative or non-integer dimensions. */
export function shapeSize(shape: Shape): number {
  let size = 1;
  for (let i = 0; i < shape.length; i++) {
    const dim = shape[i]!;
    if (!Number.isSafeInteger(dim) || dim < 0) {
      throw new InvalidArgumentError(`shape[${i}]`, dim, 'dimensions must be non-negative integers');
    }
    size *= dim;
  }
  return size;
}

/** Row-major strides (in elements). */
export function stridesOf(shape: Shape): number[] {
  const strides = new Array<number>(shape.length);
  let stride = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    strides[i] = stride;
    stride *= shape[i]!;
  }
  return strides;
}

export function shapesEqual(a: Shape, b: Shape): boolean {
  return a.length === b.length && a.every((dim, i) => dim === b[i]);
}

/** Throw a ShapeMismatchError unless `actual` equals `expected` (-1 in `expected` matches any size). */
export function assertShape(actual: Shape, expected: Shape, what = 'tensor'): void {
  if (actual.length !== expected.length || expected.some((dim, i) => dim !== -1 && dim !== actual[i])) {
    throw new ShapeMismatchError(expected, actual, what);
  }
}

/** Resolve one -1 in a reshape target against `size`. */
export function resolveShape(shape: Shape, size: number): number[] {
  const unknown = shape.indexOf(-1);
  if (unknown === -1) {
    if (shapeSize(shape) !== size) throw new ShapeMismatchError(shape, [size], 'reshape (element count)');
    return [...shape];
  }
  if (shape.indexOf(-1, unknown + 1) !== -1) {
    throw new InvalidArgumentError('shape', shape, 'at most one dimension may be -1');
  }
  const known = shapeSize(shape.filter((_, i) => i !== unknown));
  if (known === 0 || size % known !== 0)
    throw new ShapeMismatchError(shape, [size], 'reshape (element count)');
  const out = [...shape];
  out[unknown] = size / known;
  return out;
}
