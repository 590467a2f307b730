/**
 * Perplexity of tiny-lm on its test text after one-shot pruning, every method and pattern of the
 * pruners README, measured in one run:
 *
 *   node tooling/tiny-lm/dist/quality.js [--model DIR] [--calib-windows 32] [--only REGEX]
 *     [--no-sweep] [--prefix-eot] [--out bench-results/pruning-quality.json]
 *
 * Calibration: `--calib-windows` windows of 128 tokens from tiny-lm/calibration.txt. Evaluation:
 * the SparseGPT protocol (windows of 128 tokens) over tiny-lm/test.txt. Also runs the 50% / 4:8 /
 * 2:4 rows on tiny-lm with planted outlier channels (same function; see outliers.ts), records the
 * input-feature statistics of both, and writes the JSON plus a Markdown table next to it.
 */
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { option } from '@sparsekit/bench';
import { calibrationHooks, type Tensor } from '@sparsekit/core';
import { calibrationWindows, perplexity, type ScoringWindow, scoreWindows } from '@sparsekit/eval-harness';
import type { TransformerLM } from '@sparsekit/models';
import { loadHfModel, tinyLmPath } from '@sparsekit/models/node';
import {
  essentialSparsity,
  type PruneModelOptions,
  pruneModel,
  type SliceGptReport,
  sliceGpt,
} from '@sparsekit/pruners';
import { createWasmBackend } from '@sparsekit/sparse-formats';
import { plantOutlierChannels } from './outliers.js';

const calibWindows = Number(option('calib-windows', '32'));
const outPath = option('out', join('bench-results', 'pruning-quality.json'));
const dir = option('model', tinyLmPath());
// The evaluation and calibration text ship with the bundled model (the same split for any retraining).
const testText = readFileSync(join(tinyLmPath(), 'test.txt'), 'utf8');
const calibText = readFileSync(join(tinyLmPath(), 'calibration.txt'), 'utf8');
const backend = await createWasmBackend();

type Config = {
  label: string;
  model: 'tiny-lm' | 'tiny-lm + outlier channels';
  prune?: Omit<PruneModelOptions, 'onProgress'>;
  slice?: number;
};
const configs: Config[] = [];
for (const model of ['tiny-lm', 'tiny-lm + outlier channels'] as const) {
  configs.push({ label: 'dense', model });
  for (const method of ['magnitude', 'wanda', 'sparsegpt'] as const) {
    configs.push({ label: `${method} 50%`, model, prune: { method, sparsity: 0.5 } });
    configs.push({ label: `${method} 4:8`, model, prune: { method, n: 4, m: 8 } });
    configs.push({ label: `${method} 2:4`, model, prune: { method, n: 2, m: 4 } });
  }
  if (model !== 'tiny-lm') continue;
  // Magnitude in Wanda's comparison group (each output row), to separate the group from the score.
  configs.push({
    label: 'magnitude 50% per row',
    model,
    prune: { method: 'magnitude', sparsity: 0.5, magnitudeScope: 'row' },
  });
  for (const method of ['wanda', 'sparsegpt'] as const) {
    for (const s of [0.6, 0.7, 0.8])
      configs.push({ label: `${method} ${Math.round(s * 100)}%`, model, prune: { method, sparsity: s } });
  }
  for (const s of [0.1, 0.2, 0.3])
    configs.push({ label: `slicegpt ${Math.round(s * 100)}%`, model, slice: s });
}

/** sqrt(max / median) of the mean squared input feature, per layer kind, over the calibration batches. */
function inputOutlierRatios(model: TransformerLM, batches: Tensor<'i32'>[]): Record<string, number> {
  const sums = new Map<string, Float64Array>();
  for (const b of batches) {
    model.forward(b, model.createCache(b.shape[0]!), {
      hooks: calibrationHooks((layer, x) => {
        const s = sums.get(layer.name) ?? new Float64Array(layer.inFeatures);
        for (let i = 0; i < x.size; i++) s[i % layer.inFeatures]! += x.data[i]! ** 2;
        sums.set(layer.name, s);
      }),
    });
  }
  const byKind = new Map<string, number[]>();
  for (const [name, s] of sums) {
    const sorted = [...s].sort((a, b) => a - b);
    const kind = name.split('.').at(-1)!;
    byKind.set(kind, [...(byKind.get(kind) ?? []), Math.sqrt(sorted.at(-1)! / sorted[sorted.length >> 1]!)]);
  }
  return Object.fromEntries([...byKind].map(([k, v]) => [k, Math.max(...v)]));
}

const only = new RegExp(option('only', '.'));
const prefixEot = process.argv.includes('--prefix-eot');

/** The SparseGPT protocol with <|endoftext|> before every window: chunks of 128 tokens, each predicted once. */
async function prefixedPerplexity(model: TransformerLM, ids: number[], eot: number) {
  const windows: ScoringWindow[] = [];
  for (let s = 0; s + 128 <= ids.length; s += 128) {
    windows.push({
      input: Int32Array.from([eot, ...ids.slice(s, s + 127)]),
      firstScored: 0,
      targets: Int32Array.from(ids.slice(s, s + 128)),
    });
  }
  const { nll, scored } = await scoreWindows(model, windows);
  return { perplexity: Math.exp(nll / scored), protocol: { name: 'eot-prefixed', windows: windows.length } };
}

const rows: Array<Record<string, unknown>> = [];
const outlierStats: Record<string, Record<string, number>> = {};
for (const config of configs.filter((c) => only.test(`${c.model} ${c.label}`))) {
  const { model, tokenizer } = await loadHfModel(dir, { backend });
  if (config.model !== 'tiny-lm') plantOutlierChannels(model);
  // With --prefix-eot (models trained with --bos) every window is <|endoftext|> + 127 tokens.
  const batches = calibrationWindows(tokenizer!.encode(calibText), {
    samples: calibWindows,
    seqLen: 128,
    mode: 'consecutive',
    prefix: prefixEot ? [model.config.eosTokenId!] : [],
  });
  if (config.label === 'dense') outlierStats[config.model] = inputOutlierRatios(model, batches);
  const parameters = model.parameterCount();
  let report: Awaited<ReturnType<typeof pruneModel>> | undefined;
  let sliced: SliceGptReport | undefined;
  if (config.prune !== undefined)
    report = await pruneModel(model, batches, {
      ...config.prune,
      reconstructionError: false,
      backend,
    });
  // roundTo 1: on a 128-wide model the reference's multiples of 8 would turn 10% into 12.5%.
  if (config.slice !== undefined)
    sliced = await sliceGpt(model, batches, { sparsity: config.slice, roundTo: 1 });
  const ppl = prefixEot
    ? await prefixedPerplexity(model, tokenizer!.encode(testText), model.config.eosTokenId!)
    : await perplexity(model, tokenizer!, testText, { maxLength: 128 });
  const perLayer =
    report === undefined ? 0 : report.layers.reduce((s, l) => s + l.seconds, 0) / report.layers.length;
  const seconds = report?.seconds ?? sliced?.seconds ?? 0;
  rows.push({
    model: config.model,
    config: config.label,
    sparsity: report?.sparsity ?? 0,
    ...(sliced === undefined
      ? {}
      : { slicedWidth: sliced.slicedWidth, parameters: sliced.parameters, denseParameters: parameters }),
    perplexity: ppl.perplexity,
    seconds,
    secondsPerLayer: perLayer,
    protocol: ppl.protocol,
  });
  const what =
    sliced === undefined
      ? `sparsity ${((report?.sparsity ?? 0) * 100).toFixed(1).padStart(5)}%`
      : `width ${sliced.slicedWidth}, params ${((100 * sliced.parameters.after) / parameters).toFixed(0)}% of dense`;
  console.log(
    `${config.model.padEnd(27)} ${config.label.padEnd(16)} ${what}  ppl ${ppl.perplexity.toFixed(2).padStart(8)}  ${seconds.toFixed(1)} s` +
      (report === undefined ? '' : ` (${(perLayer * 1000).toFixed(0)} ms/layer)`),
  );
}
// Essential sparsity: one-shot magnitude (one threshold per layer) at rising sparsity.
const sweep = process.argv.includes('--no-sweep')
  ? undefined
  : await essentialSparsity([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9], async (s) => {
      const { model, tokenizer } = await loadHfModel(dir, { backend });
      if (s > 0) await pruneModel(model, [], { method: 'magnitude', sparsity: s });
      return (await perplexity(model, tokenizer!, testText, { maxLength: 128 })).perplexity;
    });
if (sweep !== undefined)
  console.log(
    `essential sparsity (magnitude, within 5% of dense perplexity): ${sweep.essential}; knee at ${sweep.knee}; ` +
      sweep.points.map((p) => `${p.sparsity}: ${p.value.toFixed(1)}`).join(', '),
  );
await backend.dispose();
mkdirSync(dirname(outPath), { recursive: true });
writeFileSync(
  `${outPath}.tmp`,
  `${JSON.stringify({ date: new Date().toISOString(), calibWindows, outlierStats, rows, essentialSparsity: sweep }, null, 2)}\n`,
);
renameSync(`${outPath}.tmp`, outPath);
// Markdown: one column per model.
const models = ['tiny-lm', 'tiny-lm + outlier channels'];
const labels = [...new Set(rows.map((r) => r.config as string))];
const cell = (model: string, label: string) => {
  const r = rows.find((x) => x.model === model && x.config === label);
  return r === undefined ? '' : (r.perplexity as number).toFixed(2);
};
const md = [
  `| method | ${models.join(' | ')} | seconds (tiny-lm) |`,
  `|---|${models.map(() => '--:').join('|')}|--:|`,
  ...labels.map((label) => {
    const r = rows.find((x) => x.model === 'tiny-lm' && x.config === label);
    const seconds = r === undefined ? '' : (r.seconds as number).toFixed(1);
    return `| ${label} | ${models.map((m) => cell(m, label)).join(' | ')} | ${seconds} |`;
  }),
].join('\n');
const mdPath = outPath.replace(/\.json$/, '.md');
writeFileSync(`${mdPath}.tmp`, `${md}\n`);
renameSync(`${mdPath}.tmp`, mdPath);
console.log(md);
console.log(`wrote ${outPath}`);
