// One decode step of one layer's attention, for speed measurements (the benchmark and the CLI):
// every key/value head's lane runs the policy's `select`, then the backend's attention over what it
// chose. Lanes of random keys and values live in the backend's storage, as a model's KV cache does.
import { InvalidArgumentError, type KvLane, type KvPolicy, Rng } from '@sparsekit/core';
import type { Backend } from '@sparsekit/sparse-formats';

export interface SyntheticLayer {
  readonly lanes: readonly KvLane[];
  /** Per lane, the group's queries [group, headDim]. */
  readonly queries: readonly Float32Array[];
  readonly group: number;
  /** Give the lanes' storage back. */
  dispose(): void;
}

/** A layer's KV lanes at `context` entries (layer index 2: past the policies' dense layers). */
export function syntheticLayer(
  backend: Backend,
  shape: {
    context: number;
    kvHeads: number;
    group: number;
    headDim: number;
    pageSize?: number;
    seed?: number;
  },
): SyntheticLayer {
  const { context, kvHeads, group, headDim } = shape;
  for (const [name, v] of Object.entries({ context, kvHeads, group, headDim }))
    if (!Number.isInteger(v) || v < 1) throw new InvalidArgumentError(name, v, 'must be a positive integer');
  const rng = new Rng(shape.seed ?? 1);
  const allocate = (n: number) => backend.allocate?.(n) ?? new Float32Array(n);
  const lanes: KvLane[] = Array.from({ length: kvHeads }, (_, kvHead) => {
    const keys = allocate(context * headDim);
    const values = allocate(context * headDim);
    keys.set(rng.normalArray(context * headDim));
    values.set(rng.normalArray(context * headDim));
    const positions = Int32Array.from({ length: context }, (_, i) => i);
    return {
      layer: 2,
      sequence: 0,
      kvHead,
      headDim,
      pageSize: shape.pageSize ?? 16,
      length: context,
      keys,
      values,
      positions,
    };
  });
  return {
    lanes,
    queries: lanes.map(() => rng.normalArray(group * headDim, 0, 2)),
    group,
    dispose() {
      for (const lane of lanes) {
        backend.free?.(lane.keys as Float32Array);
        backend.free?.(lane.values as Float32Array);
      }
    },
  };
}

/** Run one decode step over every lane; returns the mean entries read per lane. */
export function decodeLayerStep(
  backend: Backend,
  layer: SyntheticLayer,
  policy: KvPolicy | undefined,
  out = new Float32Array(layer.group * (layer.lanes[0]?.headDim ?? 0)),
): number {
  let read = 0;
  for (const [i, lane] of layer.lanes.entries()) {
    const q = layer.queries[i]!;
    const chosen = policy?.select?.(lane, {
      q,
      heads: layer.group,
      seq: 1,
      position: lane.length - 1,
      block: lane.layer,
    });
    backend.attention({
      q,
      heads: layer.group,
      seq: 1,
      headDim: lane.headDim,
      keys: lane.keys,
      values: lane.values,
      keyLength: lane.length,
      out,
      mask: chosen === undefined ? { kind: 'causal' } : { kind: 'positions', positions: chosen },
    });
    read += chosen?.length ?? lane.length;
  }
  return read / layer.lanes.length;
}
