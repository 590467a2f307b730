// Pieces the sae subcommands share: the site flag, token windows of a text, held-out metrics.
import { ActivationStore, type HookableLM, type Tensor } from '@sparsekit/core';
import { calibrationWindows } from '@sparsekit/eval-harness';
import type { HfTokenizer } from '@sparsekit/models';
import type { LoadedModel } from '@sparsekit/models/node';
import {
  collectActivations,
  hookName,
  parseHookName,
  reconstructionMetrics,
  type Sae,
  type SaeSite,
} from '@sparsekit/sae';
import { type Flags, stringFlag, UsageError } from '../../args.js';
import { CliError, checkKnownText, defaultText, readText, requireTokenizer } from '../../model-io.js';
import type { Ui } from '../../ui.js';

/** --site as a TransformerLens hook name (default: the residual stream after the middle block). */
export function siteFlag(flags: Flags, numBlocks: number): SaeSite {
  const raw = stringFlag(flags, 'site');
  if (raw === undefined)
    return { site: 'stream', point: { at: 'mlp', block: Math.floor((numBlocks - 1) / 2) } };
  let site: SaeSite;
  try {
    site = parseHookName(raw);
  } catch {
    throw new UsageError(
      `--site "${raw}" is not a hook name this model has (e.g. blocks.1.hook_resid_post, blocks.2.mlp.hook_post)`,
      'sae',
    );
  }
  const block = site.site === 'stream' ? (site.point.at === 'embeddings' ? 0 : site.point.block) : site.block;
  if (block >= numBlocks) throw new UsageError(`--site ${raw}: the model has ${numBlocks} blocks`, 'sae');
  return site;
}

/** Consecutive windows of `seqLen` tokens of `text` (at most `count`, all when undefined). */
export function windowsOf(
  tokenizer: HfTokenizer,
  text: string,
  seqLen: number,
  count: number | undefined,
  what: string,
): Tensor<'i32'>[] {
  const ids = tokenizer.encode(text);
  checkKnownText(tokenizer, ids, what);
  const available = Math.floor(ids.length / seqLen);
  if (available < 1)
    throw new CliError(
      `the ${what} has ${ids.length} tokens, fewer than one window of ${seqLen}`,
      'give a longer --text',
    );
  return calibrationWindows(ids, {
    samples: Math.min(count ?? available, available),
    seqLen,
    mode: 'consecutive',
  });
}

/**
 * The windows of text a subcommand runs: the file of flag `--<textFlag>`, or tiny-lm's own `which`
 * text (tiny-lm's tokenizer only); `count` windows of the model's context (all when undefined).
 */
export function textWindows(
  flags: Flags,
  loaded: LoadedModel,
  dir: string,
  options: { textFlag: string; which: 'test' | 'calibration'; count: number | undefined; what: string },
): { tokenizer: HfTokenizer; windows: Tensor<'i32'>[]; source: string | undefined } {
  const tokenizer = requireTokenizer(loaded, dir);
  const flag = `--${options.textFlag}`;
  const source = stringFlag(flags, options.textFlag);
  const text = source === undefined ? defaultText(options.which, dir, flag) : readText(source, flag);
  const windows = windowsOf(tokenizer, text, loaded.model.maxSequenceLength, options.count, options.what);
  return { tokenizer, windows, source };
}

/** The site's rows of `windows` (held in memory: an evaluation text). */
export async function siteRows(
  model: HookableLM,
  site: SaeSite,
  width: number,
  windows: Tensor<'i32'>[],
  ui: Ui,
) {
  const store = new ActivationStore({ width, memoryBudgetBytes: 1 << 30 });
  const tokens = await collectActivations(model, site, windows, store, {
    onProgress: ui.progress('collect'),
  });
  const rows = [...store.batches(tokens)][0]!;
  return { rows: rows.data, count: tokens };
}

/** Reconstruction metrics of `sae` over rows (SAELens' names), and the dead share. */
export function heldOutMetrics(sae: Sae, rows: Float32Array, count: number) {
  const out = sae.forward(rows);
  const m = reconstructionMetrics(rows, out.reconstruction, out.latents, count);
  const fired = new Uint8Array(sae.dSae);
  for (let i = 0; i < out.latents.length; i++) if (out.latents[i] !== 0) fired[i % sae.dSae] = 1;
  const dead = sae.dSae - fired.reduce((s, v) => s + v, 0);
  return { ...m, dead_features: dead, dead_share: dead / sae.dSae, tokens: count };
}

export { hookName };
