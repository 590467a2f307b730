import { InvalidArgumentError } from '@sparsekit/core';

/**
 * Keys and values of every layer for `batch` sequences, up to `capacity` positions:
 * per layer [batch, kvHeads, capacity, headDim]. `length` positions are filled.
 */
export class KvCache {
  readonly keys: Float32Array[];
  readonly values: Float32Array[];
  length = 0;

  constructor(
    readonly layers: number,
    readonly batch: number,
    readonly kvHeads: number,
    readonly capacity: number,
    readonly headDim: number,
  ) {
    const size = batch * kvHeads * capacity * headDim;
    this.keys = Array.from({ length: layers }, () => new Float32Array(size));
    this.values = Array.from({ length: layers }, () => new Float32Array(size));
  }

  /** Offset of (b, head, position) in a layer's arrays. */
  offset(b: number, head: number, position: number): number {
    return ((b * this.kvHeads + head) * this.capacity + position) * this.headDim;
  }

  /** Check that `count` more positions fit. */
  reserve(count: number): void {
    if (this.length + count > this.capacity) {
      throw new InvalidArgumentError(
        'sequence length',
        this.length + count,
        `exceeds the cache capacity (${this.capacity}, the model's maximum); generate fewer tokens or shorten the prompt`,
      );
    }
  }
}
