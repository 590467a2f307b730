// Calibration: the distribution of every (block, site)'s activations over a calibration stream.
import { InvalidArgumentError, type ProgressOptions, type Tensor } from '@sparsekit/core';
import { type HistogramOptions, SiteHistogram } from './histogram.js';
import {
  ACTIVATION_SITES,
  type ActivationSite,
  checkSites,
  type HookableLM,
  runWithHooks,
  siteKey,
} from './sites.js';

export interface CalibrateOptions extends HistogramOptions, ProgressOptions {
  /** Sites to calibrate (default TEAL's four). */
  sites?: readonly ActivationSite[];
}

/** The activation distributions of a model: one histogram per (block, site). */
export class ActivationCalibration {
  constructor(
    readonly sites: readonly ActivationSite[],
    readonly numBlocks: number,
    readonly histograms: ReadonlyMap<string, SiteHistogram>,
    /** Calibration tokens the histograms were made from. */
    readonly tokens: number,
  ) {}

  histogram(block: number, site: ActivationSite): SiteHistogram {
    const h = this.histograms.get(siteKey(block, site));
    if (h === undefined)
      throw new InvalidArgumentError(
        'site',
        siteKey(block, site),
        'was not calibrated (see calibration.sites)',
      );
    return h;
  }
}

/**
 * Run the calibration batches ([batch, seq] token ids) through `model` and collect every chosen
 * site's activations of every block into its histogram (TEAL's grab_acts, streamed).
 */
export async function calibrateActivations(
  model: HookableLM,
  batches: readonly Tensor<'i32'>[],
  options: CalibrateOptions = {},
): Promise<ActivationCalibration> {
  const sites = checkSites(options.sites ?? ACTIVATION_SITES);
  const histograms = new Map<string, SiteHistogram>();
  for (let b = 0; b < model.numBlocks; b++)
    for (const site of sites) histograms.set(siteKey(b, site), new SiteHistogram(options));
  const tokens = await runWithHooks(
    model,
    batches,
    () =>
      model.hooks.add(sites, (tensor, context) => {
        histograms.get(siteKey(context.block, context.site as ActivationSite))?.add(tensor.data);
      }),
    'calibrate',
    options,
  );
  return new ActivationCalibration(sites, model.numBlocks, histograms, tokens);
}
