// Methods that allocate sparsity across layers: global magnitude with a floor per layer, and random
// pruning with uniform or Erdős–Rényi-Kernel (ERK) layer densities. They need no calibration data.
import {
  type BlockwiseLM,
  InvalidArgumentError,
  type LinearLayer,
  type ProgressOptions,
  Rng,
  reportProgress,
  Tensor,
} from '@sparsekit/core';
import { markLowest, measuredSparsity } from '@sparsekit/sparse-formats';
import { checkSparsity, checkWeight, magnitudes } from '../masks.js';
import { pqIndex } from '../metrics.js';
import type { PruneReport } from '../prune-model.js';

export interface AllocationReport {
  /** Fraction pruned in each layer, in the order given. */
  sparsities: number[];
  /** Zeros over all weights of the layers. */
  sparsity: number;
  /**
   * Seconds spent on each layer: its checks, mask and write-back (global magnitude's threshold
   * search, shared by all layers, is not in them).
   */
  seconds: number[];
}

/** Write the pruned weights back; `seconds[i]` so far is added to each layer's write-back time. */
function finish(
  layers: readonly LinearLayer[],
  weights: Float32Array[],
  seconds: number[],
): AllocationReport {
  let zeros = 0;
  let total = 0;
  const sparsities = weights.map((w, i) => {
    const t0 = performance.now();
    let z = 0;
    for (const v of w) if (v === 0) z++;
    zeros += z;
    total += w.length;
    const l = layers[i]!;
    l.setWeight(new Tensor('f32', [l.outFeatures, l.inFeatures], w));
    seconds[i]! += (performance.now() - t0) / 1000;
    return z / w.length;
  });
  return { sparsities, sparsity: zeros / total, seconds };
}

/**
 * Global magnitude pruning: one threshold over all the layers' weights, except that no layer keeps
 * fewer than `minKeep` of its weights (pruning everything in a layer collapses the model); the
 * threshold is found by bisection, and weights tied at it are taken in layer then index order, so
 * that exactly floor(sparsity * total) weights are pruned (fewer only where the floors forbid more).
 */
export function globalMagnitude(
  layers: readonly LinearLayer[],
  sparsity: number,
  minKeep = 0.01,
  progress: ProgressOptions = {},
): AllocationReport {
  checkSparsity(sparsity);
  if (!(minKeep >= 0 && minKeep <= 1 - sparsity)) {
    throw new InvalidArgumentError(
      'minKeep',
      minKeep,
      `must be in [0, 1 - sparsity]: at sparsity ${sparsity} every layer can keep at most ${Number((1 - sparsity).toPrecision(6))} of its weights (lower minKeep, CLI --min-keep, or the sparsity)`,
    );
  }
  const seconds = layers.map(() => 0);
  const timed = <T>(i: number, f: () => T): T => {
    const t0 = performance.now();
    const out = f();
    seconds[i]! += (performance.now() - t0) / 1000;
    return out;
  };
  const weights = layers.map((l, i) =>
    timed(i, () => {
      const w = Float32Array.from(l.getWeight().data);
      checkWeight(w, l.outFeatures, l.inFeatures, `${l.name} weight`);
      return w;
    }),
  );
  const scores = weights.map((w, i) => timed(i, () => magnitudes(w)));
  const sorted = scores.map((s) => Float64Array.from(s).sort());
  const total = weights.reduce((n, w) => n + w.length, 0);
  const goal = Math.floor(sparsity * total);
  // Pruned count of layer i at threshold t: entries with |w| < t, capped by the floor.
  const prunedAt = (t: number) =>
    sorted.map((s) => {
      let lo = 0;
      let hi = s.length;
      while (lo < hi) {
        const mid = (lo + hi) >> 1;
        if (s[mid]! < t) lo = mid + 1;
        else hi = mid;
      }
      return Math.min(lo, Math.floor(s.length * (1 - minKeep)));
    });
  let lo = 0;
  let hi = Math.max(...sorted.map((s) => (s.length === 0 ? 0 : s[s.length - 1]!))) * 2 + 1;
  for (let it = 0; it < 100; it++) {
    const mid = (lo + hi) / 2;
    if (prunedAt(mid).reduce((a, b) => a + b, 0) < goal) lo = mid;
    else hi = mid;
  }
  // Below `lo` fewer than the goal are pruned, below `hi` at least the goal: the entries in between
  // tie at one magnitude. Take just enough of them, layer by layer, to reach the goal exactly.
  const below = prunedAt(lo);
  const upTo = prunedAt(hi);
  let extra = goal - below.reduce((a, b) => a + b, 0);
  const counts = below.map((c, i) => {
    const take = Math.max(0, Math.min(upTo[i]! - c, extra));
    extra -= take;
    return c + take;
  });
  // Prune each layer's `counts[i]` smallest magnitudes (ties by index).
  for (const [i, w] of weights.entries()) {
    timed(i, () => {
      const mask = new Uint8Array(w.length);
      markLowest(scores[i]!, counts[i]!, mask);
      for (let k = 0; k < w.length; k++) if (mask[k] === 1) w[k] = 0;
    });
    reportProgress(progress, { stage: 'prune', current: i + 1, total: layers.length, unit: 'layer' });
  }
  return finish(layers, weights, seconds);
}

export interface RandomPruneOptions extends ProgressOptions {
  sparsity: number;
  /** 'uniform': every layer at `sparsity`; 'erk': densities proportional to (in + out) / (in * out). */
  distribution?: 'uniform' | 'erk';
  seed?: number;
}

/**
 * Per-layer densities of the Erdős–Rényi(-Kernel) allocation (RigL), capped at 1 (a layer that would
 * exceed it is made dense and the rest rescaled), reaching 1 - sparsity overall. A layer's raw density
 * is sum(dims) / prod(dims): (in + out) / (in out) for a matrix (Erdős–Rényi), (h + w + in + out) /
 * (h w in out) for a convolution kernel (ERK).
 */
export function erkDensities(shapes: ReadonlyArray<readonly number[]>, sparsity: number): number[] {
  checkSparsity(sparsity);
  const sizes = shapes.map((s) => s.reduce((a, b) => a * b, 1));
  const raw = shapes.map((s, i) => s.reduce((a, b) => a + b, 0) / sizes[i]!);
  const dense = new Set<number>();
  const budget = (1 - sparsity) * sizes.reduce((a, b) => a + b, 0);
  for (;;) {
    const denseParams = [...dense].reduce((n, i) => n + sizes[i]!, 0);
    const scaled = sizes.reduce((n, s, i) => (dense.has(i) ? n : n + raw[i]! * s), 0);
    const epsilon = (budget - denseParams) / scaled;
    const densities = raw.map((d, i) => (dense.has(i) ? 1 : epsilon * d));
    const over = densities.findIndex((d, i) => d > 1 && !dense.has(i));
    if (over < 0) return densities;
    dense.add(over);
  }
}

/** Random pruning with exactly round(size * layer sparsity) weights removed per layer, seeded. */
export function randomPrune(layers: readonly LinearLayer[], options: RandomPruneOptions): AllocationReport {
  checkSparsity(options.sparsity);
  const rng = new Rng(options.seed ?? 0);
  const densities =
    options.distribution === 'erk'
      ? erkDensities(
          layers.map((l) => [l.outFeatures, l.inFeatures] as const),
          options.sparsity,
        )
      : layers.map(() => 1 - options.sparsity);
  const seconds: number[] = [];
  const weights = layers.map((l, i) => {
    const t0 = performance.now();
    const w = Float32Array.from(l.getWeight().data);
    checkWeight(w, l.outFeatures, l.inFeatures, `${l.name} weight`);
    const prune = Math.round(w.length * (1 - densities[i]!));
    for (const k of rng.sample(w.length, prune)) w[k] = 0;
    seconds.push((performance.now() - t0) / 1000);
    reportProgress(options, { stage: 'prune', current: i + 1, total: layers.length, unit: 'layer' });
    return w;
  });
  return finish(layers, weights, seconds);
}

export interface AllocationModelOptions extends ProgressOptions {
  method: 'global-magnitude' | 'random';
  /** Overall target over the selected layers. */
  sparsity: number;
  /** Global magnitude: the smallest fraction of its weights any layer keeps (default 0.01). */
  minKeep?: number;
  /** Random: layer densities (default 'uniform') and the seed of the draw (default 0). */
  distribution?: 'uniform' | 'erk';
  seed?: number;
  /** Which decoder linear layers take part (default: all). */
  filter?: (name: string) => boolean;
  /** Recorded in the report. */
  recipe?: unknown;
}

/**
 * Global magnitude or random pruning over a model's decoder linear layers, reported as `pruneModel`
 * reports (per layer: pattern, measured sparsity, PQ Index; no calibration, so no reconstruction error).
 */
export function pruneAllocation(model: BlockwiseLM, options: AllocationModelOptions): PruneReport {
  const start = performance.now();
  const filter = options.filter ?? (() => true);
  const layers = model.linearLayers().filter((l) => filter(l.name));
  if (layers.length === 0) throw new InvalidArgumentError('layers', 0, 'no layer is selected');
  const allocation =
    options.method === 'global-magnitude'
      ? globalMagnitude(layers, options.sparsity, options.minKeep, options)
      : randomPrune(layers, {
          ...(options.onProgress === undefined ? {} : { onProgress: options.onProgress }),
          ...(options.signal === undefined ? {} : { signal: options.signal }),
          sparsity: options.sparsity,
          ...(options.distribution === undefined ? {} : { distribution: options.distribution }),
          ...(options.seed === undefined ? {} : { seed: options.seed }),
        });
  const seconds = (performance.now() - start) / 1000;
  return {
    method: options.method,
    pattern: { sparsity: options.sparsity },
    calibrationTokens: 0,
    ...(options.recipe === undefined ? {} : { recipe: options.recipe }),
    layers: layers.map((l, i) => {
      const w = l.getWeight().data;
      return {
        name: l.name,
        rows: l.outFeatures,
        cols: l.inFeatures,
        pattern: { sparsity: allocation.sparsities[i]! },
        sparsity: measuredSparsity(w),
        pqIndex: pqIndex(w),
        reconstructionError: Number.NaN,
        seconds: allocation.seconds[i]!,
      };
    }),
    sparsity: allocation.sparsity,
    seconds,
  };
}
