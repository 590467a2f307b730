/**
 * Perplexity of tiny-lm on its test text with activation sparsity applied, every method of the
 * activation-sparsity README at rising sparsity, measured in one run:
 *
 *   node tooling/tiny-lm/dist/activation-quality.js [--model DIR] [--calib-windows 32]
 *     [--only REGEX] [--out tooling/tiny-lm/results/activation-quality.json]
 *
 * Calibration: `--calib-windows` windows of 128 tokens from tiny-lm/calibration.txt. Evaluation: the
 * SparseGPT protocol (windows of 128 tokens) over tiny-lm/test.txt, with the rules applied to every
 * token (as decode sees them). Each row reports the sparsity measured on the evaluation tokens: the
 * share of values dropped at the method's sites, and the share of the blocks' weights a sparse
 * decode skips (`weightsSkipped`). Deja Vu rows train predictors with labels at the target sparsity
 * (`--merge` keeps the rows of an earlier run that this one does not measure, e.g. with
 * `--only "deja vu"`). TEAL's greedy allocation runs once, to 90%, on 4 of the
 * calibration windows, and each lower target is read off its path. Writes the JSON and a Markdown
 * table next to it.
 */
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import {
  ACTIVATION_SITES,
  ActivationCalibration,
  applyPredictors,
  applyThresholds,
  calibrateActivations,
  calibrateChess,
  catsThresholds,
  chessThresholds,
  collectPredictorData,
  greedyThresholds,
  greedyThresholdsAt,
  type Thresholds,
  tealThresholds,
  topKSparsity,
  trainPredictors,
  weightsSkipped,
} from '@sparsekit/activation-sparsity';
import { option } from '@sparsekit/bench';
import { calibrationWindows, perplexity } from '@sparsekit/eval-harness';
import { loadHfModel, tinyLmPath } from '@sparsekit/models/node';
import { createWasmBackend } from '@sparsekit/sparse-formats';

const calibWindows = Number(option('calib-windows', '32'));
const outPath = option('out', join('tooling', 'tiny-lm', 'results', 'activation-quality.json'));
const dir = option('model', tinyLmPath());
const only = new RegExp(option('only', '.'));
// With --merge, rows already in --out are kept unless this run measures them again.
const merge = process.argv.includes('--merge');
const testText = readFileSync(join(tinyLmPath(), 'test.txt'), 'utf8');
const calibText = readFileSync(join(tinyLmPath(), 'calibration.txt'), 'utf8');
const backend = await createWasmBackend();
const { model, tokenizer } = await loadHfModel(dir, { backend });
const batches = calibrationWindows(tokenizer!.encode(calibText), {
  samples: calibWindows,
  seqLen: 128,
  mode: 'consecutive',
});

const SPARSITIES = [0.25, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9];
let magnitude: ActivationCalibration | undefined;
let chess: ActivationCalibration | undefined;
const calibrationSeconds: Record<string, number> = {};
async function timed<T>(label: string, f: () => Promise<T>): Promise<T> {
  const start = performance.now();
  const value = await f();
  calibrationSeconds[label] = (performance.now() - start) / 1000;
  return value;
}
const magnitudeCalibration = async () =>
  (magnitude ??= await timed('magnitude', () =>
    calibrateActivations(model, batches, { sites: [...ACTIVATION_SITES, 'mlp.gate'] }),
  ));
/** TEAL's four sites of the same calibration (mlp.gate is CATS' site). */
const tealCalibration = async () => {
  const c = await magnitudeCalibration();
  return new ActivationCalibration(ACTIVATION_SITES, c.numBlocks, c.histograms, c.tokens);
};
const chessCalibration = async () => (chess ??= await timed('chess', () => calibrateChess(model, batches)));

/** TEAL's greedy path, run once to the largest target (every lower one is read off it). */
let greedy: Awaited<ReturnType<typeof greedyThresholds>> | undefined;
const greedyPath = async () =>
  (greedy ??= await timed('teal greedy path', async () =>
    greedyThresholds(model, await tealCalibration(), batches.slice(0, 4), {
      target: Math.max(...SPARSITIES),
    }),
  ));

/** How each method makes its rules at sparsity s. */
const METHODS: Record<string, (s: number) => Promise<Thresholds>> = {
  'teal uniform': async (s) => tealThresholds(await tealCalibration(), s),
  'teal greedy': async (s) => greedyThresholdsAt(await tealCalibration(), await greedyPath(), s),
  'top-k': async (s) => topKSparsity(model.numBlocks, s, ACTIVATION_SITES),
  cats: async (s) => catsThresholds(await magnitudeCalibration(), s),
  chess: async (s) => chessThresholds(await chessCalibration(), s),
  'chess+': async (s) =>
    chessThresholds(await chessCalibration(), s, { attention: await magnitudeCalibration() }),
};

const rows: Array<Record<string, unknown>> = [];
const dense = await perplexity(model, tokenizer!, testText, { maxLength: 128 });
rows.push({ method: 'dense', target: 0, sitesSparsity: 0, weightsSkipped: 0, perplexity: dense.perplexity });
console.log(`dense                      ppl ${dense.perplexity.toFixed(2)}`);
for (const [method, make] of Object.entries(METHODS)) {
  for (const s of SPARSITIES) {
    if (!only.test(`${method} ${s}`)) continue;
    const start = performance.now();
    const rules = await make(s);
    const applied = applyThresholds(model.hooks, rules);
    let ppl: number;
    try {
      ppl = (await perplexity(model, tokenizer!, testText, { maxLength: 128 })).perplexity;
    } finally {
      applied.remove();
    }
    const row = {
      method,
      target: s,
      sitesSparsity: applied.overall(),
      weightsSkipped: weightsSkipped(model, applied.measured()),
      perplexity: ppl,
      seconds: (performance.now() - start) / 1000,
    };
    rows.push(row);
    console.log(
      `${method.padEnd(14)} ${String(Math.round(s * 100)).padStart(3)}%  sites ${(row.sitesSparsity * 100).toFixed(1).padStart(5)}%  weights skipped ${(row.weightsSkipped * 100).toFixed(1).padStart(5)}%  ppl ${ppl.toFixed(2).padStart(8)}  ${row.seconds.toFixed(1)} s`,
    );
  }
}
// Deja Vu at matched sparsity: predictors trained with labels at the target sparsity of each block's
// mlp.hidden (the package's default rule for gated MLPs), applied as hooks; a predicted-inactive
// channel skips its rows of gate and up and its column of down.
for (const s of SPARSITIES) {
  if (!only.test(`deja vu ${s}`)) continue;
  const start = performance.now();
  const data = await collectPredictorData(model, batches);
  const { predictors } = await trainPredictors(data, { label: { rule: 'sparsity', sparsity: s } });
  const applied = applyPredictors(model.hooks, predictors);
  let ppl: number;
  try {
    ppl = (await perplexity(model, tokenizer!, testText, { maxLength: 128 })).perplexity;
  } finally {
    applied.remove();
  }
  let skipped = 0;
  let total = 0;
  for (const m of applied.measured()) {
    const layers = model.blockLinearLayers(m.block);
    const mlp = layers
      .filter((l) => /(gate|up|down)_proj$/.test(l.name))
      .reduce((a, l) => a + l.inFeatures * l.outFeatures, 0);
    skipped += (m.values === 0 ? 0 : m.zeros / m.values) * mlp;
  }
  for (let b = 0; b < model.numBlocks; b++)
    total += model.blockLinearLayers(b).reduce((a, l) => a + l.inFeatures * l.outFeatures, 0);
  const row = {
    method: 'deja vu',
    target: s,
    sitesSparsity: applied.overall(),
    weightsSkipped: skipped / total,
    perplexity: ppl,
    seconds: (performance.now() - start) / 1000,
  };
  rows.push(row);
  console.log(
    `deja vu        ${String(Math.round(s * 100)).padStart(3)}%  channels ${(row.sitesSparsity * 100).toFixed(1).padStart(5)}%  weights skipped ${(row.weightsSkipped * 100).toFixed(1).padStart(5)}%  ppl ${ppl.toFixed(2).padStart(8)}  ${row.seconds.toFixed(1)} s`,
  );
}
await backend.dispose();
if (merge && existsSync(outPath)) {
  const before = JSON.parse(readFileSync(outPath, 'utf8')) as { rows: Array<Record<string, unknown>> };
  const key = (r: Record<string, unknown>) => `${r.method} ${r.target}`;
  const fresh = new Set(rows.map(key));
  rows.unshift(...before.rows.filter((r) => !fresh.has(key(r))));
  const order = ['dense', ...Object.keys(METHODS), 'deja vu'];
  rows.sort(
    (a, b) =>
      order.indexOf(a.method as string) - order.indexOf(b.method as string) ||
      (a.target as number) - (b.target as number),
  );
  const seen = new Set<string>();
  for (let i = rows.length - 1; i >= 0; i--) {
    if (seen.has(key(rows[i]!))) rows.splice(i, 1);
    else seen.add(key(rows[i]!));
  }
}
mkdirSync(dirname(outPath), { recursive: true });
writeFileSync(
  `${outPath}.tmp`,
  `${JSON.stringify({ date: new Date().toISOString(), calibWindows, calibrationSeconds, rows }, null, 2)}\n`,
);
renameSync(`${outPath}.tmp`, outPath);
// Markdown: perplexity by method (rows) and target sparsity (columns), with the weights skipped.
const methods = [...new Set(rows.filter((r) => r.method !== 'dense').map((r) => r.method as string))];
const cell = (m: string, s: number) => {
  const r = rows.find((x) => x.method === m && x.target === s);
  return r === undefined
    ? ''
    : `${(r.perplexity as number).toFixed(2)} (${Math.round((r.weightsSkipped as number) * 100)}%)`;
};
const md = [
  `| method | ${SPARSITIES.map((s) => `${Math.round(s * 100)}%`).join(' | ')} |`,
  `|---|${SPARSITIES.map(() => '--:').join('|')}|`,
  `| dense | ${dense.perplexity.toFixed(2)} |${SPARSITIES.slice(1)
    .map(() => ' |')
    .join('')}`,
  ...methods.map((m) => `| ${m} | ${SPARSITIES.map((s) => cell(m, s)).join(' | ')} |`),
].join('\n');
const mdPath = outPath.replace(/\.json$/, '.md');
writeFileSync(`${mdPath}.tmp`, `${md}\n`);
renameSync(`${mdPath}.tmp`, mdPath);
console.log(md);
console.log(`wrote ${outPath}`);
