/**
 * Decode attention with Quest and Double Sparsity against dense decode attention, measured in the
 * same run on the wasm backend: one decode step of one layer (every key/value head's lane: the
 * policy's `select`, then attention over what it chose) at each context length and token budget.
 * Keys and values live in the backend's memory (as a model's KV cache does), and so do the
 * policies' summaries (Quest's page bounds, Double Sparsity's label cache).
 *
 *   pnpm bench                 (in this package: all benchmarks)
 *   node build/bench/decode.js [--contexts 4096,16384,32768,65536] [--budgets 4,8,16,32]
 *     [--kv-heads 8] [--group 4] [--dim 128] [--rounds 3] [--budget-ms 1500] [--threads N]
 *     [--seed 1] [--out bench/results/decode.json]
 *
 * A budget b means 1/b of the context: Quest reads that many tokens in pages of 16, Double Sparsity
 * keeps that many heavy tokens (`heavyConst`) with labels of headDim / 8 channels (4 bits, one order
 * per key/value head). Target: Quest at 32K with a 1/16 budget >= 7x dense.
 */
import * as os from 'node:os';
import {
  machineFacts,
  markdownTable,
  measureRounds,
  numberOption,
  option,
  ratio,
  writeJsonAtomic,
  writeTextAtomic,
} from '@sparsekit/bench';
import { type KvPolicy, Rng } from '@sparsekit/core';
import {
  decodeLayerStep,
  doubleSparsity,
  type LabelChannels,
  quest,
  syntheticLayer,
} from '@sparsekit/sparse-attention';
import { createWasmBackend } from '@sparsekit/sparse-formats';

const contexts = option('contexts', '4096,16384,32768,65536').split(',').map(Number);
const budgets = option('budgets', '4,8,16,32').split(',').map(Number);
const kvHeads = numberOption('kv-heads', 8);
const group = numberOption('group', 4);
const dim = numberOption('dim', 128);
const rounds = numberOption('rounds', 3);
const budgetMs = numberOption('budget-ms', 1500);
const threads = numberOption('threads', os.availableParallelism());
const seed = numberOption('seed', 1);
const outPath = option('out', 'bench/results/decode.json');
const LAYER = 2; // synthetic lanes are layer 2: past both policies' dense layers
const PAGE = 16;
const GROUP_FACTOR = 8;

const backend = await createWasmBackend({ threads });
const rng = new Rng(seed);
console.log(
  `decode attention, one layer: ${kvHeads} key/value heads x ${group} query heads, head dim ${dim}; ` +
    `${os.cpus()[0]?.model ?? 'cpu'}, ${backend.threads} threads`,
);

// One channel order per key/value head (random: speed does not depend on which channels).
const order = () => {
  const o = Int32Array.from({ length: dim }, (_, i) => i);
  for (let i = dim - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    [o[i], o[j]] = [o[j]!, o[i]!];
  }
  return o;
};
const channels: LabelChannels = {
  source: 'k',
  headDim: dim,
  layers: Array.from({ length: LAYER + 1 }, () => Array.from({ length: kvHeads }, order)),
};

interface Row {
  context: number;
  subject: string;
  budget: string;
  tokensRead: number;
  ms: number;
  vsDense: number;
}
const rows: Row[] = [];
for (const context of contexts) {
  const layer = syntheticLayer(backend, {
    context,
    kvHeads,
    group,
    headDim: dim,
    pageSize: PAGE,
    seed: seed + context,
  });
  const out = new Float32Array(group * dim);
  const step = (policy: KvPolicy | undefined) => decodeLayerStep(backend, layer, policy, out);
  const subjects: Array<{ subject: string; budget: string; policy?: KvPolicy & { reset(): void } }> = [
    { subject: 'dense', budget: '-' },
  ];
  for (const b of budgets) {
    const tokens = Math.floor(context / b);
    subjects.push({ subject: 'quest', budget: `1/${b}`, policy: quest({ budget: tokens, backend }) });
    subjects.push({
      subject: 'double sparsity',
      budget: `1/${b}`,
      policy: doubleSparsity({ channels, heavyConst: tokens, groupFactor: GROUP_FACTOR, backend }),
    });
  }
  const read = subjects.map((s) => step(s.policy)); // builds each policy's summaries once
  const timings = await measureRounds(
    subjects.map((s) => ({ copies: 1, call: () => step(s.policy) })),
    { budgetMs, minReps: 3, maxReps: 200, rounds },
  );
  const dense = timings[0]!.coldMs;
  subjects.forEach((s, i) => {
    rows.push({
      context,
      subject: s.subject,
      budget: s.budget,
      tokensRead: read[i]!,
      ms: timings[i]!.coldMs,
      vsDense: dense / timings[i]!.coldMs,
    });
    s.policy?.reset();
  });
  console.log(`context ${context}: dense ${dense.toFixed(2)} ms`);
  layer.dispose();
}

const table = markdownTable(
  ['context', 'subject', 'budget', 'tokens read', 'ms / layer step', 'vs dense'],
  rows.map((r) => [
    String(r.context),
    r.subject,
    r.budget,
    r.tokensRead.toFixed(0),
    r.ms.toFixed(3),
    ratio(r.vsDense),
  ]),
);
const at = rows.find((r) => r.context === 32768 && r.subject === 'quest' && r.budget === '1/16');
const target =
  at === undefined
    ? undefined
    : {
        target: 'Quest at 32K with a 1/16 budget >= 7x dense',
        measured: ratio(at.vsDense),
        met: at.vsDense >= 7,
      };
console.log(`\n${table}\n`);
if (target !== undefined)
  console.log(`target: ${target.target}: ${target.measured} (${target.met ? 'met' : 'missed'})`);
writeJsonAtomic(outPath, {
  machine: machineFacts(),
  command: `node build/bench/decode.js ${process.argv.slice(2).join(' ')}`.trim(),
  shape: { kvHeads, group, dim, pageSize: PAGE, groupFactor: GROUP_FACTOR },
  rows,
  target,
});
writeTextAtomic(outPath.replace(/\.json$/, '.md'), `${table}\n`);
await backend.dispose();
