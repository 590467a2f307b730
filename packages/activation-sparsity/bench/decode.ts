// Decode speed of a Llama-shaped speed model (random weights, tooling/speed-model) with TEAL
// thresholds applied and sparse decode on, against the same model dense, in one run:
//
//   pnpm --filter @sparsekit/activation-sparsity bench   (or node build/bench/decode.js [flags])
//     --shape tinyllama-4block | llama2-7b-block   (default tinyllama-4block)
//     --tokens 32 --reps 3 --threads N --min-zero-share 0.1 --models DIR --quick
//
// TEAL thresholds are calibrated on seeded random token windows of the speed model itself (its
// weights are random, so only its shapes and the sparsity it reaches mean anything). The LM head is
// dense and never sparsified; its share of the weights bounds the whole-model speedup (printed).
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  applyThresholds,
  calibrateActivations,
  tealThresholds,
  weightsSkipped,
} from '@sparsekit/activation-sparsity';
import { flag, median, numberOption, option, writeJsonAtomic } from '@sparsekit/bench';
import { Rng, Tensor } from '@sparsekit/core';
import { generationSpeed } from '@sparsekit/models';
import { loadHfModel } from '@sparsekit/models/node';
import { createWasmBackend } from '@sparsekit/sparse-formats';
import { SPEED_SHAPES, speedShape, writeSpeedModel } from '@sparsekit/speed-model';

const root = fileURLToPath(new URL('../../../../', import.meta.url));
const shapeName = option('shape', 'tinyllama-4block');
const shape = speedShape(shapeName);
const quick = flag('quick');
const newTokens = numberOption('tokens', quick ? 8 : 32);
const reps = numberOption('reps', quick ? 1 : 3);
const threads = numberOption('threads', availableParallelism());
const minZeroShare = numberOption('min-zero-share', 0.1);
const modelsDir = option('models', join(root, 'bench-results', 'speed-models'));
const outPath = option(
  'out',
  fileURLToPath(new URL(`../../bench/results/decode-${shapeName}.json`, import.meta.url)),
);

console.log(`speed model: ${shape.description}`);
const dir = await writeSpeedModel(join(modelsDir, shapeName), shapeName, 0);
const backend = await createWasmBackend({ threads });
const { model } = await loadHfModel(dir, { backend, tokenizer: false });

// Calibration: seeded random windows of token ids.
const rng = new Rng(1);
const windows = Array.from({ length: quick ? 2 : 4 }, () => {
  const ids = Int32Array.from({ length: 64 }, () => rng.int(shape.vocab));
  return new Tensor('i32', [1, 64], ids);
});
const calibration = await calibrateActivations(model, windows);

const speed = () => generationSpeed(model, { promptLength: 16, newTokens, reps });
const rows: Array<Record<string, unknown>> = [];
const denseRuns = [speed()];
for (const s of [0.4, 0.5]) {
  const applied = applyThresholds(model.hooks, tealThresholds(calibration, s));
  model.sparseDecode = { minZeroShare };
  const sparse = speed();
  model.sparseDecode = undefined;
  applied.remove();
  rows.push({
    config: `TEAL ${Math.round(s * 100)}%`,
    target: s,
    sitesSparsity: applied.overall(),
    weightsSkipped: weightsSkipped(model, applied.measured()),
    decodeTokensPerSecond: sparse.decodeTokensPerSecond,
    prefillTokensPerSecond: sparse.prefillTokensPerSecond,
  });
  denseRuns.push(speed()); // dense again between configurations: the median absorbs drift
}
const dense = median(denseRuns.map((r) => r.decodeTokensPerSecond));

// The LM head is dense and never sparsified (as in TEAL): its share of the weights read per token
// bounds the whole-model speedup at 1 / ((1 - h) (1 - skipped) + h) (Amdahl, by bytes read).
const params = (ls: readonly { inFeatures: number; outFeatures: number }[]) =>
  ls.reduce((a, l) => a + l.inFeatures * l.outFeatures, 0);
const head = model.params.lmHead;
const headShare = params([head]) / (params([head]) + params(model.linearLayers()));
for (const r of rows) {
  r.decodeSpeedup = (r.decodeTokensPerSecond as number) / dense;
  r.bound = 1 / ((1 - headShare) * (1 - (r.weightsSkipped as number)) + headShare);
}
console.log(
  `\ndecode, ${threads} threads, ${newTokens} tokens after a 16-token prompt, median of ${reps} runs; dense median of ${denseRuns.length} runs in the same process`,
);
console.log(
  `dense: ${dense.toFixed(2)} tok/s (${(1000 / dense).toFixed(1)} ms/token); the LM head is ${(100 * headShare).toFixed(0)}% of the weights read per token`,
);
console.log('config     sites    weights skipped  tok/s     x dense  bound by weights read');
for (const r of rows)
  console.log(
    `${String(r.config).padEnd(10)} ${(100 * (r.sitesSparsity as number)).toFixed(1).padStart(5)}%   ${(100 * (r.weightsSkipped as number)).toFixed(1).padStart(5)}%         ${(r.decodeTokensPerSecond as number).toFixed(2).padStart(7)}   ${(r.decodeSpeedup as number).toFixed(2).padStart(5)}x   ${(r.bound as number).toFixed(2).padStart(5)}x`,
  );
const at50 = rows.find((r) => r.target === 0.5)!;
const target = 1.6;
console.log(
  `target: decode at TEAL 50% >= ${target}x dense: ${(at50.decodeSpeedup as number) >= target ? 'met' : 'MISSED'} (${(at50.decodeSpeedup as number).toFixed(2)}x)`,
);
writeJsonAtomic(outPath, {
  date: new Date().toISOString(),
  shape: shapeName,
  description: SPEED_SHAPES[shapeName as keyof typeof SPEED_SHAPES].description,
  threads,
  newTokens,
  reps,
  minZeroShare,
  dense: { decodeTokensPerSecond: dense, runs: denseRuns },
  lmHeadShare: headShare,
  rows,
});
console.log(`wrote ${outPath}`);
await backend.dispose();
