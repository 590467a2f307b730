/**
 * SAE throughput, measured in one run: encoding (tokens/s), decoding TopK latents dense (a matmul
 * over every latent) against through the CSR kernel (spmm over the nonzero latents only), on the
 * wasm backend and the reference one, and training tokens/s through tfjs.
 *
 *   pnpm bench            (in this package)
 *   node build/bench/throughput.js [--quick] [--d-in 512] [--expansion 16] [--k 32] [--rows 256]
 *     [--train-steps 5] [--train-rows 512] [--threads N] [--budget-ms 2000] [--out bench/results/throughput.json]
 *
 * Weights are seeded random (speed does not depend on training); latents are TopK of them (k of
 * d_sae per row), so the sparse decode reads k / d_sae of the decoder per row.
 */
import * as os from 'node:os';
import {
  flag,
  machineFacts,
  markdownTable,
  measureRounds,
  numberOption,
  option,
  ratio,
  reportResults,
} from '@sparsekit/bench';
import { loadTfjs, Rng } from '@sparsekit/core';
import { Sae } from '@sparsekit/sae';
import { trainSae } from '@sparsekit/sae/tfjs';
import { createWasmBackend, referenceBackend } from '@sparsekit/sparse-formats';

const quick = flag('quick');
const dIn = numberOption('d-in', 512);
const dSae = dIn * numberOption('expansion', 16);
const k = numberOption('k', 32);
const rows = numberOption('rows', 256);
const threads = numberOption('threads', os.availableParallelism());
const budgetMs = numberOption('budget-ms', quick ? 600 : 2000);
const trainSteps = numberOption('train-steps', quick ? 2 : 5);
const trainRows = numberOption('train-rows', 512);
const outPath = option('out', 'bench/results/throughput.json');

const rng = new Rng(1);
const sae = new Sae(
  { architecture: 'topk', dIn, dSae, k },
  {
    wEnc: rng.normalArray(dIn * dSae, 0, 1 / Math.sqrt(dIn)),
    bEnc: new Float32Array(dSae),
    wDec: rng.normalArray(dSae * dIn, 0, 1 / Math.sqrt(dIn)),
    bDec: new Float32Array(dIn),
  },
);
const x = rng.normalArray(rows * dIn);
const wasm = await createWasmBackend({ threads });
const { latents } = sae.encode(x, { backend: wasm });
const csr = sae.sparseLatents(latents);
const cases = [
  { name: 'encode (dense matmul + top-k)', backend: 'wasm', call: () => sae.encode(x, { backend: wasm }) },
  {
    name: 'decode dense (matmul over every latent)',
    backend: 'wasm',
    call: () => sae.decode(latents, { backend: wasm }),
  },
  {
    name: 'decode CSR (spmm over the nonzero latents)',
    backend: 'wasm',
    call: () => sae.decodeSparse(csr, { backend: wasm }),
  },
  { name: 'decode dense (matmul over every latent)', backend: 'reference', call: () => sae.decode(latents) },
  {
    name: 'decode CSR (spmm over the nonzero latents)',
    backend: 'reference',
    call: () => sae.decodeSparse(csr, { backend: referenceBackend }),
  },
];
const times = await measureRounds(
  cases.map((c) => ({ copies: 1, call: c.call })),
  { budgetMs, minReps: 2, maxReps: 200, rounds: quick ? 2 : 3 },
);
await wasm.dispose();

// Training: tokens/s of trainSae's steps (tfjs), after one warm-up step.
const { tf, backend: tfBackend } = await loadTfjs();
const trainBatch = () => rng.normalArray(trainRows * dIn);
await trainSae(tf, { architecture: 'topk', dIn, dSae, k, batches: [trainBatch()], seed: 1 });
const trainStart = performance.now();
await trainSae(tf, {
  architecture: 'topk',
  dIn,
  dSae,
  k,
  batches: Array.from({ length: trainSteps }, trainBatch),
  seed: 1,
});
const trainSeconds = (performance.now() - trainStart) / 1000;

const dense = (backend: string) =>
  times[cases.findIndex((c) => c.backend === backend && c.name.startsWith('decode dense'))]!.warmMs;
const results = cases.map((c, i) => ({
  case: c.name,
  backend: c.backend,
  ms: times[i]!.warmMs,
  tokensPerSecond: (rows * 1000) / times[i]!.warmMs,
  ...(c.name.startsWith('decode') ? { speedupOverDense: dense(c.backend) / times[i]!.warmMs } : {}),
}));
const training = {
  steps: trainSteps,
  rowsPerStep: trainRows,
  seconds: trainSeconds,
  tokensPerSecond: (trainSteps * trainRows) / trainSeconds,
  tfjsBackend: tfBackend,
};
const table = [
  `SAE d_in ${dIn}, d_sae ${dSae}, TopK k ${k} (${((100 * k) / dSae).toFixed(2)}% of latents nonzero), ${rows} rows per call, wasm on ${threads} threads`,
  '',
  markdownTable(
    ['case', 'backend', 'ms per call', 'tokens/s', 'vs dense decode'],
    results.map((r) => [
      r.case,
      r.backend,
      r.ms.toFixed(2),
      Math.round(r.tokensPerSecond).toLocaleString('en-US'),
      r.speedupOverDense === undefined ? '-' : ratio(r.speedupOverDense),
    ]),
  ),
  '',
  `training (trainSae, tfjs ${tfBackend}): ${Math.round(training.tokensPerSecond).toLocaleString('en-US')} tokens/s (${trainSteps} steps of ${trainRows} rows in ${trainSeconds.toFixed(1)} s, after a warm-up step)`,
].join('\n');
reportResults({
  outPath,
  script: 'node build/bench/throughput.js',
  table,
  data: { dIn, dSae, k, rows, threads, results, training },
  machine: machineFacts(),
});
