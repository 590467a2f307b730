import { InvalidArgumentError, SparsekitError } from '@sparsekit/core';

const PAGE = 65536;
const ALIGN = 16;

/**
 * A first-fit allocator over a (shared) WebAssembly.Memory, managed from JavaScript: the kernels
 * never allocate. Free blocks are kept sorted by address and coalesced; the memory grows by whole
 * pages when no free block fits, up to the module's maximum (4 GiB).
 */
export class WasmAllocator {
  private readonly free: Array<{ start: number; size: number }> = [];
  private readonly sizes = new Map<number, number>();
  private top: number;
  allocatedBytes = 0;

  constructor(
    readonly memory: WebAssembly.Memory,
    base = 1024,
  ) {
    this.top = align(base);
  }

  /** Allocate `bytes` (16-byte aligned); returns the byte offset. */
  alloc(bytes: number): number {
    if (!Number.isSafeInteger(bytes) || bytes < 0)
      throw new InvalidArgumentError('bytes', bytes, 'must be a non-negative integer');
    const size = align(Math.max(bytes, ALIGN));
    for (let i = 0; i < this.free.length; i++) {
      const block = this.free[i]!;
      if (block.size < size) continue;
      const start = block.start;
      if (block.size === size) this.free.splice(i, 1);
      else {
        block.start += size;
        block.size -= size;
      }
      this.sizes.set(start, size);
      this.allocatedBytes += size;
      return start;
    }
    const start = this.top;
    this.ensure(start + size);
    this.top = start + size;
    this.sizes.set(start, size);
    this.allocatedBytes += size;
    return start;
  }

  /** Release a block returned by alloc. */
  release(ptr: number): void {
    const size = this.sizes.get(ptr);
    if (size === undefined)
      throw new InvalidArgumentError('ptr', ptr, 'was not allocated or is already free');
    this.sizes.delete(ptr);
    this.allocatedBytes -= size;
    let i = 0;
    while (i < this.free.length && this.free[i]!.start < ptr) i++;
    this.free.splice(i, 0, { start: ptr, size });
    // Coalesce with the next and the previous block.
    const next = this.free[i + 1];
    if (next !== undefined && ptr + size === next.start) {
      this.free[i]!.size += next.size;
      this.free.splice(i + 1, 1);
    }
    const prev = this.free[i - 1];
    if (prev !== undefined && prev.start + prev.size === ptr) {
      prev.size += this.free[i]!.size;
      this.free.splice(i, 1);
    }
    // Give the tail back to the bump pointer.
    const last = this.free[this.free.length - 1];
    if (last !== undefined && last.start + last.size === this.top) {
      this.top = last.start;
      this.free.pop();
    }
  }

  private ensure(end: number): void {
    const have = this.memory.buffer.byteLength;
    if (end <= have) return;
    const pages = Math.ceil((end - have) / PAGE);
    try {
      this.memory.grow(pages);
    } catch (cause) {
      throw new SparsekitError(
        'sparse-formats/wasm-memory',
        `wasm memory cannot grow to ${(end / 2 ** 20).toFixed(0)} MiB (the limit is 4096 MiB); release prepared matrices or use smaller ones`,
        { cause },
      );
    }
  }
}

function align(n: number): number {
  return Math.ceil(n / ALIGN) * ALIGN;
}
