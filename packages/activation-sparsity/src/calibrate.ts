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

/**
 * What a calibration's histograms hold: the activations themselves (`magnitude`, for TEAL and CATS),
 * their change from one token to the next (`delta`), or CHESS' weighted |act(gate)| (`chess`).
 */
export const CALIBRATION_KINDS = ['magnitude', 'delta', 'chess'] as const;
export type CalibrationKind = (typeof CALIBRATION_KINDS)[number];

/** The activation distributions of a model: one histogram per (block, site). */
export class ActivationCalibration {
  constructor(
    readonly sites: readonly ActivationSite[],
    readonly numBlocks: number,
    readonly histograms: ReadonlyMap<string, SiteHistogram>,
    /** Calibration tokens the histograms were made from. */
    readonly tokens: number,
    readonly kind: CalibrationKind = 'magnitude',
    /** `chess`: per block (key `siteKey(block, 'mlp.gate')`) the mean |up| of each channel. */
    readonly channelScales: ReadonlyMap<string, Float32Array> = new Map(),
  ) {}

  /** A typed error unless the calibration is of `kind` (thresholds read only their own kind). */
  expectKind(kind: CalibrationKind, method: string): void {
    if (this.kind !== kind)
      throw new InvalidArgumentError(
        'calibration',
        this.kind,
        `${method} needs a '${kind}' calibration (${KIND_MAKERS[kind]})`,
      );
  }

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
 * Whether a magnitude calibration keeps |x| at `site` rather than x: act(gate) (CATS' site) is far
 * from the zero-mean symmetric distribution TEAL's icdf(0.5 + s / 2) assumes (SiLU is bounded
 * below by -0.28), so its thresholds come from the magnitudes, as CATS' own histogram of |act| does.
 */
export function binsMagnitudes(site: ActivationSite): boolean {
  return site === 'mlp.gate';
}

const KIND_MAKERS: Record<CalibrationKind, string> = {
  magnitude: 'calibrateActivations',
  delta: 'calibrateDeltas',
  chess: 'calibrateChess',
};

/**
 * Run the calibration batches ([batch, seq] token ids) through `model` and collect every chosen
 * site's activations of every block into its histogram (TEAL's grab_acts, streamed).
 */
export async function calibrateActivations(
  model: HookableLM,
  batches: readonly Tensor<'i32'>[],
  options: CalibrateOptions = {},
): Promise<ActivationCalibration> {
  return collectHistograms(model, batches, options, 'magnitude', 'calibrate', (tensor, site) =>
    binsMagnitudes(site) ? tensor.data.map(Math.abs) : tensor.data,
  );
}

/**
 * One histogram per (block, site) of `options.sites` (default TEAL's), fed with what `values` makes
 * of each hooked tensor (undefined: nothing), over the calibration batches.
 */
async function collectHistograms(
  model: HookableLM,
  batches: readonly Tensor<'i32'>[],
  options: CalibrateOptions,
  kind: CalibrationKind,
  stage: string,
  values: (tensor: Tensor<'f32'>, site: ActivationSite, seq: number) => ArrayLike<number> | undefined,
): Promise<ActivationCalibration> {
  const sites = checkSites(options.sites ?? ACTIVATION_SITES);
  const histograms = new Map<string, SiteHistogram>();
  for (let b = 0; b < model.numBlocks; b++)
    for (const site of sites)
      histograms.set(
        siteKey(b, site),
        new SiteHistogram({ ...options, nonNegative: kind === 'magnitude' && binsMagnitudes(site) }),
      );
  const tokens = await runWithHooks(
    model,
    batches,
    () =>
      model.hooks.add(sites, (tensor, context) => {
        const site = context.site as ActivationSite;
        const h = histograms.get(siteKey(context.block, site));
        const v = h === undefined ? undefined : values(tensor, site, context.seq);
        if (v !== undefined) h!.add(v);
      }),
    stage,
    options,
  );
  return new ActivationCalibration(sites, model.numBlocks, histograms, tokens, kind);
}

/**
 * The distribution of each site's change between consecutive tokens of a sequence (x_t - x_{t-1}),
 * for delta sparsity: the first token of each sequence has no predecessor and is not counted.
 */
export async function calibrateDeltas(
  model: HookableLM,
  batches: readonly Tensor<'i32'>[],
  options: CalibrateOptions = {},
): Promise<ActivationCalibration> {
  return collectHistograms(model, batches, options, 'delta', 'calibrate deltas', (tensor, _site, seq) => {
    if (seq < 2) return undefined;
    const x = tensor.data;
    const width = tensor.shape.at(-1)!;
    const deltas = new Float32Array((x.length / width / seq) * (seq - 1) * width);
    let o = 0;
    for (let row = 0; row < x.length / width; row++) {
      if (row % seq === 0) continue;
      for (let i = row * width; i < (row + 1) * width; i++) deltas[o++] = x[i]! - x[i - width]!;
    }
    return deltas;
  });
}
