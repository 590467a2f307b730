import { mkdir } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { join, resolve } from 'node:path';
import type { Tensor } from '@sparsekit/core';
import { writeFileAtomic } from '@sparsekit/core/node';
import { perplexity } from '@sparsekit/eval-harness';
import { generationSpeed, type HfTokenizer, type TransformerLM } from '@sparsekit/models';
import { tinyLmPath } from '@sparsekit/models/node';
import { packLayers, pruneModel } from '@sparsekit/pruners';
import { byteSize, createWasmBackend, sparsity } from '@sparsekit/sparse-formats';
import { numberFlag, stringFlag } from '../args.js';
import type { Command } from '../command.js';
import { builtinText, calibrationBatches, loadModel, requireTokenizer } from '../model-io.js';
import { type DemoRow, demoChart, demoMarkdown } from '../report.js';
import { formatBytes, table } from '../ui.js';

const CASES = [
  { method: 'wanda', label: 'Wanda 50%', pattern: { sparsity: 0.5 } },
  { method: 'wanda', label: 'Wanda 2:4', pattern: { n: 2, m: 4 } },
  { method: 'sparsegpt', label: 'SparseGPT 50%', pattern: { sparsity: 0.5 } },
  { method: 'sparsegpt', label: 'SparseGPT 2:4', pattern: { n: 2, m: 4 } },
] as const;

export const demoCommand: Command = {
  name: 'demo',
  summary: 'prune the bundled tiny-lm with Wanda and SparseGPT, evaluate, pack, time, report',
  help: `Usage: sparsekit demo [--out DIR] [--windows N]

The main job on the bundled tiny-lm: dense perplexity; Wanda and SparseGPT at 50% and 2:4 (calibrated
on tiny-lm's calibration text); perplexity again; each model packed (CSR / N:M); decode tokens/s
dense vs sparse. Prints a summary table and writes report.md, report.svg and report.json.

Flags:
  --out DIR       report folder (default: ./sparsekit-demo)
  --windows N     test windows of 128 tokens to score (default 96)
  --calib N       calibration windows of 128 tokens (default 64)
  --json          print the result as JSON

Examples:
  sparsekit demo
  sparsekit demo --out /tmp/demo --json`,
  flags: { out: { type: 'string' }, windows: { type: 'string' }, calib: { type: 'string' } },
  async run({ flags, ui }) {
    const out = resolve(stringFlag(flags, 'out') ?? 'sparsekit-demo');
    const windows = numberFlag('demo', flags, 'windows', 96, { integer: true, min: 1 });
    const calibWindows = numberFlag('demo', flags, 'calib', 64, { integer: true, min: 1 });
    const threads = availableParallelism();
    const backend = await createWasmBackend({ threads });
    const started = performance.now();
    try {
      const dir = tinyLmPath();
      const testText = builtinText('test');
      const rows: DemoRow[] = [];
      let scored = 0;
      let batches: Tensor<'i32'>[] = [];
      let tokenizer: HfTokenizer | undefined;
      const measure = async (model: TransformerLM, method: string, pruneSeconds: number) => {
        const ppl = await perplexity(model, tokenizer!, testText, {
          maxLength: 128,
          maxWindows: windows,
          onProgress: ui.progress(`${method}: perplexity`),
        });
        scored = ppl.scoredTokens;
        const layers = model.linearLayers();
        const bytes = layers.reduce((s, l) => s + byteSize(l.matrix), 0);
        const weights = layers.reduce((s, l) => s + l.inFeatures * l.outFeatures, 0);
        const zeros = layers.reduce((s, l) => s + sparsity(l.matrix) * l.inFeatures * l.outFeatures, 0);
        const speed = generationSpeed(model, { promptLength: 64, newTokens: 64, reps: 5 });
        for (const l of layers) backend.release(l.matrix);
        rows.push({
          method,
          sparsity: zeros / weights,
          perplexity: ppl.perplexity,
          bytes,
          decodeTokensPerSecond: speed.decodeTokensPerSecond,
          pruneSeconds,
        });
      };
      {
        const loaded = await loadModel(dir, backend);
        tokenizer = requireTokenizer(loaded, dir);
        batches = calibrationBatches(tokenizer, builtinText('calibration'), {
          samples: calibWindows,
          seqLen: 128,
          seed: 0,
        });
        await measure(loaded.model, 'dense', 0);
      }
      for (const c of CASES) {
        const { model } = await loadModel(dir, backend);
        const report = await pruneModel(model, batches, {
          method: c.method,
          ...c.pattern,
          reconstructionError: false,
          backend,
          onProgress: ui.progress(`${c.label}: prune`),
        });
        packLayers(model, () => ('n' in c.pattern ? c.pattern : {}));
        await measure(model, c.label, report.seconds);
      }
      ui.done();
      const dense = rows[0]!;
      ui.say(
        `tiny-lm (${dir}): perplexity on ${windows} test windows of 128 tokens; decode with ${threads} threads\n`,
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
      const date = new Date().toISOString();
      const context = {
        model: 'tiny-lm (bundled)',
        windows,
        tokens: scored,
        calibration: `${batches.length} random windows of 128 tokens of tiny-lm/calibration.txt (seed 0)`,
        threads,
        date,
      };
      await mkdir(out, { recursive: true });
      const write = (file: string, text: string) =>
        writeFileAtomic(join(out, file), (f) => f.writeFile(text, 'utf8'));
      await write('report.md', demoMarkdown(rows, context));
      await write(
        'report.svg',
        `${demoChart(rows, 'tiny-lm: one-shot pruning, perplexity and decode speed')}\n`,
      );
      const result = { ...context, seconds: (performance.now() - started) / 1000, rows, report: out };
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
