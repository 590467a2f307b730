// The hook sites activation sparsity works at: TEAL's four, named by the projections that read them.
import {
  type CausalLM,
  type HookHandle,
  type Hooks,
  InvalidArgumentError,
  type ProgressOptions,
  reportProgress,
  type Tensor,
} from '@sparsekit/core';

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

/** A model whose forward passes run its hooks (models' `TransformerLM` is one). */
export interface HookableLM extends CausalLM {
  readonly hooks: Hooks;
  readonly numBlocks: number;
}

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

/**
 * Run `batches` through `model` with hooks registered (by `register`, removed afterwards whatever
 * happens), reporting progress as `stage`. Returns the tokens run.
 */
export async function runWithHooks(
  model: HookableLM,
  batches: readonly Tensor<'i32'>[],
  register: () => HookHandle,
  stage: string,
  options: ProgressOptions,
): Promise<number> {
  const handle = register();
  let tokens = 0;
  try {
    for (const [i, batch] of batches.entries()) {
      await model.logits(batch);
      tokens += batch.size;
      reportProgress(options, { stage, current: i + 1, total: batches.length, unit: 'batch' });
    }
  } finally {
    handle.remove();
  }
  return tokens;
}
