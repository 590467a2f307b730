// Expert parallelism on paper: for a routing of T tokens x k slots over E experts on D devices, the
// bytes each device sends each other device in the dispatch and combine all-to-alls, the load of
// each device in rows and in expert FLOPs, and the share of slots whose expert lives where the token
// does. The simulation (`ExpertParallelSimulation`) moves exactly these bytes.
import { InvalidArgumentError, type Routing } from '@sparsekit/core';
import { positiveInteger } from '../validate.js';
import { type ExpertPlacement, placeExperts, shardTokens } from './placement.js';

export interface ExpertParallelOptions {
  numExperts: number;
  devices: number;
  /** Default 'round-robin'. */
  placement?: ExpertPlacement;
  /** Home device of each token [tokens]; default contiguous shards (`shardTokens`). */
  tokenDevice?: ArrayLike<number>;
  /** Hidden width H (values per row). */
  width: number;
  /** Bytes per value on the wire (4 for f32, 2 for bf16/f16); default 4. */
  bytesPerValue?: number;
  /**
   * false (default): one row per kept slot, so a token sent to two experts of the same device
   * travels twice (GShard / DeepSpeed all-to-all). true: one row per (token, device), the device
   * fanning it out to its experts and summing their weighted outputs before the combine.
   */
  dedupe?: boolean;
  /** FLOPs of one row through each expert (a number for all, or [numExperts]); default 1 (load = rows). */
  expertFlops?: number | ArrayLike<number>;
}

/** max, mean and max / mean of a per-device quantity (max / mean is 0 when the mean is 0). */
export interface Spread {
  max: number;
  mean: number;
  maxOverMean: number;
}

export interface ExpertParallelCost {
  numExperts: number;
  devices: number;
  tokens: number;
  width: number;
  bytesPerValue: number;
  dedupe: boolean;
  /** [numExperts] the device of each expert. */
  expertDevice: Int32Array;
  /** [tokens] the home device of each token. */
  tokenDevice: Int32Array;
  /** [devices * devices] rows device s sends device d in dispatch, at s * devices + d (diagonal: local). */
  dispatchRows: Float64Array;
  /** [devices * devices] dispatchRows * width * bytesPerValue. */
  dispatchBytes: Float64Array;
  /** [devices * devices] bytes device s (the experts') sends device d (the tokens' home) in combine. */
  combineBytes: Float64Array;
  /** Bytes that cross between devices (off the diagonal) in each all-to-all. */
  allToAll: { dispatch: number; combine: number };
  /** [devices] bytes each device sends to other devices in dispatch (combine: what it receives). */
  sentBytes: Float64Array;
  /** [devices] bytes each device receives from other devices in dispatch (combine: what it sends). */
  receivedBytes: Float64Array;
  /** [devices] kept slots the device's experts run (each (token, expert) pair once). */
  rowsPerDevice: Float64Array;
  /** [devices] sum over the device's experts of rows * expertFlops. */
  flopsPerDevice: Float64Array;
  rowLoad: Spread;
  flopLoad: Spread;
  keptSlots: number;
  /** Kept slots whose expert lives on the token's home device. */
  localSlots: number;
  /** localSlots / keptSlots (1 when nothing is kept). */
  localShare: number;
}

export function spread(values: ArrayLike<number>): Spread {
  let max = 0;
  let sum = 0;
  for (let i = 0; i < values.length; i++) {
    max = Math.max(max, values[i]!);
    sum += values[i]!;
  }
  const mean = values.length === 0 ? 0 : sum / values.length;
  return { max, mean, maxOverMean: mean === 0 ? 0 : max / mean };
}

/** FLOPs of one row through a gated (SwiGLU) expert of `inner` channels: three products, 2 FLOPs a multiply-add. */
export function gatedExpertFlops(width: number, inner: number): number {
  return 6 * width * inner;
}

function expertFlopsOf(value: number | ArrayLike<number> | undefined, numExperts: number): Float64Array {
  if (value === undefined || typeof value === 'number') {
    const v = value ?? 1;
    if (!(Number.isFinite(v) && v >= 0))
      throw new InvalidArgumentError('expertFlops', v, 'must be finite and >= 0');
    return new Float64Array(numExperts).fill(v);
  }
  if (value.length !== numExperts)
    throw new InvalidArgumentError(
      'expertFlops',
      value.length,
      `must give one value for each of ${numExperts} experts`,
    );
  const out = Float64Array.from(value);
  for (const v of out)
    if (!(Number.isFinite(v) && v >= 0))
      throw new InvalidArgumentError('expertFlops', v, 'must be finite and >= 0');
  return out;
}

/** The all-to-all volume and per-device load of running `routing` with its experts over devices. */
export function expertParallelCost(routing: Routing, options: ExpertParallelOptions): ExpertParallelCost {
  const { numExperts, devices } = options;
  positiveInteger('width', options.width);
  const bytesPerValue = options.bytesPerValue ?? 4;
  positiveInteger('bytesPerValue', bytesPerValue);
  const dedupe = options.dedupe ?? false;
  const { k, experts } = routing;
  positiveInteger('routing k', k);
  if (experts.length % k !== 0)
    throw new InvalidArgumentError('routing experts', experts.length, `must be a multiple of k (${k})`);
  const tokens = experts.length / k;
  const expertDevice = placeExperts(numExperts, devices, options.placement ?? 'round-robin');
  const tokenDevice = shardTokens(tokens, devices, options.tokenDevice);
  const flops = expertFlopsOf(options.expertFlops, numExperts);

  const dispatchRows = new Float64Array(devices * devices);
  const rowsPerDevice = new Float64Array(devices);
  const flopsPerDevice = new Float64Array(devices);
  const seen = new Int32Array(devices).fill(-1); // dedupe: the last token sent to each device
  let keptSlots = 0;
  let localSlots = 0;
  for (let t = 0; t < tokens; t++) {
    const src = tokenDevice[t]!;
    for (let j = 0; j < k; j++) {
      const e = experts[t * k + j]!;
      if (e < 0) continue;
      if (!(Number.isInteger(e) && e < numExperts))
        throw new InvalidArgumentError('routed expert', e, `must be -1 (dropped) or in [0, ${numExperts})`);
      const dst = expertDevice[e]!;
      keptSlots++;
      if (dst === src) localSlots++;
      rowsPerDevice[dst]!++;
      flopsPerDevice[dst]! += flops[e]!;
      if (dedupe && seen[dst] === t) continue;
      seen[dst] = t;
      dispatchRows[src * devices + dst]!++;
    }
  }
  const rowBytes = options.width * bytesPerValue;
  const dispatchBytes = dispatchRows.map((r) => r * rowBytes);
  const combineBytes = new Float64Array(devices * devices);
  const sentBytes = new Float64Array(devices);
  const receivedBytes = new Float64Array(devices);
  let crossing = 0;
  for (let s = 0; s < devices; s++)
    for (let d = 0; d < devices; d++) {
      const b = dispatchBytes[s * devices + d]!;
      combineBytes[d * devices + s] = b;
      if (s === d) continue;
      crossing += b;
      sentBytes[s]! += b;
      receivedBytes[d]! += b;
    }
  return {
    numExperts,
    devices,
    tokens,
    width: options.width,
    bytesPerValue,
    dedupe,
    expertDevice,
    tokenDevice,
    dispatchRows,
    dispatchBytes,
    combineBytes,
    allToAll: { dispatch: crossing, combine: crossing },
    sentBytes,
    receivedBytes,
    rowsPerDevice,
    flopsPerDevice,
    rowLoad: spread(rowsPerDevice),
    flopLoad: spread(flopsPerDevice),
    keptSlots,
    localSlots,
    localShare: keptSlots === 0 ? 1 : localSlots / keptSlots,
  };
}
