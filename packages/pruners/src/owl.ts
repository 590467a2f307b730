// OWL (Yin et al., 2023, "Outlier Weighed Layerwise Sparsity"), after the reference
// `prune_wanda_outlier`: a first pass measures, per decoder block, the share of Wanda scores above M
// times the block's mean score; blocks with more outliers get lower sparsity. As in the reference,
// the ratios are scaled onto [0, 2 lambda] and shifted so that the average sparsity is the target:
// the sparsities span 2 lambda (at most), not necessarily centred on the target.
import {
  type BlockwiseLM,
  calibrationHooks,
  InvalidArgumentError,
  type LinearLayer,
  type Tensor,
} from '@sparsekit/core';
import { InputNormAccumulator } from '@sparsekit/sparse-formats';
import { checkSparsity } from './masks.js';
import { wandaScores } from './methods/wanda.js';

export interface OwlOptions {
  /** Outlier threshold as a multiple of the block's mean score (the paper's M, default 5). */
  m?: number;
  /** Half the width of the range the block sparsities span (the paper's lambda, default 0.08). */
  lambda?: number;
}

export interface OwlAllocation {
  outlierRatios: number[];
  /** Sparsity per block. */
  sparsities: number[];
}

/** Outlier ratios of each block (dense model, calibration `batches`) and the resulting sparsities. */
export function owlSparsities(
  model: BlockwiseLM,
  batches: readonly Tensor<'i32'>[],
  sparsity: number,
  options: OwlOptions = {},
): OwlAllocation {
  checkSparsity(sparsity);
  const m = options.m ?? 5;
  const lambda = options.lambda ?? 0.08;
  if (!(Number.isFinite(m) && m > 0)) {
    throw new InvalidArgumentError('m', m, 'must be a finite positive number (the paper uses 5)');
  }
  if (!(lambda >= 0 && lambda < 0.5)) {
    throw new InvalidArgumentError('lambda', lambda, 'must be in [0, 0.5) (the paper uses 0.08)');
  }
  if (batches.length === 0) throw new InvalidArgumentError('calibration', 0, 'OWL needs calibration batches');
  let hidden = batches.map((b) => model.embed(b));
  const ratios: number[] = [];
  for (let block = 0; block < model.numBlocks; block++) {
    const layers = model.blockLinearLayers(block);
    const norms = new Map<LinearLayer, InputNormAccumulator>(
      layers.map((l) => [l, new InputNormAccumulator(l.inFeatures)]),
    );
    for (const h of hidden)
      model.runBlock(block, h, { hooks: calibrationHooks((layer, x) => norms.get(layer)?.add(x)) });
    const scores = layers.map((l) =>
      wandaScores(l.getWeight().data, l.outFeatures, l.inFeatures, norms.get(l)!.scalerRow),
    );
    let sum = 0;
    let count = 0;
    for (const s of scores)
      for (const v of s) {
        sum += v;
        count++;
      }
    const threshold = (sum / count) * m;
    let outliers = 0;
    for (const s of scores) for (const v of s) if (v > threshold) outliers++;
    ratios.push(outliers / count);
    hidden = hidden.map((h) => model.runBlock(block, h));
  }
  const min = Math.min(...ratios);
  const max = Math.max(...ratios);
  const spread = ratios.map((r) => (max === min ? 0 : ((r - min) / (max - min)) * lambda * 2));
  const mean = spread.reduce((a, b) => a + b, 0) / spread.length;
  const sparsities = spread.map((d) => 1 - (d - mean + (1 - sparsity)));
  const bad = sparsities.findIndex((s) => !(s >= 0 && s < 1));
  if (bad >= 0) {
    throw new InvalidArgumentError(
      'lambda',
      lambda,
      `puts block ${bad} at sparsity ${sparsities[bad]!.toFixed(3)} (the blocks span 2 * lambda around an average of ${sparsity}); use a smaller lambda`,
    );
  }
  return { outlierRatios: ratios, sparsities };
}
