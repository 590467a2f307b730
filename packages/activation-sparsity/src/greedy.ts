// TEAL's greedy allocation (teal/greedyopt.py), per block: raise, one step at a time, the sparsity of
// the site whose increase grows the block's output error least, until the block reaches the target
// effective sparsity (sites weighted by the parameters of the projections that read them).
import {
  type BlockwiseLM,
  Hooks,
  InvalidArgumentError,
  type ProgressOptions,
  reportProgress,
  type Tensor,
} from '@sparsekit/core';
import { applyThresholds } from './apply.js';
import type { ActivationCalibration } from './calibrate.js';
import { type ActivationSite, type HookableLM, SITE_READERS } from './sites.js';
import type { ThresholdEntry, Thresholds } from './thresholds.js';

export interface GreedyOptions extends ProgressOptions {
  /** The effective (parameter-weighted) sparsity every block reaches. */
  target: number;
  /** TEAL's step: a site of weight w rises by step / w per round (default 0.05). */
  step?: number;
  /** No site goes beyond this sparsity (default 0.9, TEAL's last level). */
  maxSparsity?: number;
  /** The error is measured on the last share of each sequence's tokens (default 0.25, as TEAL). */
  lastShare?: number;
}

/** One point of a block's greedy path: the sparsities after a round, and what they give. */
export interface GreedyPoint {
  effective: number;
  error: number;
  sparsities: Partial<Record<ActivationSite, number>>;
}

export interface GreedyReport {
  thresholds: Thresholds;
  /**
   * Per block, the allocation after every round from all-dense to the target (TEAL's lookup table,
   * `lookup/layer-i/results.csv`): `greedyThresholdsAt` reads any lower target off it.
   */
  path: GreedyPoint[][];
  /** Per block: the sparsity chosen for each site, the effective sparsity and the final error. */
  blocks: Array<{
    block: number;
    sparsities: Partial<Record<ActivationSite, number>>;
    effective: number;
    error: number;
  }>;
}

/**
 * TEAL's greedy per-block allocation to a target effective sparsity. Differences from greedyopt.py:
 * q, k and v read one tensor here (the `attention.input` site), so they share one sparsity, as do gate
 * and up; a site's weight is the parameter count of the projections reading it over that of q.
 * The block inputs and targets come from the dense model on `batches`; thresholds come from the
 * (dense) calibration, as TEAL's lookup does.
 */
export async function greedyThresholds(
  model: HookableLM & BlockwiseLM,
  calibration: ActivationCalibration,
  batches: readonly Tensor<'i32'>[],
  options: GreedyOptions,
): Promise<GreedyReport> {
  const step = options.step ?? 0.05;
  const max = options.maxSparsity ?? 0.9;
  const lastShare = options.lastShare ?? 0.25;
  if (!(options.target >= 0 && options.target <= max))
    throw new InvalidArgumentError('target', options.target, `must be in [0, ${max}] (maxSparsity)`);
  if (!(step > 0 && step < 1)) throw new InvalidArgumentError('step', step, 'must be in (0, 1)');
  if (batches.length === 0)
    throw new InvalidArgumentError('batches', 0, 'greedy allocation needs calibration batches');
  const sites = calibration.sites;
  const entries: ThresholdEntry[] = [];
  const blocks: GreedyReport['blocks'] = [];
  const paths: GreedyPoint[][] = [];
  let hidden = batches.map((b) => model.embed(b));
  for (let block = 0; block < model.numBlocks; block++) {
    const weights = siteWeights(model, block, sites);
    const total = sites.reduce((s, site) => s + weights[site], 0);
    const targets = hidden.map((h) => model.runBlock(block, h));
    const sparsity = Object.fromEntries(sites.map((s) => [s, 0])) as Record<ActivationSite, number>;
    const errorOf = (config: Record<ActivationSite, number>): number => {
      const hooks = new Hooks();
      const thresholds: Thresholds = {
        method: 'teal-custom',
        sparsity: 0,
        entries: sites.map((site) => ({
          block,
          site,
          sparsity: config[site],
          threshold: calibration.histogram(block, site).threshold(config[site]),
        })),
      };
      applyThresholds(hooks, thresholds);
      let sum = 0;
      let count = 0;
      for (const [i, h] of hidden.entries()) {
        const out = model.runBlock(block, h, { hooks }).data;
        const want = targets[i]!.data;
        const width = h.shape.at(-1)!;
        const seq = h.shape.at(-2)!;
        const from = seq - Math.max(1, Math.floor(lastShare * seq));
        for (let row = 0; row < out.length / width; row++) {
          if (row % seq < from) continue;
          let e = 0;
          for (let c = row * width; c < (row + 1) * width; c++) e += (want[c]! - out[c]!) ** 2;
          sum += Math.sqrt(e);
          count++;
        }
      }
      return sum / count;
    };
    let effective = 0;
    let error = 0;
    const path: GreedyPoint[] = [{ effective: 0, error: errorOf(sparsity), sparsities: { ...sparsity } }];
    while (effective < options.target - 1e-12) {
      let best: { site: ActivationSite; error: number; value: number } | undefined;
      for (const site of sites) {
        if (sparsity[site] >= max) continue;
        const value = Math.min(max, sparsity[site] + step / weights[site]);
        const e = errorOf({ ...sparsity, [site]: value });
        if (best === undefined || e < best.error) best = { site, error: e, value };
      }
      if (best === undefined) break; // every site at its maximum
      sparsity[best.site] = best.value;
      error = best.error;
      effective = sites.reduce((s, site) => s + weights[site] * sparsity[site], 0) / total;
      path.push({ effective, error, sparsities: { ...sparsity } });
    }
    paths.push(path);
    for (const site of sites)
      entries.push({
        block,
        site,
        sparsity: sparsity[site],
        threshold: calibration.histogram(block, site).threshold(sparsity[site]),
      });
    blocks.push({ block, sparsities: { ...sparsity }, effective, error });
    hidden = targets;
    reportProgress(options, { stage: 'allocate', current: block + 1, total: model.numBlocks, unit: 'block' });
  }
  const mean = blocks.reduce((s, b) => s + b.effective, 0) / Math.max(1, blocks.length);
  return { thresholds: { method: 'teal-custom', sparsity: mean, entries }, blocks, path: paths };
}

/**
 * The greedy allocation at a lower `target` from a report's path: per block, the first point whose
 * effective sparsity reaches it (the path is the same whatever the final target, as in TEAL).
 */
export function greedyThresholdsAt(
  calibration: ActivationCalibration,
  report: Pick<GreedyReport, 'path'>,
  target: number,
): Thresholds {
  const entries: ThresholdEntry[] = [];
  let sum = 0;
  for (const [block, path] of report.path.entries()) {
    const point = path.find((p) => p.effective >= target - 1e-12);
    if (point === undefined)
      throw new InvalidArgumentError(
        'target',
        target,
        `is beyond block ${block}'s path (it reaches ${path.at(-1)?.effective ?? 0}); run greedyThresholds to it`,
      );
    sum += point.effective;
    for (const site of calibration.sites) {
      const s = point.sparsities[site] ?? 0;
      entries.push({ block, site, sparsity: s, threshold: calibration.histogram(block, site).threshold(s) });
    }
  }
  return { method: 'teal-custom', sparsity: sum / Math.max(1, report.path.length), entries };
}

/** Each site's weight: the parameters of the projections that read it, over those of q (TEAL's units). */
function siteWeights(
  model: BlockwiseLM,
  block: number,
  sites: readonly ActivationSite[],
): Record<ActivationSite, number> {
  const layers = model.blockLinearLayers(block);
  const size = (suffix: string) =>
    layers
      .filter((l) => l.name.endsWith(`${suffix}_proj`))
      .reduce((s, l) => s + l.inFeatures * l.outFeatures, 0);
  const unit = size('q');
  if (unit === 0)
    throw new InvalidArgumentError(
      'model',
      'no q_proj',
      'greedy allocation needs Llama-style projection names',
    );
  const out = {} as Record<ActivationSite, number>;
  for (const site of sites) {
    out[site] = SITE_READERS[site].reduce((s, r) => s + size(r), 0) / unit;
    if (out[site] === 0)
      throw new InvalidArgumentError(
        'site',
        site,
        "has no projection of its own to weigh it by: greedy allocation takes TEAL's four sites",
      );
  }
  return out;
}
