// A bounded, seeded, shuffled store of activation rows collected from a hook site: what SAE
// training, activation predictors, threshold calibration and expert clustering read. Rows beyond the
// memory budget spill to shards (safetensors files, with core/node's `diskShards`), are kept as a
// uniform reservoir sample, or are refused. Iteration mixes shards in a buffer as SAELens's
// ActivationsStore does, and never holds more than the budget.
import { InvalidArgumentError, ShapeMismatchError, SparsekitError } from './errors.js';
import type { HookContext, HookHandle, HookSite, Hooks } from './hooks.js';
import { Rng } from './rng.js';
import { Tensor } from './tensor.js';

/**
 * Where a store's full buffers go: shards written and read back whole, synchronously (a hook runs
 * inside the forward pass, and waiting for a write keeps memory bounded). core/node: `diskShards`.
 */
export interface ShardSink {
  /** Write `rows` ([n, width] floats) as shard `index` (atomically: a shard is whole or absent). */
  write(index: number, rows: Float32Array, width: number): void;
  /** Read shard `index` back. */
  read(index: number): Float32Array;
  /** Remove every shard. */
  clear(): void;
}

export interface ActivationStoreOptions {
  /** Floats per row (the hook site's width). */
  width: number;
  /** Bytes of rows the store may hold in memory at once (default 64 MiB). */
  memoryBudgetBytes?: number;
  /** Seed of every shuffle and of the reservoir (default 0). */
  seed?: number;
  /** Full buffers spill here; without one the store keeps a reservoir sample or refuses (`whenFull`). */
  shards?: ShardSink;
  /** With no shard sink: 'reservoir' keeps a uniform sample of every row seen; 'error' (default) refuses. */
  whenFull?: 'reservoir' | 'error';
}

/** The store's memory budget is reached and it has nowhere to put more rows. */
export class ActivationStoreFullError extends SparsekitError {
  static override readonly code = 'core/activation-store-full';
  static override readonly hint =
    "give the store a shard sink (diskShards), a larger budget, or whenFull: 'reservoir'";
  readonly rows: number;
  readonly budget: number;

  constructor(rows: number, budget: number) {
    super(
      ActivationStoreFullError.code,
      `The activation store holds ${rows} rows, its memory budget (${budget} bytes); give it a shard sink (diskShards from @sparsekit/core/node), a larger budget, or whenFull: 'reservoir'.`,
    );
    this.rows = rows;
    this.budget = budget;
  }
}

/**
 * Rows of activations, added in any amounts and read back in shuffled batches. Memory: the rows the
 * store holds never exceed `memoryBudgetBytes`. With a shard sink, a shard is a third of the budget:
 * iteration holds one shard read back, the rows kept for mixing (half a shard) and their merge.
 * `peakBytes` reports the most it held.
 */
export class ActivationStore {
  readonly width: number;
  readonly budgetBytes: number;
  /** Rows per shard (with a sink), or rows held (without one). */
  readonly capacityRows: number;
  private readonly rng: Rng;
  private readonly sink: ShardSink | undefined;
  private readonly whenFull: 'reservoir' | 'error';
  private buffer: Float32Array | undefined;
  private buffered = 0;
  /** Rows in each shard written. */
  private readonly shardSizes: number[] = [];
  private seen = 0;
  private live = 0;
  /** The most bytes of rows the store held at once. */
  peakBytes = 0;

  constructor(options: ActivationStoreOptions) {
    const { width } = options;
    if (!Number.isInteger(width) || width < 1)
      throw new InvalidArgumentError('width', width, 'must be a positive integer');
    this.width = width;
    this.budgetBytes = options.memoryBudgetBytes ?? 64 * 2 ** 20;
    if (!(Number.isSafeInteger(this.budgetBytes) && this.budgetBytes > 0))
      throw new InvalidArgumentError(
        'memoryBudgetBytes',
        this.budgetBytes,
        'must be a positive whole number of bytes',
      );
    const rowBytes = 4 * width;
    this.sink = options.shards;
    this.capacityRows = Math.floor(this.budgetBytes / rowBytes / (this.sink === undefined ? 1 : 3));
    if (this.capacityRows < 2)
      throw new InvalidArgumentError(
        'memoryBudgetBytes',
        this.budgetBytes,
        `is too small for rows of ${width} floats`,
      );
    this.rng = new Rng(options.seed ?? 0);
    this.whenFull = options.whenFull ?? 'error';
  }

  /** Rows added so far (all of them, also those a reservoir did not keep). */
  get rowsSeen(): number {
    return this.seen;
  }

  /** Rows the store can give back (spilled and buffered; a reservoir's sample). */
  get rows(): number {
    return this.shardSizes.reduce((a, b) => a + b, 0) + this.buffered;
  }

  /** Shards written so far. */
  get shards(): number {
    return this.shardSizes.length;
  }

  /** Add rows [n, width] (a Tensor whose last dimension is the width, or its data); non-finite values are refused. */
  add(rows: Tensor<'f32'> | Float32Array): void {
    const data = rows instanceof Tensor ? rows.data : rows;
    if (rows instanceof Tensor && rows.shape.at(-1) !== this.width)
      throw new ShapeMismatchError([-1, this.width], rows.shape, 'activation rows');
    if (data.length % this.width !== 0)
      throw new ShapeMismatchError([-1, this.width], [data.length], 'activation rows');
    for (let i = 0; i < data.length; i++) {
      if (!Number.isFinite(data[i]!))
        throw new InvalidArgumentError(
          'activation',
          data[i],
          `must be finite (row ${Math.floor(i / this.width)})`,
        );
    }
    const n = data.length / this.width;
    const capacity = this.capacityRows;
    for (let r = 0; r < n; r++) {
      const row = data.subarray(r * this.width, (r + 1) * this.width);
      this.seen++;
      if (this.buffered < capacity) {
        this.buffer ??= this.allocate(capacity * this.width);
        this.buffer.set(row, this.buffered++ * this.width);
        if (this.buffered === capacity && this.sink !== undefined) this.spill();
        continue;
      }
      if (this.whenFull === 'error') throw new ActivationStoreFullError(this.buffered, this.budgetBytes);
      // Algorithm R: the row replaces a uniformly chosen kept one with probability capacity / seen.
      const j = this.rng.int(this.seen);
      if (j < capacity) this.buffer!.set(row, j * this.width);
    }
  }

  /**
   * Register a hook at `site` on `hooks` that adds every row passing it (token-wise sites: each
   * token's vector; `blocks` limits it to some blocks, `filter` to some calls: one stream point
   * (`context.point`), one layer group (`context.layers`), one expert). `remove()` the handle to stop.
   */
  collect(
    hooks: Hooks,
    site: HookSite,
    options: { blocks?: readonly number[]; filter?: (context: HookContext) => boolean } = {},
  ): HookHandle {
    const { filter, ...rest } = options;
    return hooks.add(
      site,
      (tensor, context) => {
        if (filter === undefined || filter(context)) this.add(tensor);
      },
      rest,
    );
  }

  /**
   * Shuffled batches of `batchSize` rows ([batchSize, width]), every row once per pass (a last,
   * smaller batch unless `dropLast`). Shards are read in a seeded random order and mixed as
   * SAELens's ActivationsStore does: each shard read is shuffled with the rows kept from the one
   * before, and half of a shard is kept back for the next. The batches are copies.
   */
  *batches(batchSize: number, options: { dropLast?: boolean } = {}): Generator<Tensor<'f32'>> {
    if (!Number.isInteger(batchSize) || batchSize < 1)
      throw new InvalidArgumentError('batchSize', batchSize, 'must be a positive integer');
    const w = this.width;
    let pool: Float32Array;
    if (this.sink === undefined) {
      // Everything is in memory: one shuffle of the buffer.
      pool = this.buffer?.subarray(0, this.buffered * w) ?? new Float32Array(0);
      shuffleRows(pool, w, this.rng);
    } else {
      const half = Math.floor(this.capacityRows / 2);
      if (batchSize > half)
        throw new InvalidArgumentError(
          'batchSize',
          batchSize,
          `must be at most half a shard (${half} rows) to stay within the memory budget; raise memoryBudgetBytes`,
        );
      if (this.buffered > 0) this.spill();
      const keepRows = half - batchSize;
      pool = new Float32Array(0);
      for (const index of this.rng.permutation(this.shardSizes.length)) {
        const rows = this.sink.read(index);
        if (rows.length !== this.shardSizes[index]! * w)
          throw new ShapeMismatchError(
            [this.shardSizes[index]!, w],
            [rows.length / w, w],
            `activation shard ${index}`,
          );
        this.track(rows.length);
        const merged = this.allocate(pool.length + rows.length);
        merged.set(pool);
        merged.set(rows, pool.length);
        this.release(rows.length + pool.length);
        shuffleRows(merged, w, this.rng);
        const n = merged.length / w;
        let r = 0;
        for (; n - r - batchSize >= keepRows; r += batchSize) {
          yield new Tensor('f32', [batchSize, w], merged.slice(r * w, (r + batchSize) * w));
        }
        pool = this.allocate(merged.length - r * w);
        pool.set(merged.subarray(r * w));
        this.release(merged.length);
      }
      shuffleRows(pool, w, this.rng);
    }
    const n = pool.length / w;
    let r = 0;
    for (; r + batchSize <= n; r += batchSize)
      yield new Tensor('f32', [batchSize, w], pool.slice(r * w, (r + batchSize) * w));
    if (r < n && options.dropLast !== true) yield new Tensor('f32', [n - r, w], pool.slice(r * w));
    if (this.sink !== undefined) this.release(pool.length);
  }

  /** Drop every row (and shard). */
  clear(): void {
    this.sink?.clear();
    this.shardSizes.length = 0;
    if (this.buffer !== undefined) this.release(this.buffer.length);
    this.buffer = undefined;
    this.buffered = 0;
    this.seen = 0;
  }

  /** Write the buffered rows (shuffled) as the next shard and free the buffer. */
  private spill(): void {
    const rows = this.buffer!.subarray(0, this.buffered * this.width);
    shuffleRows(rows, this.width, this.rng);
    this.sink!.write(this.shardSizes.length, rows, this.width);
    this.shardSizes.push(this.buffered);
    this.release(this.buffer!.length);
    this.buffer = undefined;
    this.buffered = 0;
  }

  private allocate(floats: number): Float32Array {
    this.track(floats);
    return new Float32Array(floats);
  }

  private track(floats: number): void {
    this.live += floats * 4;
    this.peakBytes = Math.max(this.peakBytes, this.live);
  }

  private release(floats: number): void {
    this.live -= floats * 4;
  }
}

/** Fisher-Yates over the rows of `data` [n, width]. */
function shuffleRows(data: Float32Array, width: number, rng: Rng): void {
  const n = data.length / width;
  const tmp = new Float32Array(width);
  for (let i = n - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    if (i === j) continue;
    tmp.set(data.subarray(i * width, (i + 1) * width));
    data.copyWithin(i * width, j * width, (j + 1) * width);
    data.set(tmp, j * width);
  }
}
