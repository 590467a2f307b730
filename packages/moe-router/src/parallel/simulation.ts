// Expert parallelism simulated with worker threads as devices. The main thread routes and holds
// each device's token shard; for every (source, destination) device pair it posts one real message
// to the destination's worker with the hidden rows of the source's tokens routed to experts on the
// destination (the dispatch all-to-all); each worker runs its experts and posts back one message per
// source with the weighted outputs (the combine all-to-all); the main thread sums them per token.
// Every hidden-row buffer's byte length is counted per device pair, so the counts are the bytes
// that moved, to compare with `expertParallelCost`. The diagonal (source = destination) is a
// device's local copy: it is a message here too, and counted on the diagonal, off the all-to-all.
import { InvalidArgumentError, type Routing, ShapeMismatchError } from '@sparsekit/core';
import { positiveInteger } from '../validate.js';
import { addExpertRow, checkExperts, type GatedExpert } from './experts.js';
import { type ExpertPlacement, placeExperts, shardTokens } from './placement.js';

export interface SimulationOptions {
  /** The experts of one layer; each device receives its own experts' weights once, at start. */
  experts: readonly GatedExpert[];
  /** Hidden width H. */
  width: number;
  /** Worker threads, one per device. */
  devices: number;
  /** Default 'round-robin'. */
  placement?: ExpertPlacement;
  /** One row per (token, device) instead of one per kept slot (see `ExpertParallelOptions.dedupe`). */
  dedupe?: boolean;
  /**
   * How rows travel: 'transfer' (default) posts each message's ArrayBuffers as transferables (moved,
   * not copied); 'shared' copies the rows into a SharedArrayBuffer first (the receiver reads it in place).
   */
  transport?: 'transfer' | 'shared';
}

export interface SimulationRun {
  /** [tokens, width] the mixture's output (0 for a token with no kept slot). */
  output: Float32Array;
  /** [devices * devices] hidden-row bytes posted from device s to device d in dispatch (s * devices + d). */
  dispatchBytes: Float64Array;
  /** [devices * devices] output-row bytes posted from device s (the experts') back to d in combine. */
  combineBytes: Float64Array;
  /** [devices * devices] bytes of the dispatch messages' routing data (row offsets, expert ids, weights). */
  metadataBytes: Float64Array;
  /** [devices] (token, expert) rows each worker computed, as the workers report them. */
  rowsPerDevice: Float64Array;
  /** Messages posted (dispatch and combine). */
  messages: number;
}

interface DispatchMessage {
  type: 'dispatch';
  run: number;
  src: number;
  rows: Float32Array;
  /** [n + 1] row r's (expert, weight) pairs are offsets[r] .. offsets[r + 1]. */
  offsets: Int32Array;
  pairExperts: Int32Array;
  pairWeights: Float32Array;
}

interface CombineMessage {
  type: 'combine';
  run: number;
  src: number;
  device: number;
  rows: Float32Array;
  computed: number;
}

interface NodeWorker {
  postMessage(value: unknown, transfer?: readonly ArrayBuffer[]): void;
  on(event: 'message', listener: (value: unknown) => void): void;
  on(event: 'error', listener: (error: Error) => void): void;
  on(event: 'exit', listener: (code: number) => void): void;
  terminate(): Promise<number>;
}

// A worker: receives its experts once ({ type: 'init' }), then per run one dispatch message from
// every source device; once all have arrived it runs the pairs and posts one combine message each.
const WORKER_SOURCE = `
const { parentPort } = require('node:worker_threads');
const addExpertRow = ${addExpertRow.toString()};
let experts = new Map();
let width = 0;
let devices = 0;
let shared = false;
let scratch = new Float32Array(1);
const pending = new Map();
function compute(m) {
  const n = m.offsets.length - 1;
  const out = shared
    ? new Float32Array(new SharedArrayBuffer(n * width * 4))
    : new Float32Array(n * width);
  let computed = 0;
  for (let r = 0; r < n; r++)
    for (let p = m.offsets[r]; p < m.offsets[r + 1]; p++) {
      const expert = experts.get(m.pairExperts[p]);
      if (expert === undefined) throw new Error('expert ' + m.pairExperts[p] + ' is not on this device');
      addExpertRow(expert, m.rows, r * width, width, m.pairWeights[p], out, r * width, scratch);
      computed++;
    }
  return { out, computed };
}
parentPort.on('message', (m) => {
  if (m.type === 'init') {
    width = m.width;
    devices = m.devices;
    shared = m.shared;
    experts = new Map(m.experts.map((e) => [e.id, e]));
    scratch = new Float32Array(Math.max(1, ...m.experts.map((e) => e.inner)));
    parentPort.postMessage({ type: 'ready' });
    return;
  }
  const got = pending.get(m.run) ?? [];
  got.push(m);
  if (got.length < devices) { pending.set(m.run, got); return; }
  pending.delete(m.run);
  for (const d of got) {
    const { out, computed } = compute(d);
    const reply = { type: 'combine', run: d.run, src: d.src, device: m.device, rows: out, computed };
    if (shared) parentPort.postMessage(reply);
    else parentPort.postMessage(reply, [out.buffer]);
  }
});
`;

/** Expert-parallel devices on worker threads; `start`, then `run` routings, then `close`. */
export class ExpertParallelSimulation {
  /** [numExperts] the device of each expert. */
  readonly expertDevice: Int32Array;
  /** [devices] bytes of expert weights each device received once, at start. */
  readonly weightBytes: Float64Array;
  private runs = 0;
  private closed = false;
  private readonly waiting = new Map<
    number,
    { got: CombineMessage[]; resolve: (m: CombineMessage[]) => void; reject: (e: unknown) => void }
  >();
  private failure: unknown;

  private constructor(
    private readonly options: Required<Omit<SimulationOptions, 'placement'>>,
    private readonly workers: NodeWorker[],
    expertDevice: Int32Array,
  ) {
    this.expertDevice = expertDevice;
    this.weightBytes = new Float64Array(options.devices);
    options.experts.forEach((e, i) => {
      this.weightBytes[expertDevice[i]!]! += e.gate.byteLength + e.up.byteLength + e.down.byteLength;
    });
    workers.forEach((w) => {
      w.on('message', (m) => this.receive(m as CombineMessage));
      w.on('error', (error) => this.fail(error));
      w.on('exit', (code) => {
        if (!this.closed)
          this.fail(
            new InvalidArgumentError('device worker', code, 'exited before the simulation was closed'),
          );
      });
    });
  }

  /** Starts one worker per device and gives each its experts' weights (copied once). */
  static async start(options: SimulationOptions): Promise<ExpertParallelSimulation> {
    const { experts, width, devices } = options;
    checkExperts(experts, width);
    positiveInteger('devices', devices);
    const transport = options.transport ?? 'transfer';
    if (transport !== 'transfer' && transport !== 'shared')
      throw new InvalidArgumentError('transport', transport, "must be 'transfer' or 'shared'");
    const expertDevice = placeExperts(experts.length, devices, options.placement ?? 'round-robin');
    const { Worker } = await import('node:worker_threads');
    const workers: NodeWorker[] = [];
    const ready: Promise<void>[] = [];
    for (let d = 0; d < devices; d++) {
      const worker = new Worker(WORKER_SOURCE, { eval: true }) as unknown as NodeWorker;
      workers.push(worker);
      ready.push(
        new Promise((resolve, reject) => {
          worker.on('message', (m) => {
            if ((m as { type: string }).type === 'ready') resolve();
          });
          worker.on('error', reject);
        }),
      );
      worker.postMessage({
        type: 'init',
        width,
        devices,
        shared: transport === 'shared',
        experts: experts.flatMap((e, id) => (expertDevice[id] === d ? [{ id, ...e }] : [])),
      });
    }
    try {
      await Promise.all(ready);
    } catch (error) {
      await Promise.all(workers.map((w) => w.terminate()));
      throw error;
    }
    return new ExpertParallelSimulation(
      { experts, width, devices, dedupe: options.dedupe ?? false, transport },
      workers,
      expertDevice,
    );
  }

  get devices(): number {
    return this.options.devices;
  }

  private receive(m: CombineMessage): void {
    if (m.type !== 'combine') return;
    const w = this.waiting.get(m.run);
    if (w === undefined) return;
    w.got.push(m);
    if (w.got.length === this.options.devices * this.options.devices) {
      this.waiting.delete(m.run);
      w.resolve(w.got);
    }
  }

  private fail(error: unknown): void {
    this.failure = error;
    for (const w of this.waiting.values()) w.reject(error);
    this.waiting.clear();
  }

  /**
   * Runs the mixture of `routing` on hidden [tokens, width], the tokens homed on `tokenDevice`
   * (default contiguous shards), through the devices; resolves with the output and the bytes moved.
   */
  async run(routing: Routing, hidden: Float32Array, tokenDevice?: ArrayLike<number>): Promise<SimulationRun> {
    if (this.closed) throw new InvalidArgumentError('simulation', 'closed', 'was closed: start a new one');
    if (this.failure !== undefined) throw this.failure;
    const { width, devices, dedupe, transport, experts } = this.options;
    const { k, experts: ids, weights } = routing;
    positiveInteger('routing k', k);
    const tokens = ids.length / k;
    if (!Number.isInteger(tokens) || weights.length !== ids.length)
      throw new ShapeMismatchError([ids.length], [weights.length], 'routing weights');
    if (hidden.length !== tokens * width)
      throw new ShapeMismatchError([tokens, width], [hidden.length / width, width], 'hidden');
    const home = shardTokens(tokens, devices, tokenDevice);

    // Rows per (src, dst): the token of each row and its (expert, weight) pairs.
    const rowTokens: number[][] = Array.from({ length: devices * devices }, () => []);
    const pairs: Array<Array<Array<[number, number]>>> = Array.from({ length: devices * devices }, () => []);
    const last = new Int32Array(devices).fill(-1);
    for (let t = 0; t < tokens; t++)
      for (let j = 0; j < k; j++) {
        const e = ids[t * k + j]!;
        if (e < 0) continue;
        if (!(Number.isInteger(e) && e < experts.length))
          throw new InvalidArgumentError(
            'routed expert',
            e,
            `must be -1 (dropped) or in [0, ${experts.length})`,
          );
        const dst = this.expertDevice[e]!;
        const pair = home[t]! * devices + dst;
        const w = weights[t * k + j]!;
        if (dedupe && last[dst] === t) pairs[pair]![pairs[pair]!.length - 1]!.push([e, w]);
        else {
          rowTokens[pair]!.push(t);
          pairs[pair]!.push([[e, w]]);
        }
        last[dst] = t;
      }

    const run = this.runs++;
    const dispatchBytes = new Float64Array(devices * devices);
    const combineBytes = new Float64Array(devices * devices);
    const metadataBytes = new Float64Array(devices * devices);
    const done = new Promise<CombineMessage[]>((resolve, reject) => {
      this.waiting.set(run, { got: [], resolve, reject });
    });
    for (let src = 0; src < devices; src++)
      for (let dst = 0; dst < devices; dst++) {
        const pair = src * devices + dst;
        const rowsOf = rowTokens[pair]!;
        const n = rowsOf.length;
        const rows =
          transport === 'shared'
            ? new Float32Array(new SharedArrayBuffer(n * width * 4))
            : new Float32Array(n * width);
        rowsOf.forEach((t, r) => {
          rows.set(hidden.subarray(t * width, (t + 1) * width), r * width);
        });
        const lists = pairs[pair]!;
        const offsets = new Int32Array(n + 1);
        lists.forEach((list, r) => {
          offsets[r + 1] = offsets[r]! + list.length;
        });
        const pairExperts = Int32Array.from(lists.flat(), ([e]) => e);
        const pairWeights = Float32Array.from(lists.flat(), ([, w]) => w);
        dispatchBytes[pair] = rows.buffer.byteLength;
        metadataBytes[pair] = offsets.byteLength + pairExperts.byteLength + pairWeights.byteLength;
        const message: DispatchMessage = {
          type: 'dispatch',
          run,
          src,
          rows,
          offsets,
          pairExperts,
          pairWeights,
        };
        const moved = [offsets.buffer, pairExperts.buffer, pairWeights.buffer];
        if (transport === 'transfer') moved.push(rows.buffer as ArrayBuffer);
        this.workers[dst]!.postMessage({ ...message, device: dst }, moved);
      }

    // Summed in a fixed order (device, then source), so a run's output does not depend on arrival.
    const replies = (await done).sort((a, b) => a.device - b.device || a.src - b.src);
    const output = new Float32Array(tokens * width);
    const rowsPerDevice = new Float64Array(devices);
    for (const m of replies) {
      const pair = m.src * devices + m.device;
      combineBytes[m.device * devices + m.src] = m.rows.buffer.byteLength;
      rowsPerDevice[m.device]! += m.computed;
      rowTokens[pair]!.forEach((t, r) => {
        for (let d = 0; d < width; d++) output[t * width + d]! += m.rows[r * width + d]!;
      });
    }
    return {
      output,
      dispatchBytes,
      combineBytes,
      metadataBytes,
      rowsPerDevice,
      messages: 2 * devices * devices,
    };
  }

  /** Terminates the workers (a later `run` is refused). */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.fail(new InvalidArgumentError('simulation', 'closed', 'was closed while a run was in flight'));
    await Promise.all(this.workers.map((w) => w.terminate()));
  }
}

/** Starts a simulation, runs `routing` once, and closes it. */
export async function simulateExpertParallel(
  routing: Routing,
  hidden: Float32Array,
  options: SimulationOptions & { tokenDevice?: ArrayLike<number> },
): Promise<SimulationRun> {
  const simulation = await ExpertParallelSimulation.start(options);
  try {
    return await simulation.run(routing, hidden, options.tokenDevice);
  } finally {
    await simulation.close();
  }
}
