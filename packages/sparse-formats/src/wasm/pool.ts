import { InvalidArgumentError } from '@sparsekit/core';
import { CONTROL, SPIN_MS, WORKER_SOURCE } from './worker-source.js';

type KernelFn = (...args: number[]) => void;

/** One kernel launch: an export, its arguments, and how threads split it. */
export interface Task {
  op: number;
  args: number[];
  /** Positions in `args` that receive each thread's [r0, r1). */
  r0Position: number;
  r1Position: number;
  /** Row boundaries per thread: parts[t] .. parts[t + 1] (length threads + 1). */
  parts: Int32Array;
  /** Position in `args` for a per-thread scratch pointer (scratchBase + t * scratchStride), if any. */
  scratchPosition?: number;
  scratchBase?: number;
  scratchStride?: number;
}

interface NodeWorker {
  unref(): void;
  terminate(): Promise<number>;
}

/**
 * A persistent pool of worker threads sharing the kernel module and its memory. The calling thread is
 * thread 0 and does its share of every task; the others wait on a control block (Atomics.wait), so a
 * launch costs a notify, not a message, and no worker starts per call. The call is synchronous.
 */
export class ThreadPool {
  private readonly header: Int32Array;
  private readonly args: Float64Array;
  private readonly parts: Int32Array;
  private workers: NodeWorker[] = [];

  private constructor(
    readonly threads: number,
    private readonly fns: KernelFn[],
    control: ArrayBufferLike,
  ) {
    this.header = new Int32Array(control, 0, 16);
    this.args = new Float64Array(control, CONTROL.argsOffset, CONTROL.maxArgs);
    this.parts = new Int32Array(control, CONTROL.partsOffset, 64);
  }

  static async create(
    threads: number,
    module: WebAssembly.Module,
    memory: WebAssembly.Memory,
    exports: Record<string, unknown>,
    names: readonly string[],
  ): Promise<ThreadPool> {
    if (!Number.isInteger(threads) || threads < 1 || threads > CONTROL.maxThreads) {
      throw new InvalidArgumentError('threads', threads, `must be an integer in [1, ${CONTROL.maxThreads}]`);
    }
    // One thread never waits on the control block, so it needs no SharedArrayBuffer (browsers may lack it).
    const control = threads > 1 ? new SharedArrayBuffer(CONTROL.bytes) : new ArrayBuffer(CONTROL.bytes);
    const fns = names.map((name) => exports[name] as KernelFn);
    const pool = new ThreadPool(threads, fns, control);
    if (threads > 1) {
      const { Worker } = await import('node:worker_threads');
      for (let id = 1; id < threads; id++) {
        const worker = new Worker(WORKER_SOURCE, {
          eval: true,
          workerData: { module, memory, control, id, names },
        });
        worker.unref();
        pool.workers.push(worker);
      }
    }
    return pool;
  }

  /** Run a task on every thread and return when all are done. */
  run(task: Task): void {
    const { parts } = task;
    if (this.threads === 1 || parts.length === 2) {
      const args = task.args.slice();
      args[task.r0Position] = parts[0]!;
      args[task.r1Position] = parts[parts.length - 1]!;
      if (task.scratchPosition !== undefined) args[task.scratchPosition] = task.scratchBase!;
      this.fns[task.op]!(...args);
      return;
    }
    const h = this.header;
    this.args.set(task.args);
    this.parts.set(parts);
    h[CONTROL.op] = task.op;
    h[CONTROL.argCount] = task.args.length;
    h[CONTROL.r0Position] = task.r0Position;
    h[CONTROL.r1Position] = task.r1Position;
    h[CONTROL.scratchPosition] = task.scratchPosition ?? -1;
    h[CONTROL.scratchBase] = task.scratchBase ?? 0;
    h[CONTROL.scratchStride] = task.scratchStride ?? 0;
    h[CONTROL.activeThreads] = parts.length - 1;
    Atomics.store(h, CONTROL.pending, this.workers.length);
    Atomics.add(h, CONTROL.generation, 1);
    Atomics.notify(h, CONTROL.generation);
    const own = task.args.slice();
    own[task.r0Position] = parts[0]!;
    own[task.r1Position] = parts[1]!;
    if (task.scratchPosition !== undefined) own[task.scratchPosition] = task.scratchBase!;
    let failure: unknown;
    try {
      if (parts[0]! < parts[1]!) this.fns[task.op]!(...own);
    } catch (error) {
      failure = error; // the workers still finish their parts before this returns
    }
    const spinUntil = performance.now() + SPIN_MS;
    for (let polls = 1; Atomics.load(h, CONTROL.pending) !== 0; polls++)
      if ((polls & 255) === 0 && performance.now() > spinUntil) break;
    for (;;) {
      const pending = Atomics.load(h, CONTROL.pending);
      if (pending === 0) break;
      // Timed, and the workers are woken again after each period: under heavy contention a
      // wake-up can be lost (observed: both sides waiting), which must not hang the process.
      if (Atomics.wait(h, CONTROL.pending, pending, 20) === 'timed-out')
        Atomics.notify(h, CONTROL.generation);
    }
    if (failure !== undefined) throw failure;
    if (Atomics.exchange(h, CONTROL.failed, 0) !== 0)
      throw new Error(
        `wasm kernel ${task.op} failed in a worker thread (a trap: out-of-bounds memory or bad arguments)`,
      );
  }

  async dispose(): Promise<void> {
    const h = this.header;
    h[CONTROL.stop] = 1;
    Atomics.add(h, CONTROL.generation, 1);
    Atomics.notify(h, CONTROL.generation);
    await Promise.all(this.workers.map((w) => w.terminate()));
    this.workers = [];
  }
}
