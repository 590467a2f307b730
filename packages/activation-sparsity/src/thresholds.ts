// Activation-sparsity rules per (block, site): TEAL's and CATS' magnitude thresholds, top-k per token
// (the lazy-neuron view) and delta sparsity; CHESS' channel-wise thresholds are in chess.ts.
import { InvalidArgumentError } from '@sparsekit/core';
import type { ActivationCalibration } from './calibrate.js';
import { type ActivationSite, checkSites } from './sites.js';

/**
 * One site's rule. By default values with |x| <= threshold are dropped; with `channels`, channel c's
 * own threshold is used (CHESS). `rule: 'top-k'` keeps the round((1 - sparsity) * width) largest |x|
 * of each token instead; `rule: 'delta'` keeps, per token, only the channels whose change since the
 * previous token's kept value exceeds the threshold (the others repeat their previous value).
 */
export interface ThresholdEntry {
  block: number;
  site: ActivationSite;
  /** The share of calibration values the rule drops (top-k: of each token's values). */
  sparsity: number;
  /** The magnitude threshold (top-k: unused, 0; CHESS: the weighted threshold T). */
  threshold: number;
  /** Per-channel thresholds (CHESS), one per value of a token at this site. */
  channels?: number[];
  rule?: 'top-k' | 'delta';
}

/** How the entries were made. */
export const THRESHOLD_METHODS = [
  'teal-uniform',
  'teal-custom',
  'cats',
  'chess',
  'chess+',
  'top-k',
  'delta',
  'fatrelu',
] as const;
export type ThresholdMethod = (typeof THRESHOLD_METHODS)[number];

export interface Thresholds {
  /** How the per-site sparsities were chosen. */
  method: ThresholdMethod;
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
  calibration.expectKind('magnitude', 'tealThresholds');
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
  calibration.expectKind('magnitude', 'catsThresholds');
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

/**
 * Top-k per token (The Lazy Neuron Phenomenon's top-k activations): at each site of every block, each
 * token keeps its round((1 - sparsity) * width) largest |x| and drops the rest. Needs no calibration.
 */
export function topKSparsity(
  numBlocks: number,
  sparsity: number,
  sites: readonly ActivationSite[] = ['mlp.hidden'],
): Thresholds {
  if (!(sparsity >= 0 && sparsity < 1))
    throw new InvalidArgumentError('sparsity', sparsity, 'must be in [0, 1)');
  if (!Number.isInteger(numBlocks) || numBlocks < 0)
    throw new InvalidArgumentError('numBlocks', numBlocks, 'must be a non-negative integer');
  checkSites(sites);
  const entries: ThresholdEntry[] = [];
  for (let block = 0; block < numBlocks; block++)
    for (const site of sites) entries.push({ block, site, sparsity, threshold: 0, rule: 'top-k' });
  return { method: 'top-k', sparsity, entries };
}

/**
 * Delta sparsity (temporal sparsity): from a `delta` calibration, per (block, site) the threshold on
 * |x_t - x_{t-1}| that a share `sparsity` of the changes falls under. Applied, a channel is updated
 * only when it moved by more than that since its last kept value.
 */
export function deltaThresholds(calibration: ActivationCalibration, sparsity: number): Thresholds {
  calibration.expectKind('delta', 'deltaThresholds');
  if (!(sparsity >= 0 && sparsity < 1))
    throw new InvalidArgumentError('sparsity', sparsity, 'must be in [0, 1)');
  const entries: ThresholdEntry[] = [];
  for (let block = 0; block < calibration.numBlocks; block++)
    for (const site of calibration.sites)
      entries.push({
        block,
        site,
        sparsity,
        threshold: calibration.histogram(block, site).threshold(sparsity),
        rule: 'delta',
      });
  return { method: 'delta', sparsity, entries };
}
