// The routers by name, as data: a summary, the options each takes with their defaults, and a maker.
// Apps (a CLI flag, a server schema) offer them from this table.
import { InvalidArgumentError, type RouterInput } from '@sparsekit/core';
import type { Capacity } from './capacity.js';
import { cometRouter } from './comet.js';
import { expertChoice } from './expert-choice.js';
import type { RouterNoise } from './gate-logits.js';
import { type HashKey, hashRouter } from './hash.js';
import { reluRms } from './relu-rms.js';
import type { RouteResult } from './route-result.js';
import { type Normalize, softmaxTopK, switchRouter } from './top-k.js';

/** A core `Router` whose routings carry this package's extras. */
export interface RoutingRouter {
  readonly numExperts: number;
  route(input: RouterInput): RouteResult;
}

/** Settings every maker reads (each takes the ones its `options` lists). */
export interface RouterSettings {
  numExperts: number;
  k?: number;
  normalize?: Normalize;
  capacity?: Capacity;
  noise?: RouterNoise;
  jitterEps?: number;
  gateWeight?: Float32Array | Float64Array;
  training?: boolean;
  seed?: number;
  key?: HashKey;
  eps?: number;
  /** Width of the hidden states (COMET holds its own parameters over them). */
  width?: number;
}

export interface RouterEntry {
  readonly name: string;
  readonly summary: string;
  /** The settings it reads, with their defaults as text. */
  readonly options: Readonly<Record<string, string>>;
  /** How its routing lays out slots (see `RouteResult.layout`). */
  readonly layout: RouteResult['layout'];
  make(settings: RouterSettings): RoutingRouter;
}

const common = { gateWeight: 'none (use the model gate logits)', training: 'false', seed: '0' };

export const ROUTERS: readonly RouterEntry[] = [
  {
    name: 'top-k',
    summary:
      'softmax top-k (Mixtral / GShard): the k most probable experts, renormalised, optional noise and capacity',
    options: { k: '2', normalize: "'topk'", capacity: "'dropless'", noise: 'none', ...common },
    layout: 'ranked',
    make: (s) => softmaxTopK(s),
  },
  {
    name: 'switch',
    summary:
      'Switch top-1: the most probable expert scaled by its probability, capacity factor 1, jitter 0.01 in training',
    options: { capacity: "{ factor: 1, convention: 'switch' }", jitterEps: '0.01', ...common },
    layout: 'ranked',
    make: (s) => switchRouter(s),
  },
  {
    name: 'expert-choice',
    summary: 'expert choice: each expert takes its top-capacity tokens (0..E experts per token); not causal',
    options: { capacity: "{ factor: 2, convention: 'switch' }", noise: 'none', ...common },
    layout: 'per-expert',
    make: (s) => expertChoice(s),
  },
  {
    name: 'hash',
    summary: 'hash routing (Hash Layers): one expert per token by a fixed hash, weight 1, no learning',
    options: { key: "'hidden' (LSH of the hidden state)", seed: '0' },
    layout: 'ranked',
    make: (s) =>
      hashRouter({
        numExperts: s.numExperts,
        ...(s.key === undefined ? {} : { key: s.key }),
        ...(s.seed === undefined ? {} : { seed: s.seed }),
      }),
  },
  {
    name: 'relu-rms',
    summary:
      "BlockFFN's router: ReLU(logits) then RMSNorm over experts; every expert with a nonzero weight runs",
    options: { eps: '1e-6' },
    layout: 'per-expert',
    make: (s) => reluRms({ numExperts: s.numExperts, ...(s.eps === undefined ? {} : { eps: s.eps }) }),
  },
  {
    name: 'comet',
    summary:
      "COMET's tree gate: k smooth-step trees over the experts, at most k experts per token once sharp",
    options: { k: '2', width: 'required', seed: '0 (reference initialisation)' },
    layout: 'per-expert',
    make: (s) => {
      if (s.width === undefined)
        throw new InvalidArgumentError(
          'width',
          undefined,
          'the COMET gate needs the width of the hidden states',
        );
      return cometRouter({
        numExperts: s.numExperts,
        width: s.width,
        ...(s.k === undefined ? {} : { k: s.k }),
        ...(s.seed === undefined ? {} : { seed: s.seed }),
      });
    },
  },
];

export type RouterName = 'top-k' | 'switch' | 'expert-choice' | 'hash' | 'relu-rms' | 'comet';
