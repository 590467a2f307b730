/**
 * ReLU-fication and ProSparse on tiny-lm, stage by stage: activation sparsity reached (exact zeros of
 * act(gate), the input of the product with up) and test perplexity after each stage, in one run:
 *
 *   node tooling/tiny-lm/dist/relufy.js [--relu-steps 200] [--stage-steps 100] [--l1 0.1,0.3,1]
 *     [--fatrelu 0.05] [--lr 1e-3] [--out tooling/tiny-lm/results/relufy.json] [--control]
 *
 * Stages: the bundled SiLU model; SiLU swapped for ReLU (no training); ReLU fine-tuned for
 * --relu-steps steps (ReLU-fication); then one ProSparse stage per --l1 value, each --stage-steps
 * steps with the L1 factor rising to it along a sine (activation-sparsity's `proSparseFactor`);
 * then FATReLU at --fatrelu on the last model (no training). Training: tiny-lm's own training split
 * (same corpus, split and seed as train.ts), batches of 16 x 128 tokens, Adam at a constant --lr
 * after 20 warm-up steps, gradient norm clipped at 1, on the tfjs twin. With --control, the SiLU
 * model gets the same --relu-steps of fine-tuning instead (written to relufy-control.json): the
 * bundled model has seen only part of its training data, so extra steps alone lower its perplexity.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  applyThresholds,
  fatReluThresholds,
  measureActivations,
  type ProSparseStage,
  proSparseFactor,
} from '@sparsekit/activation-sparsity';
import { numberOption, option, writeJsonAtomic } from '@sparsekit/bench';
import { loadTfjs, Rng } from '@sparsekit/core';
import { calibrationWindows, perplexity } from '@sparsekit/eval-harness';
import { backendRef, type ModelConfig, TransformerLM } from '@sparsekit/models';
import { loadHfModel, tinyLmPath } from '@sparsekit/models/node';
import { LlamaTwin } from '@sparsekit/models/tfjs';
import { createWasmBackend } from '@sparsekit/sparse-formats';
import { fineTuneTwin, trainingTokens } from './fine-tune.js';
import { SEED } from './training.js';

const reluSteps = numberOption('relu-steps', 200);
const stageSteps = numberOption('stage-steps', 100);
const l1s = option('l1', '0.1,0.3,1').split(',').map(Number);
const fatRelu = numberOption('fatrelu', 0.05);
const lr = numberOption('lr', 1e-3);
const outPath = option('out', join('tooling', 'tiny-lm', 'results', 'relufy.json'));
const batchSize = 16;
const seqLen = 128;

const started = performance.now();
const elapsed = () => (performance.now() - started) / 1000;
const wasm = await createWasmBackend();
const loaded = await loadHfModel(tinyLmPath(), { backend: wasm });
const tokenizer = loaded.tokenizer!;
const testText = readFileSync(join(tinyLmPath(), 'test.txt'), 'utf8');
const measureBatches = calibrationWindows(
  tokenizer.encode(readFileSync(join(tinyLmPath(), 'calibration.txt'), 'utf8')),
  { samples: 16, seqLen, seed: 0 },
);
const train = trainingTokens(tokenizer);
console.log(`training tokens: ${train.length} (${elapsed().toFixed(0)} s)`);

const rows: Array<Record<string, unknown>> = [];
async function evaluate(
  stage: string,
  model: TransformerLM,
  steps: number,
  extra: Record<string, unknown> = {},
) {
  const m = await measureActivations(model, measureBatches, { sites: ['mlp.gate'], eps: 0 });
  const ppl = (await perplexity(model, tokenizer, testText, { maxLength: seqLen })).perplexity;
  const row = { stage, steps, activationSparsity: m.overall, perplexity: ppl, seconds: elapsed(), ...extra };
  rows.push(row);
  console.log(
    `${stage.padEnd(34)} act(gate) zeros ${(100 * m.overall).toFixed(1).padStart(5)}%  ppl ${ppl.toFixed(2).padStart(8)}  (${elapsed().toFixed(0)} s)`,
  );
}
await evaluate('SiLU (bundled tiny-lm)', loaded.model, 0);

const { tf } = await loadTfjs();
// --control: the same fine-tuning of the SiLU model (no ReLU, no L1), to tell what the extra
// training data does from what the ReLU swap and the L1 stages do.
const control = process.argv.includes('--control');
const relu: ModelConfig = { ...loaded.config, activation: control ? 'silu' : 'relu' };
const twin = LlamaTwin.fromParams(tf, relu, loaded.model.params);
const runtime = () => {
  const backends = backendRef(wasm);
  return new TransformerLM(relu, twin.toParams(backends), backends);
};
if (!control) await evaluate('ReLU swapped in (no training)', runtime(), 0);

const rng = new Rng(SEED);
const optimizer = tf.train.adam(lr, 0.9, 0.95, 1e-8);
let total = 0;
/** Adam at a constant lr after 20 warm-up steps (counted over all stages), one optimizer throughout. */
function trainSteps(steps: number, l1At: (step: number) => number): number {
  const loss = fineTuneTwin({
    tf,
    twin,
    train,
    steps,
    lr,
    optimizer,
    firstStep: total,
    rng,
    batchSize,
    seqLen,
    loss: (x, y, step) => twin.loss(x, y, { activationL1: l1At(step) }),
  });
  total += steps;
  return loss;
}

trainSteps(reluSteps, () => 0);
await evaluate(
  control ? `SiLU fine-tuned (${reluSteps} steps, control)` : `ReLU-fication (${reluSteps} steps)`,
  runtime(),
  reluSteps,
);
if (control) {
  await wasm.dispose();
  writeJsonAtomic(outPath.replace(/\.json$/, '-control.json'), {
    date: new Date().toISOString(),
    reluSteps,
    lr,
    rows,
  });
  console.log(`wrote ${outPath.replace(/\.json$/, '-control.json')}`);
  process.exit(0);
}
const stages: ProSparseStage[] = l1s.map((l1) => ({ steps: stageSteps, l1 }));
for (const [i, stage] of stages.entries()) {
  const offset = i * stageSteps;
  trainSteps(stage.steps, (step) => proSparseFactor(offset + step, stages));
  await evaluate(`ProSparse stage ${i + 1} (L1 to ${stage.l1})`, runtime(), stage.steps, { l1: stage.l1 });
}
const last = runtime();
const applied = applyThresholds(last.hooks, fatReluThresholds(last.numBlocks, fatRelu));
await evaluate(`ProSparse + FATReLU (T = ${fatRelu})`, last, 0, { fatRelu });
applied.remove();
await wasm.dispose();
writeJsonAtomic(outPath, {
  date: new Date().toISOString(),
  reluSteps,
  stageSteps,
  l1: l1s,
  fatRelu,
  lr,
  batch: [batchSize, seqLen],
  rows,
});
console.log(`wrote ${outPath}`);
