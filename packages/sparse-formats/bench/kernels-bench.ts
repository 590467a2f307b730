/**
 * y = x W^T on the CPU: our wasm kernels on every format against the dense baselines (our dense
 * kernel, tfjs-backend-wasm matMul, onnxruntime-node MatMul), measured in one run.
 *
 *   pnpm bench                      (from the repository root; runs this with the defaults)
 *   node build/bench/kernels-bench.js [--shapes 4096x4096,11008x4096] [--batches 1,8,128]
 *     [--only csr,dense] [--budget-ms 1500] [--working-set-mb N] [--threads N] [--out DIR]
 *
 * Prints a table per shape and batch and writes DIR/kernels.json and DIR/kernels.md
 * (DIR defaults to bench-results/).
 */
import * as os from 'node:os';
import { join } from 'node:path';
import {
  copiesFor,
  lastLevelCacheBytes,
  machineFacts,
  measure,
  option,
  transposed,
  withCopies,
  workingSetBytes,
  writeJsonAtomic,
  writeTextAtomic,
} from '@sparsekit/bench';
import { Rng } from '@sparsekit/core';
import { createWasmBackend, type DenseMatrix, sparsity } from '@sparsekit/sparse-formats';
import { denseWeight, type WeightCase, WeightFactory, weightCases } from './matrices.js';
import { checkTargets, markdownTable, printTable, type Row } from './report.js';
import { onnxSubject, type Subject, tfjsSubject, wasmSubject } from './subjects.js';

const shapes = option('shapes', '4096x4096,11008x4096')
  .split(',')
  .map((s) => s.split('x').map(Number) as [number, number]);
const batches = option('batches', '1,8,128').split(',').map(Number);
const only = option('only', '')
  .split(',')
  .filter((s) => s !== '');
const budgetMs = Number(option('budget-ms', '1500'));
const threads = Number(option('threads', String(os.availableParallelism())));
const outDir = option('out', 'bench-results');
const llc = lastLevelCacheBytes();
const workingSet = Number(option('working-set-mb', String(workingSetBytes(llc) / 2 ** 20))) * 2 ** 20;
const timing = { budgetMs, minReps: 5, maxReps: 61 };

const selected = (label: string) => only.length === 0 || only.some((s) => label.includes(s));

const backend = await createWasmBackend({ threads });
const triadElements = Math.ceil(workingSet / 12);
const triadGBs = backend.triad(triadElements, 5);
console.log(
  `${os.cpus()[0]?.model ?? 'cpu'}, ${threads} threads, LLC ${llc === undefined ? '?' : `${llc / 2 ** 20} MiB`}, ` +
    `working set ${(workingSet / 2 ** 20).toFixed(0)} MiB, triad ${triadGBs.toFixed(1)} GB/s`,
);

const rows: Row[] = [];

async function run(subject: Subject, shape: [number, number], measuredSparsity: number): Promise<void> {
  for (const batch of batches) {
    const x = new Rng(batch).normalArray(batch * shape[1]);
    subject.setBatch(batch, x);
    const t = await measure(subject, timing);
    const seconds = t.coldMs / 1000;
    const moved = subject.weightBytes + 4 * batch * (shape[0] + shape[1]);
    rows.push({
      shape: `${shape[0]}x${shape[1]}`,
      batch,
      kernel: subject.kernel,
      dtype: subject.dtype,
      dense: subject.dense,
      threads: subject.threads,
      sparsity: measuredSparsity,
      weightBytes: subject.weightBytes,
      copies: subject.copies,
      workingSetBytes: subject.copies * subject.weightBytes,
      reps: t.reps,
      coldMs: t.coldMs,
      warmMs: t.warmMs,
      gflops: (2 * shape[0] * shape[1] * batch) / seconds / 1e9,
      gbs: moved / seconds / 1e9,
      bandwidthShare: moved / seconds / 1e9 / triadGBs,
      speedup: 0,
      speedupSameDtype: 0,
    });
    process.stdout.write(
      `  ${rows.at(-1)!.shape} b=${batch} ${subject.kernel}: ${t.coldMs.toFixed(3)} ms (warm ${t.warmMs.toFixed(3)})\n`,
    );
  }
}

for (const shape of shapes) {
  const [outF, inF] = shape;
  console.log(`\nW ${outF}x${inF}: building weights`);
  const factory = new WeightFactory(denseWeight(outF, inF, 1), 1);
  const denseF32: DenseMatrix = factory.dense();
  const denseBytes = outF * inF * 4;
  if (selected('tfjs') || selected('onnxruntime')) {
    const wt = transposed(denseF32.values as Float32Array, outF, inF);
    if (selected('onnxruntime')) {
      const s = await withCopies(
        (c) => onnxSubject(denseF32, wt, c, threads),
        copiesFor(denseBytes, workingSet),
      );
      await run(s, shape, 0);
      s.dispose();
    }
    if (selected('tfjs')) {
      const s = await withCopies((c) => tfjsSubject(denseF32, wt, c), copiesFor(denseBytes, workingSet));
      await run(s, shape, 0);
      s.dispose();
    }
  }
  for (const c of weightCases() as WeightCase[]) {
    if (!selected(c.label)) continue;
    const matrix = c.format === 'dense' && c.dtype === 'f32' ? denseF32 : factory.build(c);
    const s = wasmSubject(backend, c.label, matrix, copiesFor(backend.prepare(matrix).bytes, workingSet));
    backend.release(matrix);
    await run(s, shape, c.format === 'dense' ? 0 : sparsity(matrix));
    s.dispose();
  }
}
await backend.dispose();

const targets = checkTargets(rows);
printTable(rows, triadGBs);
for (const t of targets) console.log(`${t.met ? 'met ' : 'MISS'} ${t.target}: ${t.measured}`);

const result = {
  command: `node build/bench/kernels-bench.js ${process.argv.slice(2).join(' ')}`.trim(),
  date: new Date().toISOString(),
  machine: machineFacts(llc),
  threads,
  workingSetBytes: workingSet,
  triadGBs,
  definitions: {
    coldMs:
      'median over calls that rotate through `copies` distinct copies of the weight (working set >= workingSetBytes)',
    warmMs: 'median over repeated calls on one copy',
    gflops: 'dense-equivalent: 2 * rows * cols * batch / cold time',
    gbs: '(weight bytes as stored + x + y) / cold time',
    speedup: 'fastest f32 dense baseline (ours, tfjs-wasm, onnxruntime) cold time / this cold time',
    speedupSameDtype: 'our dense kernel of the same value dtype, cold time / this cold time',
  },
  rows,
  targets,
};
writeJsonAtomic(join(outDir, 'kernels.json'), result);
writeTextAtomic(
  join(outDir, 'kernels.md'),
  markdownTable(rows, triadGBs, result.command, result.machine.cpu),
);
console.log(`\nwrote ${join(outDir, 'kernels.json')} and ${join(outDir, 'kernels.md')}`);
