/**
 * Quality of the KV policies on tiny-lm at its full context (128 tokens), every policy of the
 * sparse-attention README at falling budgets, measured in one run:
 *
 *   node tooling/tiny-lm/dist/attention-quality.js [--windows 24] [--prefill 32] [--budgets 64,32,16]
 *     [--out tooling/tiny-lm/results/attention-quality.json]
 *
 * Each 128-token window of tiny-lm/test.txt (the SparseGPT protocol's windows, the first --windows
 * of them) is run as a prompt of --prefill tokens (dense) and then decoded one token at a time under
 * the policy; perplexity is over the decoded tokens' predictions (the dense row decodes the same
 * way with no policy). Selection policies (Quest, Double Sparsity) also report, per decode step and
 * lane, the attention recall (probability mass of the keys read, on tiny-lm's own attention) and the
 * relative error of the attention output against exact attention. Layers 0-1 stay dense for Quest
 * and Double Sparsity, as their references. Double Sparsity's channels are calibrated on 16 windows
 * of tiny-lm/calibration.txt. Writes the JSON and a Markdown table next to it.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { machineFacts, markdownTable, option, reportResults } from '@sparsekit/bench';
import { type KvPolicy, Tensor } from '@sparsekit/core';
import { calibrationWindows } from '@sparsekit/eval-harness';
import { loadHfModel, tinyLmPath } from '@sparsekit/models/node';
import {
  calibrateDoubleSparsity,
  KV_POLICIES,
  labelChannels,
  policyPerplexity,
  poolSelectionStats,
  recordSelections,
  type SelectionStats,
} from '@sparsekit/sparse-attention';

const windows = Number(option('windows', '24'));
const prefill = Number(option('prefill', '32'));
const budgets = option('budgets', '64,32,16').split(',').map(Number);
const outPath = option('out', join('tooling', 'tiny-lm', 'results', 'attention-quality.json'));
const { model, tokenizer } = await loadHfModel(tinyLmPath());
const ids = tokenizer!.encode(readFileSync(join(tinyLmPath(), 'test.txt'), 'utf8'));
const length = model.maxSequenceLength;
const inputs = Array.from(
  { length: Math.min(windows, Math.floor(ids.length / length)) },
  (_, w) => new Tensor('i32', [1, length], Int32Array.from(ids.slice(w * length, (w + 1) * length))),
);
const calibration = calibrationWindows(
  tokenizer!.encode(readFileSync(join(tinyLmPath(), 'calibration.txt'), 'utf8')),
  {
    samples: 16,
    seqLen: length,
    mode: 'consecutive',
  },
);
const channels = labelChannels(await calibrateDoubleSparsity(model, calibration), 'qk');

/** Perplexity over the decoded positions (the package's protocol: prompt dense, then one step a token). */
const decodedPerplexity = (makePolicy: () => KvPolicy | undefined, pageSize?: number) =>
  policyPerplexity(model, inputs, makePolicy, { prefill, ...(pageSize === undefined ? {} : { pageSize }) })
    .perplexity;

interface Row {
  policy: string;
  budget: number | null;
  perplexity: number;
  recall: number | null;
  relativeError: number | null;
  density: number | null;
  seconds: number;
}
const rows: Row[] = [];
function add(policy: string, budget: number | null, run: () => { ppl: number; stats?: SelectionStats }) {
  const start = performance.now();
  const { ppl, stats } = run();
  const row: Row = {
    policy,
    budget,
    perplexity: ppl,
    recall: stats?.recall ?? null,
    relativeError: stats?.relativeError ?? null,
    density: stats?.density ?? null,
    seconds: (performance.now() - start) / 1000,
  };
  rows.push(row);
  console.log(
    `${policy.padEnd(22)} ${String(budget ?? '-').padStart(4)}  ppl ${ppl.toFixed(2).padStart(7)}` +
      (stats === undefined
        ? ''
        : `  recall ${stats.recall.toFixed(3)}  rel. error ${stats.relativeError.toFixed(3)}`) +
      `  ${row.seconds.toFixed(1)} s`,
  );
}

add('dense', null, () => ({ ppl: decodedPerplexity(() => undefined) }));
const variants = [
  ...KV_POLICIES.map((entry) => ({ label: entry.name, entry, pageSize: undefined as number | undefined })),
  { label: 'quest (pages of 4)', entry: KV_POLICIES.find((p) => p.name === 'quest')!, pageSize: 4 },
];
for (const budget of budgets) {
  for (const { label, entry, pageSize } of variants) {
    add(label, budget, () => {
      const settings = { budget, channels, ...(pageSize === undefined ? {} : { pageSize }) };
      if (entry.kind === 'evict') return { ppl: decodedPerplexity(() => entry.make(settings), pageSize) };
      const recorders: Array<ReturnType<typeof recordSelections>> = [];
      const ppl = decodedPerplexity(() => {
        const recorder = recordSelections(entry.make(settings));
        recorders.push(recorder);
        return recorder.policy;
      }, pageSize);
      return { ppl, stats: poolSelectionStats(recorders.map((r) => r.stats())) };
    });
  }
}

const table = markdownTable(
  ['policy', 'budget (of 128)', 'perplexity', 'recall', 'output rel. error', 'share read'],
  rows.map((r) => [
    r.policy,
    r.budget === null ? '-' : String(r.budget),
    r.perplexity.toFixed(2),
    r.recall === null ? '-' : r.recall.toFixed(3),
    r.relativeError === null ? '-' : r.relativeError.toFixed(3),
    r.density === null ? '-' : `${(100 * r.density).toFixed(0)}%`,
  ]),
);
reportResults({
  outPath,
  script: 'node tooling/tiny-lm/dist/attention-quality.js',
  table,
  machine: machineFacts(),
  data: { model: 'tiny-lm', windows: inputs.length, prefill, decodedTokensPerWindow: length - prefill, rows },
});
