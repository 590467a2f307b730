// TEAL: magnitude thresholds per (block, site) at a target sparsity, applied through hooks.
import { type HookHandle, type Hooks, InvalidArgumentError } from '@sparsekit/core';
import type { ActivationCalibration } from './calibrate.js';
import { type ActivationSite, siteKey } from './sites.js';

/** One site's threshold: values with |x| <= threshold are dropped. */
export interface ThresholdEntry {
  block: number;
  site: ActivationSite;
  /** The share of calibration values the threshold drops. */
  sparsity: number;
  threshold: number;
}

export interface Thresholds {
  /** How the per-site sparsities were chosen. */
  method: 'teal-uniform' | 'teal-custom' | 'cats';
  /** The model-wide target (uniform: every site's). */
  sparsity: number;
  entries: ThresholdEntry[];
}

/**
 * TEAL's thresholds from a calibration: every calibrated (block, site) at `sparsity` (uniform), or
 * at `sparsity(block, site)` (e.g. a greedy allocation).
 */
export function tealThresholds(
  calibration: ActivationCalibration,
  sparsity: number | ((block: number, site: ActivationSite) => number),
): Thresholds {
  const entries: ThresholdEntry[] = [];
  for (let block = 0; block < calibration.numBlocks; block++) {
    for (const site of calibration.sites) {
      const s = typeof sparsity === 'number' ? sparsity : sparsity(block, site);
      if (!(s >= 0 && s < 1))
        throw new InvalidArgumentError(`sparsity of block ${block} ${site}`, s, 'must be in [0, 1)');
      entries.push({ block, site, sparsity: s, threshold: calibration.histogram(block, site).threshold(s) });
    }
  }
  const mean = entries.reduce((a, e) => a + e.sparsity, 0) / Math.max(1, entries.length);
  return { method: typeof sparsity === 'number' ? 'teal-uniform' : 'teal-custom', sparsity: mean, entries };
}

/**
 * CATS' thresholds (ScalingIntelligence/CATS): one per block on |act(gate)| (the `mlp.gate` site,
 * gated MLPs only), at `sparsity`: act(gate) values at or below it are zeroed before the product
 * with up, so down_proj reads zeros there too. The calibration must include `mlp.gate`. CATS takes
 * its threshold from a 5000-bin histogram over [-5, 5]; here it is the calibration's quantile
 * (exact for small data), which that histogram approximates.
 */
export function catsThresholds(calibration: ActivationCalibration, sparsity: number): Thresholds {
  if (!calibration.sites.includes('mlp.gate'))
    throw new InvalidArgumentError(
      'calibration sites',
      calibration.sites.join(', '),
      "CATS needs 'mlp.gate' calibrated",
    );
  if (!(sparsity >= 0 && sparsity < 1))
    throw new InvalidArgumentError('sparsity', sparsity, 'must be in [0, 1)');
  const entries: ThresholdEntry[] = [];
  for (let block = 0; block < calibration.numBlocks; block++)
    entries.push({
      block,
      site: 'mlp.gate',
      sparsity,
      threshold: calibration.histogram(block, 'mlp.gate').threshold(sparsity),
    });
  return { method: 'cats', sparsity, entries };
}

export interface ApplyOptions {
  /**
   * Which tokens of a call are sparsified: 'all' (default: every token, as decode sees them) or
   * 'last-half' (TEAL's prefill: only the last floor(seq / 2) tokens of a multi-token call).
   */
  tokens?: 'all' | 'last-half';
}

/** Zeros counted at each site while thresholds are applied. */
export interface AppliedSparsity {
  block: number;
  site: ActivationSite;
  zeros: number;
  values: number;
}

export interface AppliedThresholds extends HookHandle {
  /** The sparsity measured at each site since the thresholds were applied (zeros over values). */
  measured(): AppliedSparsity[];
  /** Zeros over values across every site. */
  overall(): number;
}

/**
 * Apply thresholds as hooks: at each (block, site), values with |x| <= t become 0 (TEAL's
 * `x.abs().gt(t) * x`). Threshold 0 drops only exact zeros, leaving the model's outputs unchanged.
 */
export function applyThresholds(
  hooks: Hooks,
  thresholds: Thresholds,
  options: ApplyOptions = {},
): AppliedThresholds {
  const bySite = new Map<string, { t: number; stats: AppliedSparsity }>();
  for (const e of thresholds.entries) {
    if (!(e.threshold >= 0))
      throw new InvalidArgumentError(`threshold of block ${e.block} ${e.site}`, e.threshold, 'must be >= 0');
    bySite.set(siteKey(e.block, e.site), {
      t: e.threshold,
      stats: { block: e.block, site: e.site, zeros: 0, values: 0 },
    });
  }
  const sites = [...new Set(thresholds.entries.map((e) => e.site))];
  const lastHalf = options.tokens === 'last-half';
  const handle = hooks.add(sites, (tensor, context) => {
    const entry = bySite.get(siteKey(context.block, context.site as ActivationSite));
    if (entry === undefined) return;
    const x = tensor.data;
    const width = tensor.shape.at(-1)!;
    const seq = context.seq;
    const out = x.slice();
    const t = entry.t;
    let zeros = 0;
    let values = 0;
    for (let row = 0; row < x.length / width; row++) {
      if (lastHalf && seq > 1 && row % seq < seq - Math.floor(seq / 2)) continue;
      const base = row * width;
      for (let i = base; i < base + width; i++) {
        const v = out[i]!;
        if (Math.abs(v) <= t) {
          if (v !== 0) out[i] = 0; // exact zeros (and -0) stay as they are
          zeros++;
        }
      }
      values += width;
    }
    entry.stats.zeros += zeros;
    entry.stats.values += values;
    return out;
  });
  const measured = () => [...bySite.values()].map((e) => ({ ...e.stats }));
  return {
    remove: () => handle.remove(),
    measured,
    overall: () => {
      const m = measured();
      const values = m.reduce((s, e) => s + e.values, 0);
      return values === 0 ? 0 : m.reduce((s, e) => s + e.zeros, 0) / values;
    },
  };
}
