/**
 * Sirius on tiny-lm: how much of the quality that contextual sparsity loses the full model's checks
 * win back, and at what average advance length, measured in one run:
 *
 *   node tooling/tiny-lm/dist/sirius-quality.js [--prompts 24] [--new-tokens 32] [--kernel 16]
 *     [--threshold 0.1] [--out tooling/tiny-lm/results/sirius-quality.json]
 *
 * Prompts: `--prompts` windows of 32 tokens from tiny-lm/test.txt (seeded). Each is continued
 * greedily by the full model, by the sparse model (TEAL thresholds at 50% and 70%, calibrated on 32
 * windows of calibration.txt) and by Sirius over that sparse model. Quality: the full model's mean
 * negative log-likelihood of the generated tokens (lower is better), and the share of tokens equal to
 * the full model's at the same position. Recovered = (NLL sparse - NLL Sirius) / (NLL sparse - NLL full).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  ACTIVATION_SITES,
  applyThresholds,
  calibrateActivations,
  siriusGenerate,
  tealThresholds,
} from '@sparsekit/activation-sparsity';
import { numberOption, option, writeJsonAtomic } from '@sparsekit/bench';
import { Hooks, Tensor } from '@sparsekit/core';
import { calibrationWindows } from '@sparsekit/eval-harness';
import { generate, type TransformerLM } from '@sparsekit/models';
import { loadHfModel, tinyLmPath } from '@sparsekit/models/node';
import { createWasmBackend } from '@sparsekit/sparse-formats';

const promptCount = numberOption('prompts', 24);
const newTokens = numberOption('new-tokens', 32);
const kernelSize = numberOption('kernel', 16);
const threshold = numberOption('threshold', 0.1);
const outPath = option('out', join('tooling', 'tiny-lm', 'results', 'sirius-quality.json'));
const backend = await createWasmBackend();
const { model, tokenizer } = await loadHfModel(tinyLmPath(), { backend });
const read = (name: string) => tokenizer!.encode(readFileSync(join(tinyLmPath(), name), 'utf8'));
const calibration = await calibrateActivations(
  model,
  calibrationWindows(read('calibration.txt'), { samples: 32, seqLen: 128, seed: 0 }),
  { sites: ACTIVATION_SITES },
);
const prompts = calibrationWindows(read('test.txt'), { samples: promptCount, seqLen: 32, seed: 7 }).map((t) =>
  Array.from(t.data),
);

/** The full model's mean NLL of `tokens` after `prompt`. */
function nll(m: TransformerLM, prompt: number[], tokens: number[]): number {
  const ids = [...prompt, ...tokens];
  const logits = m.logits(new Tensor('i32', [1, ids.length], Int32Array.from(ids))).data;
  const vocab = m.vocabSize;
  let sum = 0;
  for (let i = 0; i < tokens.length; i++) {
    const row = logits.subarray((prompt.length - 1 + i) * vocab, (prompt.length + i) * vocab);
    let max = Number.NEGATIVE_INFINITY;
    for (const v of row) max = Math.max(max, v);
    let z = 0;
    for (const v of row) z += Math.exp(v - max);
    sum += Math.log(z) + max - row[tokens[i]!]!;
  }
  return sum / tokens.length;
}

const agreement = (a: number[], b: number[]) => a.filter((t, i) => t === b[i]).length / a.length;
const full = prompts.map((p) => generate(model, p, { maxNewTokens: newTokens, stopTokens: [] }).tokens);
const fullNll = prompts.reduce((s, p, i) => s + nll(model, p, full[i]!), 0) / prompts.length;
console.log(`full model: NLL ${fullNll.toFixed(3)} per generated token`);
const rows: Array<Record<string, number>> = [];
for (const s of [0.5, 0.7]) {
  const rules = tealThresholds(calibration, s);
  const applied = applyThresholds(model.hooks, rules);
  const sparse = prompts.map((p) => generate(model, p, { maxNewTokens: newTokens, stopTokens: [] }).tokens);
  applied.remove();
  const hooks = new Hooks();
  applyThresholds(hooks, rules);
  const start = performance.now();
  const sirius = prompts.map((p) =>
    siriusGenerate(model, p, { sparse: hooks, maxNewTokens: newTokens, kernelSize, threshold }),
  );
  const seconds = (performance.now() - start) / 1000;
  const mean = (f: (i: number) => number) => prompts.reduce((acc, _, i) => acc + f(i), 0) / prompts.length;
  const sparseNll = mean((i) => nll(model, prompts[i]!, sparse[i]!));
  const siriusNll = mean((i) => nll(model, prompts[i]!, sirius[i]!.tokens));
  const row = {
    sparsity: s,
    fullNll,
    sparseNll,
    siriusNll,
    recovered: (sparseNll - siriusNll) / (sparseNll - fullNll),
    sparseAgreement: mean((i) => agreement(sparse[i]!, full[i]!)),
    siriusAgreement: mean((i) => agreement(sirius[i]!.tokens, full[i]!)),
    averageAdvance: mean((i) => sirius[i]!.averageAdvance),
    correctionsPerToken: mean((i) => sirius[i]!.corrections / sirius[i]!.tokens.length),
    seconds,
  };
  rows.push(row);
  console.log(
    `TEAL ${Math.round(s * 100)}%: NLL sparse ${sparseNll.toFixed(3)}, Sirius ${siriusNll.toFixed(3)} (recovered ${(100 * row.recovered).toFixed(0)}%); ` +
      `same tokens as full: sparse ${(100 * row.sparseAgreement).toFixed(0)}%, Sirius ${(100 * row.siriusAgreement).toFixed(0)}%; ` +
      `AAL ${row.averageAdvance.toFixed(2)}/${kernelSize}`,
  );
}
await backend.dispose();
writeJsonAtomic(outPath, {
  date: new Date().toISOString(),
  prompts: promptCount,
  newTokens,
  kernelSize,
  threshold,
  temperature: 0.6,
  rows,
});
console.log(`wrote ${outPath}`);
