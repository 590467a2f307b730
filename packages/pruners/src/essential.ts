// The essential-sparsity sweep (Jaiswal et al., 2023): one-shot magnitude pruning at rising
// sparsity, and the sparsity up to which the model stays close to dense.
import { InvalidArgumentError, type ProgressOptions, reportProgress } from '@sparsekit/core';
import { checkSparsity } from './masks.js';

export interface SweepPoint {
  sparsity: number;
  /** The metric at this sparsity (lower is better, e.g. perplexity). */
  value: number;
}

export interface EssentialSparsity {
  dense: number;
  points: SweepPoint[];
  /**
   * The highest sparsity before the sweep first leaves `tolerance` (relative) of dense: every level up
   * to it is within tolerance (0 when the first level is not). A later level back within tolerance
   * (noise) does not count.
   */
  essential: number;
  /** Where the curve bends most: the largest second difference of log(metric) over the sweep. */
  knee: number;
}

/**
 * Sweep `levels` (ascending, each in [0, 1)); `evaluate(s)` must prune a fresh copy of the model at
 * sparsity s (0 = dense) and return the metric.
 */
export async function essentialSparsity(
  levels: readonly number[],
  evaluate: (sparsity: number) => Promise<number> | number,
  options: ProgressOptions & { tolerance?: number } = {},
): Promise<EssentialSparsity> {
  const tolerance = options.tolerance ?? 0.05;
  if (!(tolerance >= 0)) throw new InvalidArgumentError('tolerance', tolerance, 'must be >= 0');
  if (levels.length < 3)
    throw new InvalidArgumentError('levels', levels.length, 'the sweep needs at least 3 levels');
  levels.forEach((s, i) => {
    checkSparsity(s);
    if (i > 0 && s <= levels[i - 1]!)
      throw new InvalidArgumentError('levels', levels, 'must be strictly increasing');
  });
  const dense = await evaluate(0);
  const points: SweepPoint[] = [];
  for (const s of levels) {
    points.push({ sparsity: s, value: await evaluate(s) });
    reportProgress(options, { stage: 'sweep', current: points.length, total: levels.length, unit: 'level' });
  }
  let essential = 0;
  for (const p of points) {
    if (p.value <= dense * (1 + tolerance)) essential = p.sparsity;
    else break;
  }
  const logs = [Math.log(dense), ...points.map((p) => Math.log(p.value))];
  const xs = [0, ...points.map((p) => p.sparsity)];
  let knee = points[0]!.sparsity;
  let best = Number.NEGATIVE_INFINITY;
  for (let i = 1; i + 1 < logs.length; i++) {
    const left = (logs[i]! - logs[i - 1]!) / (xs[i]! - xs[i - 1]!);
    const right = (logs[i + 1]! - logs[i]!) / (xs[i + 1]! - xs[i]!);
    if (right - left > best) {
      best = right - left;
      knee = xs[i]!;
    }
  }
  return { dense, points, essential, knee };
}
