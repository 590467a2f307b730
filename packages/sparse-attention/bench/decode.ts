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
  reportResults,
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
  /** Bytes the step reads (all lanes): keys and values read, plus the policy's summaries. */
  bytesRead: number;
  ms: number;
  vsDense: number;
}
const rows: Row[] = [];
const rowBytes = 2 * dim * 4; // a key and a value, f32
/** Bytes of one layer step: `read` entries per lane, plus each lane's summaries. */
const bytesOf = (subject: string, context: number, read: number) => {
  const summaries =
    subject.startsWith('quest') && subject !== 'quest: attention only'
      ? Math.ceil(context / PAGE) * 2 * dim * 4 // [max | min] per page
      : subject === 'double sparsity'
        ? context * (dim / GROUP_FACTOR) * 4 // label channels per entry, f32
        : 0;
  return kvHeads * (summaries + read * rowBytes);
};
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
  // Where Quest's time goes at a 1/16 budget: its page selection alone, and attention over the
  // entries it selected alone (the selections are made once, outside the timing).
  const split = quest({ budget: Math.floor(context / 16), backend });
  const query = (i: number) => ({
    q: layer.queries[i]!,
    heads: group,
    seq: 1,
    position: context - 1,
    block: LAYER,
  });
  const chosen = layer.lanes.map((lane, i) => split.select(lane, query(i))!);
  const parts = [
    {
      subject: 'quest: selection only',
      call: () => {
        for (const [i, lane] of layer.lanes.entries()) split.select(lane, query(i));
      },
      read: 0,
    },
    {
      subject: 'quest: attention only',
      call: () => {
        for (const [i, lane] of layer.lanes.entries())
          backend.attention({
            q: layer.queries[i]!,
            heads: group,
            seq: 1,
            headDim: dim,
            keys: lane.keys,
            values: lane.values,
            keyLength: context,
            out,
            mask: { kind: 'positions', positions: chosen[i]! },
          });
      },
      read: chosen[0]!.length,
    },
  ];
  const timings = await measureRounds(
    [
      ...subjects.map((s) => ({ copies: 1, call: () => step(s.policy) })),
      ...parts.map((p) => ({ copies: 1, call: p.call })),
    ],
    { budgetMs, minReps: 3, maxReps: 200, rounds },
  );
  split.reset();
  const dense = timings[0]!.coldMs;
  subjects.forEach((s, i) => {
    rows.push({
      context,
      subject: s.subject,
      budget: s.budget,
      tokensRead: read[i]!,
      bytesRead: bytesOf(s.subject, context, read[i]!),
      ms: timings[i]!.coldMs,
      vsDense: dense / timings[i]!.coldMs,
    });
    s.policy?.reset();
  });
  parts.forEach((p, j) => {
    const t = timings[subjects.length + j]!.coldMs;
    rows.push({
      context,
      subject: p.subject,
      budget: '1/16',
      tokensRead: p.read,
      bytesRead: bytesOf(p.subject, context, p.read),
      ms: t,
      vsDense: timings[0]!.coldMs / t,
    });
  });

  console.log(`context ${context}: dense ${dense.toFixed(2)} ms`);
  layer.dispose();
}

const table = markdownTable(
  ['context', 'subject', 'budget', 'tokens read / lane', 'MB read', 'ms / layer step', 'GB/s', 'vs dense'],
  rows.map((r) => [
    String(r.context),
    r.subject,
    r.budget,
    r.tokensRead.toFixed(0),
    (r.bytesRead / 1e6).toFixed(1),
    r.ms.toFixed(3),
    (r.bytesRead / r.ms / 1e6).toFixed(1),
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
reportResults({
  outPath,
  script: 'node build/bench/decode.js',
  table,
  target,
  machine: machineFacts(),
  data: { shape: { kvHeads, group, dim, pageSize: PAGE, groupFactor: GROUP_FACTOR }, rows },
});
await backend.dispose();
