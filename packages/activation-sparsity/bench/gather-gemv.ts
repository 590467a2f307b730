/**
 * The accelerate path of activation sparsity at decode (batch 1): y = W[:, active] x[active] with the
 * wasm gather kernel (sparse-formats' WasmBackend.gatherGemv), against the dense baselines on the
 * same masked x measured in the same run: the dense wasm kernel (`linear` at batch 1, same value
 * type) and onnxruntime-node MatMul (f32, all threads).
 *
 *   pnpm bench                  (in this package; the defaults below)
 *   node build/bench/gather-gemv.js [--quick] [--shapes 4096x4096,4096x11008,11008x4096]
 *     [--sparsities 0,25,40,50,70,90] [--dtypes f32,f16] [--budget-ms 1000] [--threads N]
 *     [--working-set-mb N] [--seed 1] [--out bench/results/gather-gemv.json]
 *
 * Shapes are W [rows, cols] = [out, in]: 4096x4096 is a Llama-2-7B attention projection,
 * 4096x11008 its down_proj (reads the 11008 MLP activations), 11008x4096 its gate/up_proj.
 * --quick runs 4096x4096 at 0/50/90% with a short time budget.
 */
import * as os from 'node:os';
import {
  copiesFor,
  flag,
  lastLevelCacheBytes,
  measure,
  numberOption,
  option,
  withCopies,
  workingSetBytes,
  writeJsonAtomic,
} from '@sparsekit/bench';
import { Rng, Tensor } from '@sparsekit/core';
import { createWasmBackend, type DenseMatrix, fromDense } from '@sparsekit/sparse-formats';
import { addRatios, checkTargets, printTables, type Row } from './report.js';
import { type GemvSubject, gatherSubject, linearSubject, onnxSubject } from './subjects.js';

const quick = flag('quick');
const shapes = option('shapes', quick ? '4096x4096' : '4096x4096,4096x11008,11008x4096')
  .split(',')
  .map((s) => s.split('x').map(Number) as [number, number]);
const sparsities = option('sparsities', quick ? '0,50,90' : '0,25,40,50,70,90')
  .split(',')
  .map((s) => Number(s) / 100);
const dtypes = option('dtypes', 'f32,f16').split(',') as Array<'f32' | 'f16'>;
const budgetMs = numberOption('budget-ms', quick ? 200 : 1000);
const threads = numberOption('threads', os.availableParallelism());
const seed = numberOption('seed', 1);
const outPath = option('out', 'bench/results/gather-gemv.json');
const llc = lastLevelCacheBytes();
const workingSet = numberOption('working-set-mb', workingSetBytes(llc) / 2 ** 20) * 2 ** 20;
const timing = { budgetMs, minReps: 5, maxReps: 61 };

const backend = await createWasmBackend({ threads });
console.log(
  `${os.cpus()[0]?.model ?? 'cpu'}, ${backend.threads} threads, LLC ${llc === undefined ? '?' : `${llc / 2 ** 20} MiB`}, ` +
    `each subject rotates through copies of its weight spanning >= ${(workingSet / 2 ** 20).toFixed(0)} MiB of reads`,
);

/** The active columns of an x with `sparsity` zeros: a seeded random subset, in ascending order. */
function activeColumns(cols: number, sparsity: number, rng: Rng): Int32Array {
  return rng.sample(cols, Math.round(cols * (1 - sparsity))).sort();
}

function masked(x: Float32Array, active: Int32Array): Float32Array {
  const m = new Float32Array(x.length);
  for (const c of active) m[c] = x[c]!;
  return m;
}

function maxAbsDifference(a: Float32Array, b: Float32Array): number {
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i]! - b[i]!));
  return d;
}

const rows: Row[] = [];

async function run(subject: GemvSubject, shape: string, sparsity: number, active: number, cols: number) {
  const t = await measure(subject, timing);
  rows.push({
    shape,
    kernel: subject.kernel,
    dtype: subject.dtype,
    dense: subject.dense,
    sparsity,
    measuredSparsity: 1 - active / cols,
    active,
    threads: subject.threads,
    bytesRead: subject.bytesRead,
    copies: subject.copies,
    reps: t.reps,
    coldMs: t.coldMs,
    warmMs: t.warmMs,
    gbs: subject.bytesRead / (t.coldMs / 1000) / 1e9,
    vsFastestDense: 0,
    vsSameDtype: 0,
  });
  const label = subject.dense ? '' : ` ${Math.round(100 * sparsity)}%`;
  console.log(
    `  ${shape} ${subject.kernel}${label}: ${t.coldMs.toFixed(3)} ms (warm ${t.warmMs.toFixed(3)})`,
  );
}

const checks: Array<{
  shape: string;
  dtype: string;
  sparsity: number;
  maxAbsDifference: number;
  maxAbsY: number;
}> = [];

for (const [outF, inF] of shapes) {
  const shape = `${outF}x${inF}`;
  console.log(`\nW ${shape}: building weights`);
  const rng = new Rng(seed * 1000 + outF + inF);
  const weight = new Tensor('f32', [outF, inF], rng.normalArray(outF * inF, 0, 0.02));
  const x = rng.normalArray(inF);
  const actives = sparsities.map((s) => activeColumns(inF, s, new Rng(seed + Math.round(1000 * s))));
  // Dense kernels read every column whatever x holds; they run on the 50%-masked input.
  const xDense = masked(x, activeColumns(inF, 0.5, new Rng(seed + 500)));

  const f32 = fromDense(weight, 'dense');
  const denseBytes = outF * inF * 4;
  const onnx = await withCopies(
    (c) => onnxSubject(f32, c, backend.threads, xDense),
    copiesFor(denseBytes, workingSet),
  );
  await run(onnx, shape, 0, inF, inF);
  onnx.dispose();

  for (const dtype of dtypes) {
    const w = dtype === 'f32' ? f32 : fromDense(weight, 'dense', { dtype });
    const elementBytes = dtype === 'f32' ? 4 : 2;
    const linearCopies = Array.from(
      { length: copiesFor(outF * inF * elementBytes, workingSet) },
      () => ({ ...w }) as DenseMatrix,
    );
    const dense = linearSubject(backend, linearCopies, xDense);
    await run(dense, shape, 0, inF, inF);
    // The dense product on each masked x, to check the gather kernel against (not timed).
    const references = sparsities.map((_, i) => backend.linear(masked(x, actives[i]!), 1, linearCopies[0]!));
    dense.dispose();

    // Copies are sized by the bytes one call reads (the active columns), so the sparsest case
    // needs the most; they are prepared once and shared by every sparsity.
    const counts = actives.map((a) => copiesFor(a.length * outF * elementBytes, workingSet));
    const gatherCopies = Array.from({ length: Math.max(...counts) }, () => ({ ...w }) as DenseMatrix);
    for (const g of gatherCopies) backend.prepareGather(g);
    for (const [i, sparsity] of sparsities.entries()) {
      const active = actives[i]!;
      const subject = gatherSubject(backend, gatherCopies, counts[i]!, x, active);
      const y = backend.gatherGemv({ w: gatherCopies[0]!, x, active });
      const maxAbsY = maxAbsDifference(references[i]!, new Float32Array(outF));
      checks.push({ shape, dtype, sparsity, maxAbsDifference: maxAbsDifference(y, references[i]!), maxAbsY });
      await run(subject, shape, sparsity, active.length, inF);
      subject.dispose();
    }
    for (const g of gatherCopies) backend.release(g);
  }
}
await backend.dispose();

addRatios(rows);
const targets = checkTargets(rows);
printTables(rows);
const worst = Math.max(...checks.map((c) => c.maxAbsDifference));
const largest = Math.max(...checks.map((c) => c.maxAbsY));
console.log(
  `\ngather vs dense linear (same value type) on the masked x: max |difference| ${worst.toExponential(2)}, max |y| ${largest.toFixed(2)}`,
);
for (const t of targets) console.log(`${t.met ? 'met ' : 'MISS'} ${t.target}: ${t.measured}`);

writeJsonAtomic(outPath, {
  command: `node build/bench/gather-gemv.js ${process.argv.slice(2).join(' ')}`.trim(),
  date: new Date().toISOString(),
  machine: {
    cpu: os.cpus()[0]?.model ?? 'unknown',
    cores: os.availableParallelism(),
    lastLevelCacheBytes: llc ?? null,
    memoryBytes: os.totalmem(),
    node: process.version,
  },
  threads: backend.threads,
  workingSetBytes: workingSet,
  seed,
  definitions: {
    shape: 'W [rows, cols] = [out, in]; y = W[:, active] x[active], batch 1',
    active: 'a seeded random subset of round(cols * (1 - sparsity)) columns, ascending',
    coldMs:
      'median over calls rotating through `copies` distinct copies of the weight; copies * bytesRead >= workingSetBytes',
    warmMs: 'median over repeated calls on one copy',
    gbs: 'bytesRead / cold time',
    vsFastestDense:
      'the fastest dense baseline of the shape (onnxruntime f32, wasm dense f32 or f16), cold time / this cold time',
    vsSameDtype: 'wasm dense linear of the same value type, cold time / this cold time',
  },
  rows,
  targets,
  checks,
});
console.log(`\nwrote ${outPath}`);
