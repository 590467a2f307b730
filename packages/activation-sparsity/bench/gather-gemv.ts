/**
 * The accelerate path of activation sparsity at decode (batch 1): y = W[:, active] x[active] with the
 * wasm gather kernel (sparse-formats' WasmBackend.gatherGemv), against the dense baselines on the
 * same masked x measured in the same run: the dense wasm kernel (`linear` at batch 1, same value
 * type) and onnxruntime-node MatMul (f32, all threads).
 *
 *   pnpm bench                  (in this package; the defaults below)
 *   node build/bench/gather-gemv.js [--quick] [--shapes 4096x4096,4096x11008,11008x4096]
 *     [--sparsities 0,25,40,50,70,90] [--dtypes f32,f16] [--budget-ms 400] [--rounds 5]
 *     [--threads N] [--working-set-mb N] [--seed 1] [--out bench/results/gather-gemv.json]
 *
 * Writes the JSON to --out and the tables in Markdown beside it (gather-gemv.md).
 *
 * Shapes are W [rows, cols] = [out, in]: 4096x4096 is a Llama-2-7B attention projection,
 * 4096x11008 its down_proj (reads the 11008 MLP activations), 11008x4096 its gate/up_proj.
 * --quick runs 4096x4096 at 0/50/90% with a short time budget. All subjects of a shape are timed
 * in `--rounds` interleaved rounds (`--budget-ms` per subject and round), and each reports the median
 * of its round medians, so that a shared machine's changing load hits them alike.
 */
import * as os from 'node:os';
import {
  copiesFor,
  flag,
  lastLevelCacheBytes,
  machineFacts,
  measureRounds,
  numberOption,
  option,
  withCopies,
  workingSetBytes,
  writeJsonAtomic,
  writeTextAtomic,
} from '@sparsekit/bench';
import { Rng, Tensor } from '@sparsekit/core';
import { createWasmBackend, type DenseMatrix, fromDense } from '@sparsekit/sparse-formats';
import { addRatios, checkTargets, markdownTables, printTables, type Row } from './report.js';
import { type GemvSubject, gatherSubject, linearSubject, onnxSubject } from './subjects.js';

const quick = flag('quick');
const shapes = option('shapes', quick ? '4096x4096' : '4096x4096,4096x11008,11008x4096')
  .split(',')
  .map((s) => s.split('x').map(Number) as [number, number]);
const sparsities = option('sparsities', quick ? '0,50,90' : '0,25,40,50,70,90')
  .split(',')
  .map((s) => Number(s) / 100);
const dtypes = option('dtypes', 'f32,f16').split(',') as Array<'f32' | 'f16'>;
const budgetMs = numberOption('budget-ms', quick ? 100 : 400);
const threads = numberOption('threads', os.availableParallelism());
const seed = numberOption('seed', 1);
const outPath = option('out', 'bench/results/gather-gemv.json');
const llc = lastLevelCacheBytes();
const workingSet = numberOption('working-set-mb', workingSetBytes(llc) / 2 ** 20) * 2 ** 20;
const rounds = numberOption('rounds', quick ? 2 : 5);
const timing = { minReps: 3, maxReps: 41 };

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
const checks: Array<{
  shape: string;
  dtype: string;
  sparsity: number;
  maxAbsDifference: number;
  maxAbsY: number;
}> = [];

/** A subject with what its table row needs besides the timing. */
interface Entry {
  subject: GemvSubject;
  sparsity: number;
  active: number;
}

for (const [outF, inF] of shapes) {
  const shape = `${outF}x${inF}`;
  console.log(`\nW ${shape}: building weights`);
  const rng = new Rng(seed * 1000 + outF + inF);
  const weight = new Tensor('f32', [outF, inF], rng.normalArray(outF * inF, 0, 0.02));
  const x = rng.normalArray(inF);
  const actives = sparsities.map((s) => activeColumns(inF, s, new Rng(seed + Math.round(1000 * s))));
  // Dense kernels read every column whatever x holds; they run on the 50%-masked input.
  const xDense = masked(x, activeColumns(inF, 0.5, new Rng(seed + 500)));

  // Every subject of the shape is built first, then all are timed in interleaved rounds.
  const entries: Entry[] = [];
  const f32 = fromDense(weight, 'dense');
  const onnx = await withCopies(
    (c) => onnxSubject(f32, c, backend.threads, xDense),
    copiesFor(outF * inF * 4, workingSet),
  );
  entries.push({ subject: onnx, sparsity: 0, active: inF });
  const gatherCopies: DenseMatrix[] = [];
  for (const dtype of dtypes) {
    const w = dtype === 'f32' ? f32 : fromDense(weight, 'dense', { dtype });
    const elementBytes = dtype === 'f32' ? 4 : 2;
    const linearCopies = Array.from(
      { length: copiesFor(outF * inF * elementBytes, workingSet) },
      () => ({ ...w }) as DenseMatrix,
    );
    entries.push({ subject: linearSubject(backend, linearCopies, xDense), sparsity: 0, active: inF });
    // Copies are sized by the bytes one call reads (the active columns), so the sparsest case
    // needs the most; they are prepared once and shared by every sparsity.
    const counts = actives.map((a) => copiesFor(a.length * outF * elementBytes, workingSet));
    const copies = Array.from({ length: Math.max(...counts) }, () => ({ ...w }) as DenseMatrix);
    for (const g of copies) backend.prepareGather(g);
    gatherCopies.push(...copies);
    for (const [i, sparsity] of sparsities.entries()) {
      const active = actives[i]!;
      // The gather result against the dense product on the masked x (not timed).
      const reference = backend.linear(masked(x, active), 1, linearCopies[0]!);
      const y = backend.gatherGemv({ w: copies[0]!, x, active });
      checks.push({
        shape,
        dtype,
        sparsity,
        maxAbsDifference: maxAbsDifference(y, reference),
        maxAbsY: maxAbsDifference(reference, new Float32Array(outF)),
      });
      entries.push({
        subject: gatherSubject(backend, copies, counts[i]!, x, active),
        sparsity,
        active: active.length,
      });
    }
  }
  const megabytes = (backend.allocator.allocatedBytes / 2 ** 20).toFixed(0);
  console.log(`  ${entries.length} subjects (${megabytes} MiB of wasm copies), ${rounds} rounds`);
  const timings = await measureRounds(
    entries.map((e) => e.subject),
    { ...timing, budgetMs: budgetMs * rounds, rounds },
    (r) => process.stdout.write(`  round ${r + 1}/${rounds} done\n`),
  );
  for (const [i, { subject, sparsity, active }] of entries.entries()) {
    const t = timings[i]!;
    rows.push({
      shape,
      kernel: subject.kernel,
      dtype: subject.dtype,
      dense: subject.dense,
      sparsity,
      measuredSparsity: 1 - active / inF,
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
    subject.dispose();
  }
  for (const g of gatherCopies) backend.release(g);
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
  machine: machineFacts(llc),
  threads: backend.threads,
  workingSetBytes: workingSet,
  seed,
  definitions: {
    shape: 'W [rows, cols] = [out, in]; y = W[:, active] x[active], batch 1',
    active: 'a seeded random subset of round(cols * (1 - sparsity)) columns, ascending',
    coldMs:
      'median over calls rotating through `copies` distinct copies of the weight (copies * bytesRead >= workingSetBytes); the median of the medians of `rounds` interleaved rounds',
    warmMs: 'median over repeated calls on one copy (median of the round medians)',
    gbs: 'bytesRead / cold time',
    vsFastestDense:
      'the fastest dense baseline of the shape (onnxruntime f32, wasm dense f32 or f16), cold time / this cold time',
    vsSameDtype: 'wasm dense linear of the same value type, cold time / this cold time',
  },
  rounds,
  rows,
  targets,
  checks,
});
const markdownPath = outPath.replace(/\.json$/, '') + '.md';
writeTextAtomic(
  markdownPath,
  `${targets.map((t) => `- ${t.met ? 'met' : 'missed'}: ${t.target}: ${t.measured}`).join('\n')}\n\n${markdownTables(rows)}`,
);
console.log(`\nwrote ${outPath} and ${markdownPath}`);
