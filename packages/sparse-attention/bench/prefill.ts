/**
 * Block-sparse prefill attention on the wasm backend against dense prefill attention measured in
 * the same run. One key/value head's group of query heads over a sequence; the sparse subjects read
 * only the key blocks listed per query block (random lists, seeded, always with the diagonal block,
 * non-causal so that 0% is the dense rectangle). Block sparsity is counted from the lists.
 *
 *   pnpm bench                 (in this package: all benchmarks)
 *   node build/bench/prefill.js [--seq 4096] [--heads 4] [--dim 128] [--block 128]
 *     [--sparsities 50,75,90] [--rounds 3] [--budget-ms 3000] [--threads N] [--seed 1]
 *     [--out bench/results/prefill.json]
 *
 * Baselines: "dense (products)" is the backend's dense path (Q K^T and P V on its GEMM kernel, the
 * fastest dense attention it has); "dense (block kernel)" is the block kernel with every block
 * listed. Target: >= 5x the fastest dense at 90% block sparsity.
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
import { Rng } from '@sparsekit/core';
import { type AttentionArgs, type AttentionMask, createWasmBackend } from '@sparsekit/sparse-formats';

const seq = numberOption('seq', 4096);
const heads = numberOption('heads', 4);
const dim = numberOption('dim', 128);
const blockSize = numberOption('block', 128);
const sparsities = option('sparsities', '50,75,90').split(',').map(Number);
const rounds = numberOption('rounds', 3);
const budgetMs = numberOption('budget-ms', 3000);
const threads = numberOption('threads', os.availableParallelism());
const seed = numberOption('seed', 1);
const outPath = option('out', 'bench/results/prefill.json');

const backend = await createWasmBackend({ threads });
const rng = new Rng(seed);
const keys = backend.allocate(seq * dim);
const values = backend.allocate(seq * dim);
keys.set(rng.normalArray(seq * dim));
values.set(rng.normalArray(seq * dim));
const q = rng.normalArray(heads * seq * dim);
const out = new Float32Array(heads * seq * dim);
const base: AttentionArgs = { q, heads, seq, headDim: dim, keys, values, keyLength: seq, out };
const blocks = Math.ceil(seq / blockSize);

/** Lists keeping each off-diagonal block with probability p, so the share kept is about 1 - s. */
function lists(sparsity: number): Int32Array[] {
  const keep = Math.max(0, (blocks * (1 - sparsity) - 1) / (blocks - 1));
  return Array.from({ length: blocks }, (_, r) => {
    const list: number[] = [];
    for (let b = 0; b < blocks; b++) if (b === r || rng.uniform() < keep) list.push(b);
    return Int32Array.from(list);
  });
}

interface Row {
  subject: string;
  dense: boolean;
  blockSparsity: number;
  ms: number;
  gflops: number;
  vsFastestDense: number;
  vsBlockKernelDense: number;
}

const subjects: Array<{ name: string; dense: boolean; mask: AttentionMask; kept: number }> = [
  { name: 'dense (products)', dense: true, mask: { kind: 'full' }, kept: blocks * blocks },
];
for (const s of [0, ...sparsities]) {
  const kvBlocks = lists(s / 100);
  const kept = kvBlocks.reduce((n, l) => n + l.length, 0);
  subjects.push({
    name: s === 0 ? 'dense (block kernel)' : `block-sparse ${s}%`,
    dense: s === 0,
    mask: { kind: 'blocks', blockSize, kvBlocks },
    kept,
  });
}

console.log(
  `prefill attention: seq ${seq}, ${heads} query heads per key/value head, head dim ${dim}, blocks ${blockSize}; ` +
    `${os.cpus()[0]?.model ?? 'cpu'}, ${backend.threads} threads`,
);
const timings = await measureRounds(
  subjects.map((s) => ({ copies: 1, call: () => backend.attention({ ...base, mask: s.mask }) })),
  { budgetMs, minReps: 2, maxReps: 30, rounds },
  (r) => console.log(`round ${r + 1}/${rounds} done`),
);
const denseFlops = 4 * heads * seq * seq * dim;
const rows: Row[] = subjects.map((s, i) => ({
  subject: s.name,
  dense: s.dense,
  blockSparsity: 1 - s.kept / (blocks * blocks),
  ms: timings[i]!.coldMs,
  gflops: (denseFlops * (s.kept / (blocks * blocks))) / (timings[i]!.coldMs * 1e6),
  vsFastestDense: 0,
  vsBlockKernelDense: 0,
}));
const fastest = Math.min(...rows.filter((r) => r.dense).map((r) => r.ms));
const kernelDense = rows.find((r) => r.subject === 'dense (block kernel)')!.ms;
for (const r of rows) {
  r.vsFastestDense = fastest / r.ms;
  r.vsBlockKernelDense = kernelDense / r.ms;
}
const table = markdownTable(
  ['subject', 'block sparsity', 'ms', 'GFLOP/s (done)', 'vs fastest dense', 'vs block kernel dense'],
  rows.map((r) => [
    r.subject,
    `${(100 * r.blockSparsity).toFixed(1)}%`,
    r.ms.toFixed(1),
    r.gflops.toFixed(1),
    ratio(r.vsFastestDense),
    ratio(r.vsBlockKernelDense),
  ]),
);
const at90 = rows.find((r) => r.subject === 'block-sparse 90%');
const target =
  at90 === undefined
    ? undefined
    : {
        target: '90% block sparsity >= 5x the fastest dense',
        measured: ratio(at90.vsFastestDense),
        met: at90.vsFastestDense >= 5,
      };
reportResults({
  outPath,
  script: 'node build/bench/prefill.js',
  table,
  target,
  machine: machineFacts(),
  data: { shape: { seq, heads, dim, blockSize }, rows },
});
await backend.dispose();
