/**
 * Train a mixture-of-experts variant of tiny-lm (Mixtral-style) and write it, as a Hugging Face
 * folder in the Mixtral layout, to --out:
 *
 *   pnpm --filter @sparsekit/tiny-lm-training build && node tooling/tiny-lm/dist/train-moe.js \
 *     [--steps 1474] [--minutes 240] [--lr 1.2e-2] [--weight-decay 0] [--bos] [--experts 8] [--top-k 4] \
 *     [--expert-width 96] [--aux 0.01] [--z 0.001] [--log-every 25] [--out tooling/tiny-lm/results/tiny-lm-moe]
 *
 * Same corpus, split, tokenizer, windows, optimiser and schedule as train.ts (training.ts), and
 * tiny-lm's architecture with every MLP a mixture: --experts SwiGLU experts of --expert-width
 * channels (default a quarter of tiny-lm's 384), --top-k chosen per token by a softmax top-k router
 * renormalised over the k (Mixtral), dropless. With the defaults a token goes through 4 x 96 = 384
 * MLP channels, as many as tiny-lm's (the log records the total and active parameter counts), and
 * the run sees as many tokens as the bundled tiny-lm's 1474 steps (the defaults are the bundled
 * tiny-lm-moe's recipe; `sparsekit convert --to dense --dtype f16` made its f16 copy). Loss: cross-entropy + --aux times the
 * load-balancing loss + --z times the router z-loss (each averaged over layers); the log records
 * both router losses and, with each validation loss, every layer's share of assignments per expert.
 *
 * Training runs on the tfjs twin, which computes every expert for every token (dense dispatch), so a
 * step costs about experts / top-k times the MLP work of the routed model.
 */
import { join, resolve } from 'node:path';
import { numberOption, option } from '@sparsekit/bench';
import { loadTfjs } from '@sparsekit/core';
import type { ModelConfig } from '@sparsekit/models';
import { LlamaTwin } from '@sparsekit/models/tfjs';
import { SEED, saveAndEvaluate, tinyLmConfig, tinyLmData, trainingLog, trainTwin } from './training.js';

const steps = numberOption('steps', 1474);
const minutes = numberOption('minutes', 240);
const out = resolve(option('out', join(import.meta.dirname ?? '.', '..', 'results', 'tiny-lm-moe')));
const batchSize = 16;
const seqLen = 128;
const peakLr = numberOption('lr', 1.2e-2);
const weightDecay = numberOption('weight-decay', 0);
const bos = process.argv.includes('--bos');
const numExperts = numberOption('experts', 8);
const expertsPerToken = numberOption('top-k', 4);
const expertWidth = numberOption('expert-width', 96);
const loadBalance = numberOption('aux', 0.01);
const routerZ = numberOption('z', 0.001);
const logEvery = numberOption('log-every', 25);
const warmup = 50;

const { log, say, elapsed } = trainingLog();
const data = tinyLmData(say);
const dense = tinyLmConfig(data.eot, seqLen);
const config: ModelConfig = {
  ...dense,
  intermediateSize: expertWidth,
  moe: { numExperts, expertsPerToken },
};
const { tf, backend } = await loadTfjs();
const twin = LlamaTwin.init(tf, config, SEED);
const parameters = twin.variables().reduce((n, v) => n + v.size, 0);
const H = config.hiddenSize;
const expertParameters = 3 * H * expertWidth;
const activeParameters = parameters - config.numLayers * (numExperts - expertsPerToken) * expertParameters;
say({
  event: 'model',
  backend,
  parameters,
  activeParameters,
  denseTinyLmMlpChannels: dense.intermediateSize,
  activeMlpChannels: expertsPerToken * expertWidth,
  peakLr,
  weightDecay,
  bos,
  batchSize,
  seqLen,
  loadBalance,
  routerZ,
  config,
});
trainTwin({
  tf,
  twin,
  data,
  steps,
  minutes,
  peakLr,
  weightDecay,
  bos,
  batchSize,
  seqLen,
  warmup,
  say,
  elapsed,
  lossOptions: { loadBalance, routerZ },
  logEvery,
});
await saveAndEvaluate({ twin, config, data, seqLen, out, log, say });
