// The hook sites activation sparsity works at: TEAL's four, named by the projections that read them.
import { InvalidArgumentError } from '@sparsekit/core';

/** TEAL's sites: the inputs of q/k/v, of o_proj, of gate/up and of down_proj. */
export const ACTIVATION_SITES = ['attention.input', 'attention.output', 'mlp.input', 'mlp.hidden'] as const;
/** Every site this package works at: TEAL's, and CATS' `mlp.gate` (act(gate) before the product with up). */
export const ALL_ACTIVATION_SITES = [...ACTIVATION_SITES, 'mlp.gate'] as const;
export type ActivationSite = (typeof ALL_ACTIVATION_SITES)[number];

/** The projections that read each site (TEAL's names for them). */
export const SITE_READERS: Readonly<Record<ActivationSite, readonly string[]>> = {
  'attention.input': ['q', 'k', 'v'],
  'attention.output': ['o'],
  'mlp.input': ['gate', 'up'],
  'mlp.hidden': ['down'],
  'mlp.gate': [],
};

/** (In core now; re-exported here, where it was first.) */
export type { HookableLM } from '@sparsekit/core';
export { runWithHooks } from '@sparsekit/core';

/** The key of a (block, site) pair: "3/mlp.hidden". */
export function siteKey(block: number, site: ActivationSite): string {
  return `${block}/${site}`;
}

export function checkSites(sites: readonly string[]): readonly ActivationSite[] {
  for (const s of sites) {
    if (!(ALL_ACTIVATION_SITES as readonly string[]).includes(s))
      throw new InvalidArgumentError('site', s, `must be one of ${ALL_ACTIVATION_SITES.join(', ')}`);
  }
  return sites as readonly ActivationSite[];
}
