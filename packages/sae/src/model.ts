// An SAE at a hook site of a running model: activations collected into core's activation store,
// the SAE spliced in through a replacing hook (SAELens' ce_loss_score and kl_div_score), and
// feature data for browsing. Coded against core's `HookableLM` (models' TransformerLM is one).
import {
  type ActivationStore,
  type HookableLM,
  type HookContext,
  type HookHandle,
  type HookSite,
  InvalidArgumentError,
  type ProgressOptions,
  reportProgress,
  runWithHooks,
  type StreamPoint,
  type Tensor,
} from '@sparsekit/core';
import type { Backend } from '@sparsekit/sparse-formats';
import type { Sae } from './sae.js';

/** Where an SAE reads: a residual stream point, or a token-wise site of one block. */
export type SaeSite =
  | { readonly site: 'stream'; readonly point: StreamPoint }
  | {
      readonly site: Exclude<HookSite, 'stream' | 'linear.input' | 'attention.probs'>;
      readonly block: number;
    };

/**
 * TransformerLens' hook name of a site (SAELens writes it as `metadata.hook_name`):
 * blocks.B.hook_resid_pre / hook_resid_mid / hook_resid_post, blocks.B.mlp.hook_post (mlp.hidden),
 * blocks.B.ln2.hook_normalized (mlp.input), blocks.B.attn.hook_z (attention.output),
 * blocks.B.ln1.hook_normalized (attention.input); other sites as blocks.B.<site>.
 */
export function hookName(s: SaeSite): string {
  if (s.site === 'stream') {
    const p = s.point;
    if (p.at === 'embeddings') return 'blocks.0.hook_resid_pre';
    return `blocks.${p.block}.${p.at === 'attention' ? 'hook_resid_mid' : 'hook_resid_post'}`;
  }
  const names: Partial<Record<string, string>> = {
    'mlp.hidden': 'mlp.hook_post',
    'mlp.input': 'ln2.hook_normalized',
    'attention.output': 'attn.hook_z',
    'attention.input': 'ln1.hook_normalized',
  };
  return `blocks.${s.block}.${names[s.site] ?? s.site}`;
}

/** The site of a hook name written by `hookName` (so a saved SAE finds its site again). */
export function parseHookName(name: string): SaeSite {
  const m = /^blocks\.(\d+)\.(.+)$/.exec(name);
  if (m === null) throw new InvalidArgumentError('hook name', name, 'must look like blocks.<block>.<hook>');
  const block = Number(m[1]);
  const rest = m[2]!;
  if (rest === 'hook_resid_pre')
    return block === 0
      ? { site: 'stream', point: { at: 'embeddings' } }
      : { site: 'stream', point: { at: 'mlp', block: block - 1 } };
  if (rest === 'hook_resid_mid') return { site: 'stream', point: { at: 'attention', block } };
  if (rest === 'hook_resid_post') return { site: 'stream', point: { at: 'mlp', block } };
  const sites: Record<string, SaeSite['site']> = {
    'mlp.hook_post': 'mlp.hidden',
    'ln2.hook_normalized': 'mlp.input',
    'attn.hook_z': 'attention.output',
    'ln1.hook_normalized': 'attention.input',
  };
  const site = sites[rest] ?? rest;
  if (
    ![
      'attention.input',
      'attention.q',
      'attention.k',
      'attention.v',
      'attention.q.rotated',
      'attention.k.rotated',
      'attention.output',
      'mlp.input',
      'mlp.gate',
      'mlp.up',
      'mlp.hidden',
    ].includes(site)
  )
    throw new InvalidArgumentError('hook name', name, 'names no site this package reads');
  return { site: site as Exclude<SaeSite['site'], 'stream'>, block };
}

function samePoint(a: StreamPoint, b: StreamPoint | undefined): boolean {
  if (b === undefined || a.at !== b.at) return false;
  return a.at === 'embeddings' || (b.at !== 'embeddings' && a.block === b.block);
}

/** Register `hook` at the site (only its block / stream point); returns the handle. */
function atSite(
  model: HookableLM,
  s: SaeSite,
  hook: (tensor: Tensor<'f32'>, context: HookContext) => Tensor<'f32'> | Float32Array | undefined,
): HookHandle {
  if (s.site === 'stream')
    return model.hooks.add('stream', (t, c) => (samePoint(s.point, c.point) ? hook(t, c) : undefined));
  if (!Number.isInteger(s.block) || s.block < 0 || s.block >= model.numBlocks)
    throw new InvalidArgumentError('block', s.block, `must be in [0, ${model.numBlocks})`);
  return model.hooks.add(s.site, (t, c) => (c.expert === undefined ? hook(t, c) : undefined), {
    blocks: [s.block],
  });
}

/** Run `batches` ([batch, seq] token ids) through the model and add the site's rows to `store`. */
export async function collectActivations(
  model: HookableLM,
  s: SaeSite,
  batches: readonly Tensor<'i32'>[],
  store: ActivationStore,
  options: ProgressOptions = {},
): Promise<number> {
  return runWithHooks(
    model,
    batches,
    () =>
      atSite(model, s, (t) => {
        store.add(t);
        return undefined;
      }),
    'collect',
    options,
  );
}

/**
 * Replace the site's activations by the SAE's reconstruction (or by zeros: `mode: 'zero'`, SAELens'
 * ablation) in every forward pass until `remove()`.
 */
export function spliceSae(
  model: HookableLM,
  s: SaeSite,
  sae: Sae,
  options: { mode?: 'reconstruct' | 'zero'; backend?: Backend } = {},
): HookHandle {
  return atSite(model, s, (t) => {
    if (t.shape.at(-1) !== sae.dIn)
      throw new InvalidArgumentError(
        'SAE d_in',
        sae.dIn,
        `does not match the site's width ${t.shape.at(-1)}`,
      );
    if (options.mode === 'zero') return new Float32Array(t.size);
    return sae.forward(t.data, options.backend === undefined ? {} : { backend: options.backend })
      .reconstruction;
  });
}

/** Per-token log-softmax rows of logits [tokens, vocab]. */
function logSoftmaxRows(logits: Float32Array, vocab: number): Float64Array {
  const out = new Float64Array(logits.length);
  for (let t = 0; t < logits.length / vocab; t++) {
    let max = Number.NEGATIVE_INFINITY;
    for (let v = 0; v < vocab; v++) max = Math.max(max, logits[t * vocab + v]!);
    let sum = 0;
    for (let v = 0; v < vocab; v++) sum += Math.exp(logits[t * vocab + v]! - max);
    const log = max + Math.log(sum);
    for (let v = 0; v < vocab; v++) out[t * vocab + v] = logits[t * vocab + v]! - log;
  }
  return out;
}

export interface SpliceScores {
  /** Mean next-token cross-entropy (nats) of the clean model, with the SAE spliced in, with the site zeroed. */
  ce_loss_clean: number;
  ce_loss_with_sae: number;
  ce_loss_with_ablation: number;
  /** (CE_ablated - CE_sae) / (CE_ablated - CE_clean): 1 when the SAE loses nothing. */
  ce_loss_score: number;
  /** Mean KL(clean || spliced) over tokens, and the same for the ablation. */
  kl_div_with_sae: number;
  kl_div_with_ablation: number;
  /** (KL_ablated - KL_sae) / KL_ablated. */
  kl_div_score: number;
  tokens: number;
}

/**
 * SAELens' downstream scores: the model's next-token loss on `batches` clean, with the SAE's
 * reconstruction spliced in at the site, and with the site zero-ablated, in one run.
 */
export async function spliceScores(
  model: HookableLM,
  s: SaeSite,
  sae: Sae,
  batches: readonly Tensor<'i32'>[],
  options: ProgressOptions & { backend?: Backend } = {},
): Promise<SpliceScores> {
  const V = model.vocabSize;
  // Summed over tokens: cross-entropy clean / spliced / ablated, KL(clean || spliced / ablated).
  let [ceClean, ceSae, ceAbl, klSae, klAbl] = [0, 0, 0, 0, 0];
  let tokens = 0;
  for (const [i, ids] of batches.entries()) {
    const [batch, seq] = ids.shape as [number, number];
    const run = async (mode: 'clean' | 'reconstruct' | 'zero') => {
      const handle =
        mode === 'clean'
          ? undefined
          : spliceSae(model, s, sae, { mode, ...(options.backend ? { backend: options.backend } : {}) });
      try {
        return logSoftmaxRows((await model.logits(ids)).data, V);
      } finally {
        handle?.remove();
      }
    };
    const clean = await run('clean');
    const spliced = await run('reconstruct');
    const ablated = await run('zero');
    for (let b = 0; b < batch; b++)
      for (let t = 0; t < seq - 1; t++) {
        const row = (b * seq + t) * V;
        const target = ids.data[b * seq + t + 1]!;
        ceClean -= clean[row + target]!;
        ceSae -= spliced[row + target]!;
        ceAbl -= ablated[row + target]!;
        for (let v = 0; v < V; v++) {
          const p = Math.exp(clean[row + v]!);
          klSae += p * (clean[row + v]! - spliced[row + v]!);
          klAbl += p * (clean[row + v]! - ablated[row + v]!);
        }
        tokens++;
      }
    reportProgress(options, { stage: 'splice', current: i + 1, total: batches.length, unit: 'batch' });
  }
  if (tokens === 0)
    throw new InvalidArgumentError('batches', batches.length, 'need sequences of at least 2 tokens');
  const [cClean, cSae, cAbl, kSae, kAbl] = [ceClean, ceSae, ceAbl, klSae, klAbl].map((v) => v / tokens) as [
    number,
    number,
    number,
    number,
    number,
  ];
  return {
    ce_loss_clean: cClean,
    ce_loss_with_sae: cSae,
    ce_loss_with_ablation: cAbl,
    ce_loss_score: (cAbl - cSae) / (cAbl - cClean),
    kl_div_with_sae: kSae,
    kl_div_with_ablation: kAbl,
    kl_div_score: (kAbl - kSae) / kAbl,
    tokens,
  };
}

export interface FeatureContext {
  /** Batch and position of the activating token. */
  batch: number;
  position: number;
  activation: number;
  /** Token ids of the window around it ([position - before, position + after]) and each one's activation. */
  tokens: number[];
  activations: number[];
  /** Index of the activating token in `tokens`. */
  at: number;
}

export interface FeatureData {
  feature: number;
  /** Share of tokens it fired on. */
  density: number;
  maxActivation: number;
  meanActivation: number;
  topContexts: FeatureContext[];
  /** Tokens whose logits the decoder direction raises and lowers most (through `logitEffects`). */
  logitEffects?: {
    positive: { token: number; value: number }[];
    negative: { token: number; value: number }[];
  };
}

/**
 * Per feature: density, activation statistics and the `top` most activating contexts (token
 * windows with the feature's activation on each token) over `batches`; with `unembed` (decoder
 * direction [dIn] -> logits [vocab]), the tokens it promotes and suppresses most. JSON-ready.
 */
export async function featureData(
  model: HookableLM,
  s: SaeSite,
  sae: Sae,
  batches: readonly Tensor<'i32'>[],
  options: ProgressOptions & {
    features?: readonly number[];
    top?: number;
    before?: number;
    after?: number;
    logits?: number;
    unembed?: (direction: Float32Array) => ArrayLike<number>;
    backend?: Backend;
  } = {},
): Promise<FeatureData[]> {
  const features = options.features ?? Array.from({ length: sae.dSae }, (_, j) => j);
  for (const j of features)
    if (!Number.isInteger(j) || j < 0 || j >= sae.dSae)
      throw new InvalidArgumentError('feature', j, `must be in [0, ${sae.dSae})`);
  const top = options.top ?? 8;
  const before = options.before ?? 8;
  const after = options.after ?? 2;
  const fired = new Float64Array(sae.dSae);
  const sums = new Float64Array(sae.dSae);
  const max = new Float64Array(sae.dSae);
  const best = features.map(
    () => [] as { batch: number; position: number; activation: number; window: number }[],
  );
  let tokens = 0;
  const windows: { ids: Tensor<'i32'>; latents: Float32Array }[] = [];
  for (const [i, ids] of batches.entries()) {
    const [batch, seq] = ids.shape as [number, number];
    let latents: Float32Array | undefined;
    const handle = atSite(model, s, (t) => {
      latents = sae.encode(t.data, options.backend === undefined ? {} : { backend: options.backend }).latents;
      return undefined;
    });
    try {
      await model.logits(ids);
    } finally {
      handle.remove();
    }
    if (latents === undefined)
      throw new InvalidArgumentError('site', hookName(s), 'was not reached by the forward pass');
    windows.push({ ids, latents });
    const E = sae.dSae;
    for (let r = 0; r < batch * seq; r++)
      for (let j = 0; j < E; j++) {
        const v = latents[r * E + j]!;
        if (v === 0) continue;
        fired[j]!++;
        sums[j]! += v;
        if (v > max[j]!) max[j] = v;
      }
    features.forEach((j, fi) => {
      const list = best[fi]!;
      for (let r = 0; r < batch * seq; r++) {
        const v = latents![r * E + j]!;
        if (v <= 0 || (list.length >= top && v <= list.at(-1)!.activation)) continue;
        list.push({ batch: Math.floor(r / seq), position: r % seq, activation: v, window: i });
        list.sort((a, b) => b.activation - a.activation);
        if (list.length > top) list.pop();
      }
    });
    tokens += batch * seq;
    reportProgress(options, { stage: 'features', current: i + 1, total: batches.length, unit: 'batch' });
  }
  return features.map((j, fi): FeatureData => {
    const contexts = best[fi]!.map(({ batch, position, activation, window }) => {
      const { ids, latents } = windows[window]!;
      const seq = ids.shape[1]!;
      const from = Math.max(0, position - before);
      const to = Math.min(seq - 1, position + after);
      const span = Array.from({ length: to - from + 1 }, (_, d) => from + d);
      return {
        batch,
        position,
        activation,
        tokens: span.map((p) => ids.data[batch * seq + p]!),
        activations: span.map((p) => latents[(batch * seq + p) * sae.dSae + j]!),
        at: position - from,
      };
    });
    const out: FeatureData = {
      feature: j,
      density: fired[j]! / tokens,
      maxActivation: max[j]!,
      meanActivation: fired[j]! === 0 ? 0 : sums[j]! / fired[j]!,
      topContexts: contexts,
    };
    if (options.unembed !== undefined) {
      const direction = sae.params.wDec.slice(j * sae.dIn, (j + 1) * sae.dIn);
      const logits = Array.from(options.unembed(direction));
      const order = logits.map((v, t) => [v, t] as const).sort((a, b) => b[0] - a[0]);
      const n = options.logits ?? 10;
      out.logitEffects = {
        positive: order.slice(0, n).map(([value, token]) => ({ token, value })),
        negative: order
          .slice(-n)
          .reverse()
          .map(([value, token]) => ({ token, value })),
      };
    }
    return out;
  });
}
