/**
 * SAEs on tiny-lm's residual stream, every architecture at several dictionary sizes and sparsities,
 * measured in one run: held-out explained variance, L0, dead features and ce_loss_score /
 * kl_div_score (the reconstruction spliced into the model), so architectures compare at equal L0.
 *
 *   node tooling/tiny-lm/dist/sae-quality.js [--site blocks.1.hook_resid_post] [--windows 1024]
 *     [--sizes 512] [--epochs 4] [--eval-windows 32] [--ks 8,32] [--l1 0.3,1,3] [--l0 0.1,0.3,1]
 *     [--l0-mode tanh] [--init-threshold 0.1] [--lr 1e-3] [--only REGEX]
 *     [--out tooling/tiny-lm/results/sae-quality.json]
 *
 * Data: `--windows` random 128-token windows of tiny-lm's training split (seeded), run through the
 * bundled model; held-out: the first `--eval-windows` windows of the test split. Every SAE trains on
 * rows scaled to an average norm of sqrt(d_in) (SAELens' expected_average_only_in, folded into the
 * weights afterwards), 512 rows a step, Adam `--lr`, seed 0. Feature and Mutual Choice train with
 * AuxK and again with the Zipf auxiliary loss. JumpReLU uses SAELens' 'tanh' L0 mode by default: in
 * a run of ~1k steps the 'step' mode's threshold, whose only gradient is the straight-through one,
 * moves by at most ~lr per step in log space under Adam and cannot keep up with the encoder.
 * Dead: no firing on the held-out tokens.
 */
import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { markdownTable, numberOption, option } from '@sparsekit/bench';
import { ActivationStore, loadTfjs, Rng, Tensor } from '@sparsekit/core';
import { loadHfModel, tinyLmPath } from '@sparsekit/models/node';
import {
  collectActivations,
  parseHookName,
  reconstructionMetrics,
  type SaeArchitecture,
  spliceScores,
} from '@sparsekit/sae';
import { trainSae } from '@sparsekit/sae/tfjs';
import { createWasmBackend } from '@sparsekit/sparse-formats';
import { tinyLmData } from './training.js';

const root = join(import.meta.dirname ?? '.', '..', '..', '..');
const siteName = option('site', 'blocks.1.hook_resid_post');
const windowCount = numberOption('windows', 1024);
const sizes = option('sizes', '512').split(',').map(Number);
const epochs = numberOption('epochs', 4);
const evalWindows = numberOption('eval-windows', 32);
const only = new RegExp(option('only', '.'));
const list = (name: string, fallback: string) => option(name, fallback).split(',').map(Number);
const ks = list('ks', '8,32');
const l1s = list('l1', '0.3,1,3');
const l0s = list('l0', '0.1,0.3,1');
const initThreshold = numberOption('init-threshold', 0.1);
const l0Mode = option('l0-mode', 'tanh') as 'step' | 'tanh';
const lr = numberOption('lr', 1e-3);
const outPath = resolve(option('out', join(root, 'tooling', 'tiny-lm', 'results', 'sae-quality.json')));
const seqLen = 128;
const t0 = performance.now();
const say = (line: string) => console.error(`[${((performance.now() - t0) / 1000).toFixed(0)} s] ${line}`);

const data = tinyLmData((e) => say(JSON.stringify(e).slice(0, 120)));
const backend = await createWasmBackend();
const { model } = await loadHfModel(tinyLmPath());
model.backend = backend;
const site = parseHookName(siteName);
const width = model.config.hiddenSize;
const rng = new Rng(0);
const windowsOf = (tokens: Int32Array, starts: number[]) =>
  starts.map((s) => new Tensor('i32', [1, seqLen], tokens.slice(s, s + seqLen)));
const train = windowsOf(
  data.train,
  Array.from({ length: windowCount }, () => rng.int(data.train.length - seqLen)),
);
const held = windowsOf(
  data.test,
  Array.from({ length: evalWindows }, (_, i) => i * seqLen),
);
const store = new ActivationStore({ width, seed: 0, memoryBudgetBytes: 1 << 30 });
const tokens = await collectActivations(model, site, train, store);
const heldStore = new ActivationStore({ width, memoryBudgetBytes: 1 << 30 });
const heldTokens = await collectActivations(model, site, held, heldStore);
const heldRows = [...heldStore.batches(heldTokens)][0]!.data;
say(`collected ${tokens} training and ${heldTokens} held-out rows at ${siteName}`);

type Config = { architecture: SaeArchitecture; k?: number; l1?: number; l0?: number; aux?: 'zipf' };
const configs: Config[] = [];
for (const k of ks)
  for (const architecture of ['topk', 'batchtopk', 'feature-choice', 'mutual-choice'] as const)
    configs.push({ architecture, k });
for (const k of ks)
  for (const architecture of ['feature-choice', 'mutual-choice'] as const)
    configs.push({ architecture, k, aux: 'zipf' });
for (const l1 of l1s) configs.push({ architecture: 'standard', l1 }, { architecture: 'gated', l1 });
for (const l0 of l0s) configs.push({ architecture: 'jumprelu', l0 });

const { tf, backend: tfBackend } = await loadTfjs();
const rows = [];
for (const dSae of sizes)
  for (const c of configs) {
    const label = `${c.architecture}${c.aux === undefined ? '' : `+${c.aux}`} d_sae ${dSae} ${c.k === undefined ? (c.l1 === undefined ? `l0 ${c.l0}` : `l1 ${c.l1}`) : `k ${c.k}`}`;
    if (!only.test(label)) continue;
    const start = performance.now();
    function* batches() {
      for (let e = 0; e < epochs; e++) for (const b of store.batches(512)) yield b.data;
    }
    const trained = await trainSae(tf, {
      ...c,
      dIn: width,
      dSae,
      batches: batches(),
      normalize: 'expected_average_only_in',
      initThreshold,
      l0Mode,
      lr,
      seed: 0,
    });
    const seconds = (performance.now() - start) / 1000;
    const out = trained.sae.forward(heldRows, { backend });
    const m = reconstructionMetrics(heldRows, out.reconstruction, out.latents, heldTokens);
    const fired = new Uint8Array(dSae);
    for (let i = 0; i < out.latents.length; i++) if (out.latents[i] !== 0) fired[i % dSae] = 1;
    const dead = dSae - fired.reduce((a, b) => a + b, 0);
    const s = await spliceScores(model, site, trained.sae, held, { backend });
    rows.push({
      label,
      ...c,
      dSae,
      steps: trained.steps,
      trainSeconds: seconds,
      explained_variance: m.explained_variance,
      l0: m.l0,
      dead,
      deadShare: dead / dSae,
      ce_loss_score: s.ce_loss_score,
      kl_div_score: s.kl_div_score,
    });
    say(
      `${label}: EV ${m.explained_variance.toFixed(3)}, L0 ${m.l0.toFixed(1)}, dead ${dead}, ce_loss_score ${s.ce_loss_score.toFixed(3)} (${seconds.toFixed(0)} s)`,
    );
  }
await backend.dispose();
const result = {
  command: `node tooling/tiny-lm/dist/sae-quality.js ${process.argv.slice(2).join(' ')}`.trim(),
  site: siteName,
  trainingTokens: tokens,
  epochs,
  heldOutTokens: heldTokens,
  tfjsBackend: tfBackend,
  seconds: (performance.now() - t0) / 1000,
  rows,
};
mkdirSync(dirname(outPath), { recursive: true });
writeFileSync(`${outPath}.tmp`, `${JSON.stringify(result, null, 1)}\n`);
renameSync(`${outPath}.tmp`, outPath);
const table = markdownTable(
  ['SAE', 'L0', 'explained variance', 'ce_loss_score', 'kl_div_score', 'dead features', 'train s'],
  rows.map((r) => [
    r.label,
    r.l0.toFixed(1),
    r.explained_variance.toFixed(3),
    r.ce_loss_score.toFixed(3),
    r.kl_div_score.toFixed(3),
    `${r.dead} (${(100 * r.deadShare).toFixed(1)}%)`,
    r.trainSeconds.toFixed(0),
  ]),
);
const md = `# SAEs on tiny-lm (${siteName})\n\n\`${result.command}\` (${result.seconds.toFixed(0)} s; ${tokens} training tokens x ${epochs} epochs, ${heldTokens} held-out tokens)\n\n${table}\n`;
const mdPath = outPath.replace(/\.json$/, '.md');
writeFileSync(`${mdPath}.tmp`, md);
renameSync(`${mdPath}.tmp`, mdPath);
console.log(md);
