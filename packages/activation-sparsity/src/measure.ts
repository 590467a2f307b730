// Measuring activation sparsity: per (block, site) the share of inactive values, token-level sparsity
// (TLS), chunk-level sparsity (CLS, BlockFFN's: a channel inactive across k consecutive tokens), and
// how often each channel fires (the lazy-neuron curve by width; by depth it is the per-block TLS).
import type { BlockwiseLM, ProgressOptions, Tensor } from '@sparsekit/core';
import {
  ACTIVATION_SITES,
  type ActivationSite,
  checkSites,
  type HookableLM,
  runWithHooks,
  siteKey,
} from './sites.js';

export interface MeasureOptions extends ProgressOptions {
  sites?: readonly ActivationSite[];
  /** A value is inactive when |a| <= eps (default 0: exact zeros, as ReLU models give). */
  eps?: number;
  /** Chunk length k of chunk-level sparsity (default 8). */
  chunk?: number;
}

export interface SiteSparsity {
  block: number;
  site: ActivationSite;
  width: number;
  tokens: number;
  /** Token-level sparsity: the mean over tokens of the share of channels inactive. */
  tls: number;
  /** Chunk-level sparsity: the mean over chunks of k consecutive tokens of the share of channels inactive in all k. */
  cls: number;
  /** Per channel: the share of tokens where it is active. */
  channelActivity: Float64Array;
}

export interface SparsityMeasurement {
  eps: number;
  chunk: number;
  sites: SiteSparsity[];
  /** Inactive values over all values, across every measured site. */
  overall: number;
}

/** Measure the activation sparsity of `model` on `batches` ([batch, seq] token ids). */
export async function measureActivations(
  model: HookableLM,
  batches: readonly Tensor<'i32'>[],
  options: MeasureOptions = {},
): Promise<SparsityMeasurement> {
  const sites = checkSites(options.sites ?? ACTIVATION_SITES);
  const eps = options.eps ?? 0;
  const chunk = options.chunk ?? 8;
  const acc = new Map<
    string,
    {
      block: number;
      site: ActivationSite;
      width: number;
      tokens: number;
      inactive: number;
      chunks: number;
      chunkInactive: number;
      active: Float64Array;
    }
  >();
  const register = () =>
    model.hooks.add(sites, (tensor, context) => {
      const width = tensor.shape.at(-1)!;
      const key = siteKey(context.block, context.site as ActivationSite);
      let a = acc.get(key);
      if (a === undefined) {
        a = {
          block: context.block,
          site: context.site as ActivationSite,
          width,
          tokens: 0,
          inactive: 0,
          chunks: 0,
          chunkInactive: 0,
          active: new Float64Array(width),
        };
        acc.set(key, a);
      }
      const x = tensor.data;
      const seq = context.seq;
      const sequences = x.length / width / seq;
      const chunkActive = new Uint8Array(width);
      for (let s = 0; s < sequences; s++) {
        for (let start = 0; start < seq; start += chunk) {
          const end = Math.min(seq, start + chunk);
          chunkActive.fill(0);
          for (let t = start; t < end; t++) {
            const base = (s * seq + t) * width;
            for (let c = 0; c < width; c++) {
              if (Math.abs(x[base + c]!) > eps) {
                a.active[c]!++;
                chunkActive[c] = 1;
              } else a.inactive++;
            }
          }
          // Only whole chunks count (a last, shorter chunk would look sparser than k tokens do).
          if (end - start === chunk) {
            let off = 0;
            for (let c = 0; c < width; c++) if (chunkActive[c] === 0) off++;
            a.chunkInactive += off / width;
            a.chunks++;
          }
        }
      }
      a.tokens += sequences * seq;
    });
  await runWithHooks(model, batches, register, 'measure', options);
  let inactive = 0;
  let values = 0;
  const out: SiteSparsity[] = [];
  for (const a of [...acc.values()].sort(
    (p, q) => p.block - q.block || sites.indexOf(p.site) - sites.indexOf(q.site),
  )) {
    inactive += a.inactive;
    values += a.tokens * a.width;
    out.push({
      block: a.block,
      site: a.site,
      width: a.width,
      tokens: a.tokens,
      tls: a.inactive / (a.tokens * a.width),
      cls: a.chunks === 0 ? Number.NaN : a.chunkInactive / a.chunks,
      channelActivity: a.active.map((n) => n / a.tokens),
    });
  }
  return { eps, chunk, sites: out, overall: values === 0 ? 0 : inactive / values };
}

/**
 * The share of the blocks' linear weights a sparse decode need not read, given each (block, site)'s
 * measured sparsity (TEAL's effective sparsity, in parameters): zeros at `attention.input` skip
 * those columns of q, k and v; at `attention.output`, of o; at `mlp.input`, of gate and up; at
 * `mlp.hidden`, of down; at `mlp.gate` (CATS, CHESS), of down and the matching rows of up.
 */
export function weightsSkipped(
  model: Pick<BlockwiseLM, 'numBlocks' | 'blockLinearLayers'>,
  measured: readonly { block: number; site: ActivationSite; zeros: number; values: number }[],
): number {
  let total = 0;
  let skipped = 0;
  const share = new Map(
    measured.map((m) => [siteKey(m.block, m.site), m.values === 0 ? 0 : m.zeros / m.values]),
  );
  for (let block = 0; block < model.numBlocks; block++) {
    const layers = model.blockLinearLayers(block);
    const size = (suffix: string) =>
      layers
        .filter((l) => l.name.endsWith(`${suffix}_proj`))
        .reduce((s, l) => s + l.inFeatures * l.outFeatures, 0);
    total += layers.reduce((s, l) => s + l.inFeatures * l.outFeatures, 0);
    const at = (site: ActivationSite) => share.get(siteKey(block, site)) ?? 0;
    const readers: Array<[ActivationSite, string[]]> = [
      ['attention.input', ['q', 'k', 'v']],
      ['attention.output', ['o']],
      ['mlp.input', ['gate', 'up']],
    ];
    for (const [site, names] of readers) skipped += at(site) * names.reduce((s, n) => s + size(n), 0);
    // down's input is zero where act(gate) was dropped or the hidden value was: the larger share counts.
    const gate = at('mlp.gate');
    skipped += Math.max(gate, at('mlp.hidden')) * size('down') + gate * size('up');
  }
  return total === 0 ? 0 : skipped / total;
}
