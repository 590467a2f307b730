import { mkdir } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { join, resolve } from 'node:path';
import { writeFileAtomic } from '@sparsekit/core/node';
import { perplexity, type SweepRow, sweepChart, sweepMarkdown } from '@sparsekit/eval-harness';
import { runSweep, type SweepPoint, sweepGrid } from '@sparsekit/eval-harness/node';
import { generationSpeed, type TransformerLM } from '@sparsekit/models';
import { tinyLmPath } from '@sparsekit/models/node';
import { type Recipe, runRecipe } from '@sparsekit/pruners';
import { numberFlag, stringFlag } from '../args.js';
import { BACKEND_FLAG, BACKEND_HELP, openBackend } from '../backend.js';
import type { Command } from '../command.js';
import { builtinText, calibrationBatches, linearStats, loadModel, requireTokenizer } from '../model-io.js';
import { formatBytes, table } from '../ui.js';
import { speedMarkdown, speedSection, speedTable } from './demo-speed.js';

/** The demo's sweep: dense, then Wanda and SparseGPT at 50% and 2:4 (methods x targets). */
const POINTS: SweepPoint<{ label: string; recipe?: Recipe }>[] = [
  { key: 'dense', params: { label: 'dense' } },
  ...sweepGrid(
    {
      method: [
        ['wanda', 'Wanda'],
        ['sparsegpt', 'SparseGPT'],
      ],
      target: [
        ['50%', { sparsity: 0.5 }],
        ['2:4', { pattern: '2:4' }],
      ],
    } as const,
    (p) => `${p.method[1]} ${p.target[0]}`,
  ).map(({ key, params }) => ({
    key,
    params: { label: key, recipe: { method: params.method[0], ...params.target[1] } as Recipe },
  })),
];

export const demoCommand: Command = {
  name: 'demo',
  summary: 'prune the bundled tiny-lm with Wanda and SparseGPT, evaluate, pack, time, report',
  help: `Usage: sparsekit demo [--out DIR] [--windows N] [--calib N] [--speed-tokens N] [--no-speed] [--resume]

The main job on the bundled tiny-lm: dense perplexity; Wanda and SparseGPT at 50% and 2:4 (calibrated
on tiny-lm's calibration text); perplexity again; each model packed (CSR / N:M); decode tokens/s
dense vs sparse. tiny-lm is too small for its kernels to decide its speed, so the demo then times
decode on a model big enough to be memory-bound (two blocks at TinyLlama-1.1B's width, seeded random
weights built in memory, magnitude-pruned to 50%, 2:4, 70%, 90%, and 90% in 1x8 and in 8x1 blocks, each packed
into the format its kernel reads). Prints both tables and writes report.md, report.svg and
report.json; each measured row is appended to results.jsonl (speed rows: speed-results.jsonl) as it
finishes, so --resume after a crash runs only the rest.

Flags:
  --out DIR       report folder (default: ./sparsekit-demo)
  --windows N     test windows of 128 tokens to score (default 96)
  --calib N       calibration windows of 128 tokens (default 64)
  --speed-tokens N  decode tokens timed per run on the speed model (default 16)
  --no-speed      skip the speed model
  --resume        keep the rows already in DIR/results.jsonl (same settings) and run the rest
${BACKEND_HELP}
  --json          print the result as JSON

Examples:
  sparsekit demo
  sparsekit demo --out /tmp/demo --json`,
  flags: {
    ...BACKEND_FLAG,
    out: { type: 'string' },
    windows: { type: 'string' },
    calib: { type: 'string' },
    resume: { type: 'boolean' },
    'speed-tokens': { type: 'string' },
    'no-speed': { type: 'boolean' },
  },
  async run({ flags, ui }) {
    const out = resolve(stringFlag(flags, 'out') ?? 'sparsekit-demo');
    const windows = numberFlag('demo', flags, 'windows', 96, { integer: true, min: 1 });
    const calibWindows = numberFlag('demo', flags, 'calib', 64, { integer: true, min: 1 });
    const speedTokens = numberFlag('demo', flags, 'speed-tokens', 16, { integer: true, min: 2, max: 200 });
    const threads = availableParallelism();
    const backend = await openBackend('demo', flags, ui, threads);
    const started = performance.now();
    try {
      const dir = tinyLmPath();
      const testText = builtinText('test');
      const loaded = await loadModel(dir, backend);
      const tokenizer = requireTokenizer(loaded, dir);
      const batches = calibrationBatches(tokenizer, builtinText('calibration'), {
        samples: calibWindows,
        seqLen: 128,
        seed: 0,
      });
      const measure = async (
        model: TransformerLM,
        method: string,
        pruneSeconds: number,
      ): Promise<SweepRow & { scoredTokens: number }> => {
        const ppl = await perplexity(model, tokenizer, testText, {
          maxLength: 128,
          maxWindows: windows,
          onProgress: ui.progress(`${method}: perplexity`),
        });
        const stats = linearStats(model);
        const speed = generationSpeed(model, { promptLength: 64, newTokens: 64, reps: 5 });
        for (const l of model.linearLayers()) backend.release(l.matrix);
        return {
          method,
          sparsity: stats.sparsity,
          perplexity: ppl.perplexity,
          bytes: stats.bytes,
          decodeTokensPerSecond: speed.decodeTokensPerSecond,
          pruneSeconds,
          scoredTokens: ppl.scoredTokens,
        };
      };
      await mkdir(out, { recursive: true });
      const sweep = await runSweep({
        points: POINTS,
        file: join(out, 'results.jsonl'),
        resume: flags.resume === true,
        settings: { model: 'tiny-lm', windows, calibWindows, threads },
        run: async ({ label, recipe }) => {
          if (recipe === undefined) return measure(loaded.model, label, 0);
          const { model } = await loadModel(dir, backend);
          const report = await runRecipe(model, batches, recipe, {
            reconstructionError: false,
            pack: true,
            backend,
            onProgress: ui.progress(`${label}: prune`),
          });
          return measure(model, label, report.seconds);
        },
      });
      if (sweep.resumed.length > 0) ui.note(`resumed ${sweep.resumed.join(', ')} from results.jsonl`);
      const rows = sweep.rows.map((r) => r.result);
      ui.done();
      const dense = rows[0]!;
      ui.say(
        `tiny-lm (${dir}): perplexity on ${windows} test windows of 128 tokens; decode on ${backend.name} kernels, ${threads} threads\n`,
      );
      ui.say(
        table(
          ['method', 'sparsity', 'perplexity', 'linear bytes', 'decode tok/s', 'vs dense'],
          rows.map((r) => [
            r.method,
            `${(100 * r.sparsity).toFixed(1)}%`,
            r.perplexity.toFixed(2),
            formatBytes(r.bytes),
            r.decodeTokensPerSecond.toFixed(0),
            `${(r.decodeTokensPerSecond / dense.decodeTokensPerSecond).toFixed(2)}x`,
          ]),
        ),
      );
      const speed =
        flags['no-speed'] === true
          ? undefined
          : await speedSection(backend, ui, {
              file: join(out, 'speed-results.jsonl'),
              resume: flags.resume === true,
              newTokens: speedTokens,
            });
      if (speed !== undefined) {
        ui.done();
        ui.say(
          `\nspeed model: ${speed.model}, magnitude-pruned and packed; decode of ${speedTokens} tokens after a 16-token prompt, ${speed.backend} kernels, ${speed.threads} threads; the LM head (${(100 * speed.lmHeadShare).toFixed(0)}% of the weights read per token) stays dense\n`,
        );
        ui.say(speedTable(speed));
      }
      const date = new Date().toISOString();
      const context = {
        model: 'tiny-lm (bundled)',
        windows,
        tokens: rows[0]!.scoredTokens,
        calibration: `${batches.length} random windows of 128 tokens of tiny-lm/calibration.txt (seed 0)`,
        title: 'sparsekit demo',
        threads,
        backend: backend.name,
        date,
      };
      const write = (file: string, text: string) =>
        writeFileAtomic(join(out, file), (f) => f.writeFile(text, 'utf8'));
      await write(
        'report.md',
        speed === undefined
          ? sweepMarkdown(rows, context)
          : `${sweepMarkdown(rows, context)}\n\n${speedMarkdown(speed)}\n`,
      );
      await write(
        'report.svg',
        `${sweepChart(rows, 'tiny-lm: one-shot pruning, perplexity and decode speed')}\n`,
      );
      const result = {
        ...context,
        seconds: (performance.now() - started) / 1000,
        rows,
        ...(speed === undefined ? {} : { speed }),
        report: out,
      };
      await write('report.json', `${JSON.stringify(result, null, 2)}\n`);
      ui.say(
        `\nreport: ${join(out, 'report.md')} (chart: report.svg), ${result.seconds.toFixed(0)} s in all`,
      );
      return result;
    } finally {
      await backend.dispose();
    }
  },
};
