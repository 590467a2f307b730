import { InvalidArgumentError, type KvLane, ShapeMismatchError } from '@sparsekit/core';

export interface KvCacheOptions {
  /** Entries per page (default 16, as vLLM and Quest). */
  pageSize?: number;
  /** Entries per lane allocated at first (default 256, or the capacity if smaller); doubled as needed. */
  initialEntries?: number;
  /**
   * 'original' (default): keys are stored after rotary positions at their original positions, and a
   * new token's position counts every token seen. 'shifted' (StreamingLLM): keys are stored before
   * rotary positions and rotated at attention time by their index in the cache, and a new token's
   * position is the number of entries held, so generation can run past the model's positions once
   * entries are evicted. Shifted positions need a rotary model.
   */
  positions?: 'original' | 'shifted';
  /**
   * Where keys and values live: a backend's `allocate` / `free` (the wasm backend's memory, which its
   * attention kernels read in place, with no copy per step). Default: ordinary arrays.
   */
  storage?: KvStorage;
}

/** Array storage for a cache's keys and values (a backend's `allocate` and `free`). */
export interface KvStorage {
  allocate(length: number): Float32Array;
  free?(array: Float32Array): void;
}

function freeArrays(held: { storage: KvStorage | undefined; arrays: Set<Float32Array> }): void {
  for (const a of held.arrays) held.storage?.free?.(a);
  held.arrays.clear();
}

const cacheFinalizer = new FinalizationRegistry(freeArrays);

/**
 * Keys and values of every layer for `batch` sequences. Each (layer, sequence, key/value head) is a
 * lane of up to `capacity` entries in arrival order, grouped in pages of `pageSize` entries, each
 * entry with its original position. Entries can be evicted (the lane is compacted at once: later
 * entries move down, keeping their order and positions). Storage per layer is
 * [batch, kvHeads, allocated, headDim], grown by doubling as entries arrive (never past
 * `capacity`), so a model with a long context costs memory only for what it holds; `length` counts
 * the tokens appended per sequence.
 */
export class KvCache {
  keys: Float32Array[];
  values: Float32Array[];
  /** Entries per lane allocated now (grows to `capacity`). */
  allocated: number;
  /** Tokens appended per sequence (the next token's original position). */
  length = 0;
  readonly pageSize: number;
  readonly positionMode: 'original' | 'shifted';
  /** Per layer: entries held per lane [batch * kvHeads]. */
  private readonly held: Int32Array[];
  /** Per layer: original positions [batch * kvHeads * capacity]. */
  private readonly origin: Int32Array[];
  /** Evictions so far (a failed call that evicted cannot be undone). */
  private evictions = 0;
  /** Set when a failed call left lanes it could not restore. */
  private broken = false;
  private disposed = false;
  private readonly storage: KvStorage | undefined;
  /** The arrays taken from `storage`, freed by `dispose` or when the cache is collected. */
  private readonly storageHeld: { storage: KvStorage | undefined; arrays: Set<Float32Array> } = {
    storage: undefined,
    arrays: new Set(),
  };

  private track(a: Float32Array): Float32Array {
    if (this.storage?.free !== undefined) {
      this.storageHeld.storage = this.storage;
      this.storageHeld.arrays.add(a);
    }
    return a;
  }

  /** Give the keys and values back to their storage now; the cache cannot be used afterwards. */
  dispose(): void {
    freeArrays(this.storageHeld);
    cacheFinalizer.unregister(this);
    this.disposed = true;
  }

  constructor(
    readonly layers: number,
    readonly batch: number,
    readonly kvHeads: number,
    readonly capacity: number,
    readonly headDim: number,
    options: KvCacheOptions = {},
  ) {
    const pageSize = options.pageSize ?? 16;
    if (!Number.isInteger(pageSize) || pageSize < 1)
      throw new InvalidArgumentError('pageSize', pageSize, 'must be a positive integer');
    this.pageSize = pageSize;
    this.positionMode = options.positions ?? 'original';
    const initial = options.initialEntries ?? 256;
    if (!Number.isInteger(initial) || initial < 1)
      throw new InvalidArgumentError('initialEntries', initial, 'must be a positive integer');
    this.allocated = Math.min(capacity, initial);
    const size = batch * kvHeads * this.allocated * headDim;
    this.storage = options.storage;
    if (this.storage?.free !== undefined) cacheFinalizer.register(this, this.storageHeld);
    const make = (n: number) => this.track(this.storage?.allocate(n) ?? new Float32Array(n));
    this.keys = Array.from({ length: layers }, () => make(size));
    this.values = Array.from({ length: layers }, () => make(size));
    this.held = Array.from({ length: layers }, () => new Int32Array(batch * kvHeads));
    this.origin = Array.from({ length: layers }, () => new Int32Array(batch * kvHeads * this.allocated));
  }

  /** Offset of entry `index` of lane (b, head) in a layer's arrays. */
  offset(b: number, head: number, index: number): number {
    return ((b * this.kvHeads + head) * this.allocated + index) * this.headDim;
  }

  /** Grow every lane's storage to hold at least `entries` (doubling, at most `capacity`). */
  private grow(entries: number): void {
    if (entries <= this.allocated) return;
    let next = this.allocated;
    while (next < entries) next *= 2;
    next = Math.min(this.capacity, next);
    const lanes = this.batch * this.kvHeads;
    const d = this.headDim;
    const move = (old: Float32Array, width: number, from: number) => {
      const grown = this.track(
        this.storage?.allocate(lanes * next * width) ?? new Float32Array(lanes * next * width),
      );
      for (let lane = 0; lane < lanes; lane++)
        grown.set(old.subarray(lane * from * width, (lane + 1) * from * width), lane * next * width);
      if (this.storageHeld.arrays.delete(old)) this.storage?.free?.(old);
      return grown;
    };
    const from = this.allocated;
    this.keys = this.keys.map((k) => move(k, d, from));
    this.values = this.values.map((v) => move(v, d, from));
    for (let layer = 0; layer < this.layers; layer++) {
      const old = this.origin[layer]!;
      const grown = new Int32Array(lanes * next);
      for (let lane = 0; lane < lanes; lane++)
        grown.set(old.subarray(lane * from, (lane + 1) * from), lane * next);
      this.origin[layer] = grown;
    }
    this.allocated = next;
  }

  /** Entries held by lane (layer, b, head). */
  laneLength(layer: number, b: number, head: number): number {
    return this.held[layer]![b * this.kvHeads + head]!;
  }

  /** Entries held by the fullest lane. */
  get longestLane(): number {
    let most = 0;
    for (const held of this.held) for (let i = 0; i < held.length; i++) most = Math.max(most, held[i]!);
    return most;
  }

  /** Whether every lane holds every token appended (nothing evicted). */
  get complete(): boolean {
    return this.evictions === 0;
  }

  /** Position a new token `s` of this call takes in lane (layer, b, head). */
  positionOf(layer: number, b: number, head: number, s: number): number {
    return (this.positionMode === 'original' ? this.length : this.laneLength(layer, b, head)) + s;
  }

  /** A view of lane (layer, b, head) (valid until the cache next changes). */
  lane(layer: number, b: number, head: number): KvLane {
    this.checkLane(layer, b, head);
    const length = this.laneLength(layer, b, head);
    const base = this.offset(b, head, 0);
    const at = (b * this.kvHeads + head) * this.allocated;
    return {
      layer,
      sequence: b,
      kvHead: head,
      headDim: this.headDim,
      pageSize: this.pageSize,
      length,
      keys: this.keys[layer]!.subarray(base, base + length * this.headDim),
      values: this.values[layer]!.subarray(base, base + length * this.headDim),
      positions: this.origin[layer]!.subarray(at, at + length),
    };
  }

  /** Append one entry to lane (layer, b, head) at original `position`. */
  append(
    layer: number,
    b: number,
    head: number,
    key: Float32Array,
    value: Float32Array,
    position: number,
  ): void {
    const lane = b * this.kvHeads + head;
    const index = this.held[layer]![lane]!;
    if (index >= this.capacity)
      throw new InvalidArgumentError('KV cache lane', index + 1, `exceeds the capacity (${this.capacity})`);
    this.grow(index + 1);
    const at = this.offset(b, head, index);
    this.keys[layer]!.set(key, at);
    this.values[layer]!.set(value, at);
    this.origin[layer]![lane * this.allocated + index] = position;
    this.held[layer]![lane] = index + 1;
  }

  /**
   * Drop entries `indices` (sorted or not, unique, in [0, laneLength)) of lane (layer, b, head); the
   * kept entries move down in order, with their original positions. Returns the entries left.
   */
  evict(layer: number, b: number, head: number, indices: ArrayLike<number>): number {
    this.checkLane(layer, b, head);
    const length = this.laneLength(layer, b, head);
    const drop = new Uint8Array(length);
    for (let i = 0; i < indices.length; i++) {
      const e = indices[i]!;
      if (!(Number.isInteger(e) && e >= 0 && e < length) || drop[e] === 1)
        throw new InvalidArgumentError('evicted entry', e, `must be unique and in [0, ${length})`);
      drop[e] = 1;
    }
    if (indices.length === 0) return length;
    const keys = this.keys[layer]!;
    const values = this.values[layer]!;
    const origin = this.origin[layer]!;
    const lane = b * this.kvHeads + head;
    const d = this.headDim;
    let kept = 0;
    for (let e = 0; e < length; e++) {
      if (drop[e] === 1) continue;
      if (kept !== e) {
        const from = this.offset(b, head, e);
        keys.copyWithin(this.offset(b, head, kept), from, from + d);
        values.copyWithin(this.offset(b, head, kept), from, from + d);
        origin[lane * this.allocated + kept] = origin[lane * this.allocated + e]!;
      }
      kept++;
    }
    this.held[layer]![lane] = kept;
    this.evictions++;
    return kept;
  }

  /** Drop whole pages (page p = entries [p * pageSize, (p + 1) * pageSize)) of a lane. */
  evictPages(layer: number, b: number, head: number, pages: ArrayLike<number>): number {
    const length = this.laneLength(layer, b, head);
    const indices: number[] = [];
    for (let i = 0; i < pages.length; i++) {
      const p = pages[i]!;
      if (!(Number.isInteger(p) && p >= 0 && p * this.pageSize < length))
        throw new InvalidArgumentError(
          'evicted page',
          p,
          `must be in [0, ${Math.ceil(length / this.pageSize)})`,
        );
      for (let e = p * this.pageSize; e < Math.min(length, (p + 1) * this.pageSize); e++) indices.push(e);
    }
    return this.evict(layer, b, head, indices);
  }

  /** The state before a call, for `rollback` if the call fails. */
  mark(): { held: Int32Array[]; length: number; evictions: number } {
    return { held: this.held.map((h) => h.slice()), length: this.length, evictions: this.evictions };
  }

  /**
   * Undo what a failed call appended (entries past the marked lane lengths are dropped). A call that
   * evicted entries before failing cannot be undone: the cache then refuses further use.
   */
  rollback(mark: { held: Int32Array[]; length: number; evictions: number }): void {
    if (mark.evictions !== this.evictions) {
      this.broken = true;
      return;
    }
    for (const [layer, h] of mark.held.entries()) this.held[layer]!.set(h);
    this.length = mark.length;
  }

  /**
   * Check that `count` more tokens fit (positions in 'original' mode, entries in every lane);
   * returns the entries of the fullest lane.
   */
  reserve(count: number): number {
    if (this.disposed)
      throw new InvalidArgumentError(
        'KV cache',
        'disposed',
        'its storage was given back; start from a new cache',
      );
    if (this.broken)
      throw new InvalidArgumentError(
        'KV cache',
        'inconsistent',
        'a call that evicted entries failed part way, so its layers disagree; start from a new cache',
      );
    const most = this.longestLane;
    if (
      most + count > this.capacity ||
      (this.positionMode === 'original' && this.length + count > this.capacity)
    ) {
      throw new InvalidArgumentError(
        'sequence length',
        (this.positionMode === 'original' ? this.length : most) + count,
        `exceeds the cache capacity (${this.capacity}, the model's maximum); generate fewer tokens or shorten the prompt${this.positionMode === 'original' ? '' : ', or evict entries'}`,
      );
    }
    return most;
  }

  private checkLane(layer: number, b: number, head: number): void {
    if (!(layer >= 0 && layer < this.layers && b >= 0 && b < this.batch && head >= 0 && head < this.kvHeads))
      throw new ShapeMismatchError(
        [this.layers, this.batch, this.kvHeads],
        [layer, b, head],
        'KV cache lane',
      );
  }
}
