// sparsekit sae train: collect a hook site's activations from text, train an SAE on them (tfjs),
// evaluate it on held-out text and write a SAELens folder.
import { basename, join } from 'node:path';
import { ActivationStore, loadTfjs } from '@sparsekit/core';
import { writeFileAtomic } from '@sparsekit/core/node';
import type { LoadedModel } from '@sparsekit/models/node';
import { collectActivations, type SaeArchitecture, type SaeSite, spliceScores } from '@sparsekit/sae';
import { writeSaeLens } from '@sparsekit/sae/node';
import { trainSae } from '@sparsekit/sae/tfjs';
import { choiceFlag, type Flags, numberFlag } from '../../args.js';
import { type OutDir, writeDir } from '../../out-dir.js';
import { table, type Ui } from '../../ui.js';
import { heldOutMetrics, hookName, siteRows, textWindows } from './shared.js';

export interface TrainChoice {
  architecture: SaeArchitecture;
  expansion: number | undefined;
  dSae: number | undefined;
  k: number | undefined;
}

export async function train(
  flags: Flags,
  loaded: LoadedModel,
  dir: string,
  site: SaeSite,
  choice: TrainChoice,
  out: OutDir,
  ui: Ui,
) {
  const { model } = loaded;
  const seqLen = model.maxSequenceLength;
  const width = model.config.hiddenSize;
  const { windows, source: given } = textWindows(flags, loaded, dir, {
    textFlag: 'text',
    which: 'calibration',
    count: undefined,
    what: 'training text',
  });
  const dSae = choice.dSae ?? Math.round((choice.expansion ?? 8) * width);
  const k = choice.k ?? Math.min(32, dSae);
  const epochs = numberFlag('sae', flags, 'epochs', 4, { integer: true, min: 1 });
  const batchRows = numberFlag('sae', flags, 'batch', 512, { integer: true, min: 1 });
  const seed = numberFlag('sae', flags, 'seed', 0, { integer: true, min: 0 });
  const store = new ActivationStore({ width, seed, memoryBudgetBytes: 1 << 30 });
  const tokens = await collectActivations(model, site, windows, store, {
    onProgress: ui.progress('collect'),
  });
  ui.done();
  const { tf, backend: tfBackend } = await loadTfjs();
  const steps = epochs * Math.ceil(tokens / batchRows);
  function* batches() {
    for (let e = 0; e < epochs; e++) for (const b of store.batches(batchRows)) yield b.data;
  }
  const lr = numberFlag('sae', flags, 'lr', 1e-3, { min: 1e-7, max: 1 });
  const trained = await trainSae(tf, {
    architecture: choice.architecture,
    dIn: width,
    dSae,
    ...(['topk', 'batchtopk', 'feature-choice', 'mutual-choice'].includes(choice.architecture) ? { k } : {}),
    batches: batches(),
    steps,
    lr,
    ...(flags.l1 === undefined ? {} : { l1: numberFlag('sae', flags, 'l1', 1, { min: 0 }) }),
    ...(flags.l0 === undefined ? {} : { l0: numberFlag('sae', flags, 'l0', 1, { min: 0 }) }),
    l0Mode: choiceFlag('sae', flags, 'l0-mode', ['step', 'tanh'] as const, 'step'),
    seed,
    normalize: choiceFlag(
      'sae',
      flags,
      'normalize',
      ['none', 'expected_average_only_in', 'constant_norm_rescale', 'layer_norm'] as const,
      'none',
    ),
    deadWindow: numberFlag('sae', flags, 'dead-window', Math.min(tokens, 50_000), { integer: true, min: 1 }),
    onProgress: ui.progress('train'),
  });
  ui.done();
  // Held-out: tiny-lm's test text by default (or the first windows of --eval-text).
  const { windows: evalWindows } = textWindows(flags, loaded, dir, {
    textFlag: 'eval-text',
    which: 'test',
    count: numberFlag('sae', flags, 'eval-windows', 16, { integer: true, min: 1 }),
    what: 'evaluation text',
  });
  const held = await siteRows(model, site, width, evalWindows, ui);
  const metrics = heldOutMetrics(trained.sae, held.rows, held.count);
  const scores = await spliceScores(model, site, trained.sae, evalWindows, {
    onProgress: ui.progress('splice'),
  });
  ui.done();
  const name = hookName(site);
  ui.say(
    `${choice.architecture} SAE at ${name}: d_in ${width}, d_sae ${dSae}${trained.sae.k === undefined ? '' : `, k ${k}`}; ${trained.steps} steps on ${tokens} tokens x ${epochs} epochs (tfjs ${tfBackend})\n`,
  );
  ui.say(
    table(
      ['held-out', 'explained variance', 'mse', 'l0', 'dead features', 'ce_loss_score', 'kl_div_score'],
      [
        [
          `${held.count} tokens`,
          metrics.explained_variance.toFixed(4),
          metrics.mse.toExponential(3),
          metrics.l0.toFixed(2),
          `${metrics.dead_features} (${(100 * metrics.dead_share).toFixed(1)}%)`,
          scores.ce_loss_score.toFixed(4),
          scores.kl_div_score.toFixed(4),
        ],
      ],
    ),
  );
  const result = {
    model: dir,
    out: out.path,
    site: name,
    architecture: choice.architecture,
    dIn: width,
    dSae,
    k: trained.sae.k ?? null,
    training: { tokens, epochs, steps: trained.steps, batch: batchRows, lr, seed, tfjsBackend: tfBackend },
    heldOut: { ...metrics, ...scores },
  };
  await writeDir(out, async (tmp) => {
    await writeSaeLens(tmp, trained.sae, {
      metadata: {
        model_name: basename(dir),
        hook_name: name,
        context_size: seqLen,
        prepend_bos: false,
        dataset_path: given ?? 'tiny-lm/calibration.txt',
      },
    });
    await writeFileAtomic(join(tmp, 'training-log.json'), (f) =>
      f.writeFile(`${JSON.stringify({ ...result, log: trained.log }, null, 1)}\n`, 'utf8'),
    );
  });
  ui.say(`\nwrote ${out.path} (SAELens layout: cfg.json, sae_weights.safetensors) and training-log.json`);
  return result;
}
