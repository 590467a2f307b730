// sparsekit sae: train | eval | features of sparse autoencoders on a model's activations.
import { resolve } from 'node:path';
import { SAE_ARCHITECTURES, type SaeArchitecture, type SaeSite } from '@sparsekit/sae';
import { readSaeLens } from '@sparsekit/sae/node';
import { actionOf, choiceFlag, numberFlag, requireFlag, stringFlag, UsageError } from '../../args.js';
import { BACKEND_FLAG, BACKEND_HELP, openBackend } from '../../backend.js';
import type { Command } from '../../command.js';
import { loadModel, modelDir } from '../../model-io.js';
import { outDirFlag } from '../../out-dir.js';
import { evaluate } from './evaluate.js';
import { features } from './features.js';
import { hookName, siteFlag } from './shared.js';
import { train } from './train.js';

const ACTIONS = ['train', 'eval', 'features'] as const;
const ONLY: Record<string, readonly (typeof ACTIONS)[number][]> = {
  architecture: ['train'],
  'd-sae': ['train'],
  expansion: ['train'],
  k: ['train'],
  l1: ['train'],
  l0: ['train'],
  'l0-mode': ['train'],
  epochs: ['train'],
  batch: ['train'],
  lr: ['train'],
  seed: ['train'],
  'dead-window': ['train'],
  normalize: ['train'],
  'eval-text': ['train'],
  'eval-windows': ['train'],
  out: ['train', 'features'],
  force: ['train'],
  sae: ['eval', 'features'],
  windows: ['eval', 'features'],
  features: ['features'],
  'top-features': ['features'],
  contexts: ['features'],
  site: ['train'],
};

export const saeCommand: Command = {
  name: 'sae',
  summary: "sparse autoencoders on a model's activations: train, evaluate, browse features (SAELens files)",
  positionals: 1,
  help: `Usage: sparsekit sae train [--model DIR] [--site HOOK] [--architecture A] [--expansion F | --d-sae N]
                         [--k K] [--text FILE] [--epochs N] --out DIR
       sparsekit sae eval --sae DIR [--model DIR] [--text FILE] [--windows N]
       sparsekit sae features --sae DIR [--model DIR] [--features 0,5,9 | --top-features N] [--out FILE]

train: runs the model over the text, collects the activations at --site (a TransformerLens hook
  name; default the residual stream after the middle block), trains an SAE on them through
  TensorFlow.js, evaluates it on held-out text (explained variance, l0, dead features, and
  ce_loss_score / kl_div_score with its reconstruction spliced into the model), and writes a SAELens
  folder (cfg.json, sae_weights.safetensors; batchtopk, feature-choice and mutual-choice as
  jumprelu with their inference threshold) plus training-log.json.
eval: the metrics of an SAE folder (SAELens' names) on --windows windows of text, and its splice
  scores. The site is the folder's metadata.hook_name.
features: per feature its density, top-activating contexts (tokens around the activating one, with
  activations) and, at residual stream sites, the tokens its decoder direction promotes and
  suppresses (through the final norm and LM head); a table, and the JSON with --out.

Architectures: ${SAE_ARCHITECTURES.join(', ')}.

Flags:
  --model DIR          Hugging Face folder (default: the bundled tiny-lm)
  --site HOOK          train: e.g. blocks.1.hook_resid_post, blocks.2.mlp.hook_post (default: middle block's resid_post)
  --architecture A     train: one of the architectures (default topk)
  --expansion F        train: d_sae = F x d_in (default 8)
  --d-sae N            train: the dictionary size (instead of --expansion)
  --k K                train: latents per token of topk, batchtopk, feature-choice, mutual-choice (default 32)
  --l1 C, --l0 C       train: sparsity coefficients of standard / gated (l1) and jumprelu (l0) (default 1, SAELens')
  --l0-mode M          train: jumprelu's L0 penalty, step (SAELens' default) or tanh (reaches the encoder; better in short runs)
  --text FILE          text to run (train: default tiny-lm's calibration text; eval, features: its test text)
  --epochs N           train: passes over the collected activations (default 4)
  --batch N            train: rows per step (default 512)
  --lr X               train: Adam learning rate (default 1e-3)
  --dead-window N      train: tokens without firing after which a feature is dead (default min(tokens, 50000))
  --seed N             train: seed of the shuffles and the initialisation (default 0)
  --normalize N        train: none | expected_average_only_in (folded into the weights) |
                       constant_norm_rescale | layer_norm (SAELens' normalize_activations; default none)
  --eval-text FILE     train: held-out text (default tiny-lm's test text); --eval-windows N (default 16)
  --sae DIR            eval, features: a SAELens folder
  --windows N          eval, features: windows of text (default 16)
  --features LIST      features: feature ids; otherwise the --top-features N (default 20) with the largest activations
  --contexts N         features: top contexts per feature (default 5)
  --out DIR|FILE       train: the folder to write (a new or empty one; --force replaces); features: a JSON file
${BACKEND_HELP}
  --json               print the result as JSON

Examples:
  sparsekit sae train --architecture topk --k 16 --out out/sae-topk
  sparsekit sae train --architecture jumprelu --l0 0.3 --l0-mode tanh --site blocks.2.mlp.hook_post --out out/sae-jump
  sparsekit sae eval --sae out/sae-topk
  sparsekit sae features --sae out/sae-topk --top-features 10 --out out/sae-topk/features.json`,
  flags: {
    ...BACKEND_FLAG,
    model: { type: 'string' },
    site: { type: 'string' },
    architecture: { type: 'string' },
    'd-sae': { type: 'string' },
    expansion: { type: 'string' },
    k: { type: 'string' },
    l1: { type: 'string' },
    l0: { type: 'string' },
    'l0-mode': { type: 'string' },
    text: { type: 'string' },
    epochs: { type: 'string' },
    batch: { type: 'string' },
    lr: { type: 'string' },
    seed: { type: 'string' },
    'dead-window': { type: 'string' },
    normalize: { type: 'string' },
    'eval-text': { type: 'string' },
    'eval-windows': { type: 'string' },
    sae: { type: 'string' },
    windows: { type: 'string' },
    features: { type: 'string' },
    'top-features': { type: 'string' },
    contexts: { type: 'string' },
    out: { type: 'string' },
    force: { type: 'boolean' },
  },
  async run({ flags, positionals, ui }) {
    const action = actionOf('sae', positionals, ACTIONS);
    for (const [flag, actions] of Object.entries(ONLY))
      if (flags[flag] !== undefined && !actions.includes(action))
        throw new UsageError(`--${flag} is for sae ${actions.join(' / ')}, not sae ${action}`, 'sae');
    const dir = modelDir(stringFlag(flags, 'model'));
    if (action === 'train') {
      const architecture = choiceFlag(
        'sae',
        flags,
        'architecture',
        SAE_ARCHITECTURES,
        'topk',
      ) as SaeArchitecture;
      if (flags.expansion !== undefined && flags['d-sae'] !== undefined)
        throw new UsageError('give --expansion or --d-sae, not both', 'sae');
      const expansion =
        flags.expansion === undefined
          ? undefined
          : numberFlag('sae', flags, 'expansion', 8, { min: 0.01, max: 1024 });
      const dSae =
        flags['d-sae'] === undefined
          ? undefined
          : numberFlag('sae', flags, 'd-sae', 1024, { integer: true, min: 1 });
      const k =
        flags.k === undefined ? undefined : numberFlag('sae', flags, 'k', 32, { integer: true, min: 1 });
      if (k !== undefined && !['topk', 'batchtopk', 'feature-choice', 'mutual-choice'].includes(architecture))
        throw new UsageError(
          `--k is for topk, batchtopk, feature-choice and mutual-choice, not ${architecture}`,
          'sae',
        );
      const out = outDirFlag('sae', flags, dir, 'the folder to write the SAE to');
      const backend = await openBackend('sae', flags, ui);
      try {
        const loaded = await loadModel(dir, backend);
        const site = siteFlag(flags, loaded.model.numBlocks);
        const width = loaded.model.config.hiddenSize;
        const size = dSae ?? Math.round((expansion ?? 8) * width);
        if (k !== undefined && k > size)
          throw new UsageError(`--k ${k} exceeds the dictionary size ${size}`, 'sae');
        return await train(flags, loaded, dir, site, { architecture, expansion, dSae, k }, out, ui);
      } finally {
        await backend.dispose();
      }
    }
    const saeDir = resolve(
      requireFlag('sae', flags, 'sae', 'a SAELens folder (cfg.json, sae_weights.safetensors)'),
    );
    const { sae, config } = await readSaeLens(saeDir);
    const hook = config.metadata.hook_name;
    const backend = await openBackend('sae', flags, ui);
    try {
      const loaded = await loadModel(dir, backend);
      let site: SaeSite;
      try {
        site = siteFlag({ site: typeof hook === 'string' ? hook : undefined }, loaded.model.numBlocks);
      } catch {
        throw new UsageError(
          `${saeDir}: metadata.hook_name ${JSON.stringify(hook)} names no site of this model`,
          'sae',
        );
      }
      if (loaded.model.config.hiddenSize !== sae.dIn && site.site === 'stream')
        throw new UsageError(
          `${saeDir}: d_in ${sae.dIn} does not match the model's width ${loaded.model.config.hiddenSize} at ${hookName(site)}`,
          'sae',
        );
      return action === 'eval'
        ? await evaluate(flags, loaded, dir, sae, site, ui)
        : await features(flags, loaded, dir, sae, site, ui);
    } finally {
      await backend.dispose();
    }
  },
};
