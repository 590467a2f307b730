import { availableParallelism } from 'node:os';
import { Rng, Tensor } from '@sparsekit/core';
import { generationSpeed } from '@sparsekit/models';
import { magnitude, packWeight } from '@sparsekit/pruners';
import { byteSize, dense, type SparseMatrix, sparsity } from '@sparsekit/sparse-formats';
import { numberFlag, stringFlag, UsageError } from '../args.js';
import { BACKEND_FLAG, BACKEND_HELP, type CpuBackend, openBackend } from '../backend.js';
import type { Command } from '../command.js';
import { linearStats, loadModel, modelDir } from '../model-io.js';
import { formatBytes, table } from '../ui.js';

export const benchCommand: Command = {
  name: 'bench',
  summary: 'time sparse kernels or a model, against dense in the same run',
  positionals: 1,
  help: `Usage: sparsekit bench kernels [--rows R] [--cols C] [--batch B] [--reps N] [--threads T]
       sparsekit bench model [--model DIR] [--tokens N] [--reps N] [--threads T]

kernels: y = x W^T on the CPU backend (--backend) for one random weight (N(0, 0.02), seed 0) stored dense, at
50% (CSR), 2:4 (N:M) and 90% (CSR) magnitude sparsity; median of --reps warm calls; ratios against
the dense kernel timed in the same run. (The package benchmark, pnpm bench, is the thorough one:
more shapes, cold caches, onnxruntime and tfjs baselines.)
model: decode and prefill tokens/s of the model as stored vs the same weights dense, same run.

Flags:
  --rows R / --cols C   weight shape (default 4096 x 4096)
  --batch B             rows of x (default 1)
  --reps N              timed repetitions (default 20 for kernels, 5 for model)
  --threads T           kernel threads (default: all cores)
  --model DIR           for 'model' (default: the bundled tiny-lm)
  --tokens N            tokens decoded per run for 'model' (default 64)
${BACKEND_HELP}
  --json                print the result as JSON

Examples:
  sparsekit bench kernels
  sparsekit bench kernels --rows 11008 --cols 4096 --batch 8
  sparsekit bench model --model out/tiny-lm-2of4`,
  flags: {
    ...BACKEND_FLAG,
    rows: { type: 'string' },
    cols: { type: 'string' },
    batch: { type: 'string' },
    reps: { type: 'string' },
    threads: { type: 'string' },
    model: { type: 'string' },
    tokens: { type: 'string' },
  },
  async run({ flags, positionals, ui }) {
    const what = positionals[0];
    if (what !== 'kernels' && what !== 'model') {
      throw new UsageError(
        what === undefined
          ? 'say what to benchmark: kernels or model'
          : `unknown benchmark "${what}"; use kernels or model`,
        'bench',
      );
    }
    const threads = numberFlag('bench', flags, 'threads', availableParallelism(), { integer: true, min: 1 });
    const backend = await openBackend('bench', flags, ui, threads);
    try {
      return what === 'kernels'
        ? await benchKernels(flags, backend, ui)
        : await benchModel(flags, backend, ui);
    } finally {
      await backend.dispose();
    }
  },
};

type Backend = CpuBackend;
type Flags = Parameters<Command['run']>[0]['flags'];
type Ui = Parameters<Command['run']>[0]['ui'];

async function benchKernels(flags: Flags, backend: Backend, ui: Ui) {
  const rows = numberFlag('bench', flags, 'rows', 4096, { integer: true, min: 1 });
  const cols = numberFlag('bench', flags, 'cols', 4096, { integer: true, min: 4 });
  const batch = numberFlag('bench', flags, 'batch', 1, { integer: true, min: 1 });
  const reps = numberFlag('bench', flags, 'reps', 20, { integer: true, min: 1 });
  if (cols % 4 !== 0) throw new UsageError('--cols must be a multiple of 4 (for the 2:4 case)', 'bench');
  const rng = new Rng(0);
  const w = new Tensor('f32', [rows, cols], rng.normalArray(rows * cols, 0, 0.02));
  const x = rng.normalArray(batch * cols);
  const pruned = (pattern: { sparsity: number } | { n: number; m: number }) =>
    new Tensor('f32', [rows, cols], magnitude(w.data, rows, cols, pattern).weight);
  const cases: Array<[string, () => SparseMatrix]> = [
    ['dense f32', () => dense({ rows, cols, values: w.data })],
    ['50% csr', () => packWeight(pruned({ sparsity: 0.5 }))],
    ['2:4 nm', () => packWeight(pruned({ n: 2, m: 4 }), { n: 2, m: 4 })],
    ['90% csr', () => packWeight(pruned({ sparsity: 0.9 }))],
  ];
  const results = [];
  for (const [i, [label, make]] of cases.entries()) {
    const matrix = make();
    backend.linear(x, batch, matrix); // warm-up: prepares the matrix for the backend
    const times: number[] = [];
    for (let r = 0; r < reps; r++) {
      const t0 = performance.now();
      backend.linear(x, batch, matrix);
      times.push(performance.now() - t0);
    }
    backend.release(matrix);
    times.sort((a, b) => a - b);
    results.push({
      case: label,
      format: matrix.format,
      sparsity: sparsity(matrix),
      bytes: byteSize(matrix),
      ms: times[times.length >> 1]!,
    });
    ui.progress('bench')({
      stage: 'bench',
      current: i + 1,
      total: cases.length,
      unit: 'case',
      message: label,
    });
  }
  ui.done();
  const base = results[0]!.ms;
  const out = results.map((r) => ({ ...r, speedup: base / r.ms }));
  ui.say(
    `y = x W^T, W ${rows} x ${cols}, batch ${batch}, ${backend.name} kernels, ${backend.threads} threads, median of ${reps} warm calls\n`,
  );
  ui.say(
    table(
      ['case', 'sparsity', 'bytes', 'ms', 'vs dense'],
      out.map((r) => [
        r.case,
        `${(100 * r.sparsity).toFixed(1)}%`,
        formatBytes(r.bytes),
        r.ms.toFixed(3),
        `${r.speedup.toFixed(2)}x`,
      ]),
    ),
  );
  return {
    benchmark: 'kernels',
    backend: backend.name,
    rows,
    cols,
    batch,
    reps,
    threads: backend.threads,
    results: out,
  };
}

async function benchModel(flags: Flags, backend: Backend, ui: Ui) {
  const dir = modelDir(stringFlag(flags, 'model'));
  const reps = numberFlag('bench', flags, 'reps', 5, { integer: true, min: 1 });
  const tokens = numberFlag('bench', flags, 'tokens', 64, { integer: true, min: 2 });
  const { model } = await loadModel(dir, backend);
  const stored = generationSpeed(model, { newTokens: tokens, reps });
  // Peak resident memory of this process so far: the model as stored, loaded and run.
  const peakRssBytes = process.resourceUsage().maxRSS * 1024;
  const stats = linearStats(model);
  // The linear layers as stored, everything else (embeddings, norms, head) as f32.
  const modelBytes = stats.bytes + 4 * (model.parameterCount() - stats.weights);
  const formats = [...new Set(model.linearLayers().map((l) => l.matrix.format))];
  for (const layer of model.linearLayers()) {
    const weight = layer.getWeight();
    backend.release(layer.matrix);
    layer.setMatrix(dense({ rows: layer.outFeatures, cols: layer.inFeatures, values: weight.data.slice() }));
  }
  const densified = generationSpeed(model, { newTokens: tokens, reps });
  const results = [
    { case: 'dense', ...densified },
    { case: `as stored (${formats.join(', ')})`, ...stored },
  ];
  const speed = { ...stored, peakRssBytes, modelBytes, sparsity: stats.sparsity };
  ui.say(
    `${dir}: ${tokens} new tokens after a 64-token prompt, ${backend.name} kernels, ${backend.threads} threads, median of ${reps}\n`,
  );
  ui.say(
    table(
      ['weights', 'prefill tok/s', 'first token ms', 'decode tok/s', 'decode vs dense'],
      results.map((r) => [
        r.case,
        r.prefillTokensPerSecond.toFixed(0),
        r.timeToFirstTokenMs.toFixed(1),
        r.decodeTokensPerSecond.toFixed(0),
        `${(r.decodeTokensPerSecond / densified.decodeTokensPerSecond).toFixed(2)}x`,
      ]),
    ),
  );
  ui.say(
    `\nas stored: ${formatBytes(modelBytes)} of weights, ${(100 * speed.sparsity).toFixed(1)}% of the linear weights zero; peak RSS ${formatBytes(peakRssBytes)} (before densifying)`,
  );
  return {
    benchmark: 'model',
    backend: backend.name,
    model: dir,
    tokens,
    reps,
    threads: backend.threads,
    speed,
    results,
  };
}
