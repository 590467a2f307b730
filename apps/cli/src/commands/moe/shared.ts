// Pieces the moe subcommands share: labels, per-layer load and loss summaries, the text flag.
import type { LoadedModel } from '@sparsekit/models/node';
import {
  concatRouteResults,
  type LayerRoutings,
  loadBalancingLoss,
  loadMetrics,
  type MoeLayer,
  routerZLoss,
} from '@sparsekit/moe-router';
import { type Flags, stringFlag } from '../../args.js';
import { defaultText, readText } from '../../model-io.js';

export function textOf(flags: Flags, which: 'test' | 'calibration', dir: string): string {
  const path = stringFlag(flags, 'text');
  return path === undefined ? defaultText(which, dir, '--text') : readText(path, '--text');
}

export const plural = (n: number, unit: string) => `${n} ${unit}${n === 1 ? '' : 's'}`;

export function routerLabel(layer: MoeLayer): string {
  const name = (layer.router as { constructor?: { name?: string } }).constructor?.name;
  return name === undefined || name === 'Object' ? 'router' : name;
}

export function expertsPerToken(loaded: LoadedModel, layer: MoeLayer): number {
  const own = (layer.router as { k?: unknown }).k;
  return typeof own === 'number' ? own : (loaded.model.config.moe?.expertsPerToken ?? 1);
}

/** Per-layer load of everything one layer routed. */
export function layerLoad(layer: LayerRoutings) {
  const joined = concatRouteResults(layer.results, layer.numExperts);
  const m = loadMetrics(joined, layer.numExperts);
  return {
    block: layer.block,
    tokens: m.tokens,
    kept: m.kept,
    dropped: m.dropped,
    dropRate: m.dropRate,
    tokensWithoutExpert: m.tokensWithoutExpert,
    capacity: joined.capacity ?? null,
    tokensPerExpert: Array.from(m.tokensPerExpert),
    loadCv: m.loadCv,
    maxMeanLoad: m.maxMeanLoad,
  };
}

/** The router losses of everything one layer routed (the balancing loss of token-choice routings only). */
export function layerLosses(layer: LayerRoutings) {
  const joined = concatRouteResults(layer.results, layer.numExperts);
  return {
    balancingLoss: joined.layout === 'ranked' ? loadBalancingLoss(joined, { alpha: 1 }) : null,
    zLoss: routerZLoss(joined, 1),
  };
}
