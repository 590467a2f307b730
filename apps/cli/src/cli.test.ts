import { execFile } from 'node:child_process';
import {
  cpSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  statSync,
  symlinkSync,
  truncateSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { IOError } from '@sparsekit/core';
import { TokenizerTimeoutError } from '@sparsekit/models';
import { loadHfModel, tinyLmPath } from '@sparsekit/models/node';
import { safetensorsWithHole } from '@sparsekit/test-utils';
import { describe, expect, it } from 'vitest';
import { CLI, json, run, runWithEnv, work } from './cli.test-util.js';
import { COMMANDS, hintFor } from './main.js';

/**
 * `run`, reporting the process's peak RSS (bytes) and, on Linux, the bytes it read through read
 * system calls (a preload prints both on stderr as the process exits).
 */
async function runMeasured(...args: string[]) {
  const preload = join(work, 'measure.mjs');
  writeFileSync(
    preload,
    `import { readFileSync } from 'node:fs';
process.on('exit', () => {
  let rchar = null;
  try { rchar = Number(/^rchar:\\s*(\\d+)$/m.exec(readFileSync('/proc/self/io', 'utf8'))[1]); } catch {}
  process.stderr.write('measured ' + JSON.stringify({ maxRss: process.resourceUsage().maxRSS * 1024, rchar }) + '\\n');
});
`,
  );
  const r = await new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
    execFile(
      'node',
      ['--import', preload, CLI, ...args],
      { cwd: work, maxBuffer: 1 << 24 },
      (error, stdout, stderr) => {
        resolve({ code: error === null ? 0 : ((error as { code?: number }).code ?? 1), stdout, stderr });
      },
    );
  });
  const line = /^measured (.*)$/m.exec(r.stderr);
  const measured = JSON.parse(line![1]!) as { maxRss: number; rchar: number | null };
  return { ...r, ...measured };
}

describe('help and usage', () => {
  it('prints help with examples for every command; exit 0', async () => {
    const top = await run('--help');
    expect(top.code).toBe(0);
    for (const c of COMMANDS) expect(top.stdout).toContain(c.name);
    for (const c of COMMANDS) {
      const r = await run(c.name, '--help');
      expect(r.code, c.name).toBe(0);
      expect(r.stdout, c.name).toMatch(/^Usage: sparsekit/);
      expect(r.stdout, c.name).toContain('Examples:');
    }
  });

  it('exits 2 on usage errors, saying what to do', async () => {
    const linkToModel = join(work, 'link-to-tiny-lm');
    symlinkSync(tinyLmPath(), linkToModel);
    const cases: Array<[string[], RegExp]> = [
      [[], /Usage/],
      [['frobnicate'], /unknown command "frobnicate"/],
      [['eval', '--bogus'], /Unknown option '--bogus'/],
      [['prune', '--method', 'wanda', '--sparsity', '0.5'], /--out is required/],
      [
        ['prune', '--method', 'obd', '--sparsity', '0.5', '--out', 'x'],
        /--method must be one of magnitude, wanda, sparsegpt, slicegpt/,
      ],
      [
        ['prune', '--method', 'wanda', '--sparsity', '1.5', '--out', 'x'],
        /--sparsity must be a number >= 0 < 1, got "1.5"/,
      ],
      [['prune', '--method', 'wanda', '--pattern', '4:2', '--out', 'x'], /N must be in \[1, M\)/],
      [['prune', '--method', 'wanda', '--out', 'x'], /exactly one of --sparsity/],
      [['prune', '--method', 'wanda', '--heads', '0.5', '--out', 'x'], /--heads is for --method structured/],
      [['prune', '--method', 'structured', '--out', 'x'], /--mlp-channels F and\/or --heads F/],
      [['prune', '--method', 'structured', '--sparsity', '0.5', '--out', 'x'], /not --sparsity/],
      [
        ['prune', '--method', 'wanda', '--sparsity', '0.5', '--min-keep', '0.1', '--out', 'x'],
        /--min-keep is for --method global-magnitude/,
      ],
      [['prune', '--method', 'random', '--pattern', '2:4', '--out', 'x'], /--pattern does not apply/],
      [
        ['prune', '--method', 'slicegpt', '--sparsity', '0.2', '--pack', '--out', 'x'],
        /slicegpt gives a smaller dense model; --pack does not apply/,
      ],
      // --out naming the model folder through a symbolic link would overwrite the original.
      [
        ['prune', '--method', 'magnitude', '--sparsity', '0.5', '--out', linkToModel],
        /--out must differ from --model/,
      ],
      [['convert', '--to', 'compressed-tensors', '--out', linkToModel], /--out must differ from --model/],
      [
        ['prune', '--method', 'magnitude', '--sparsity', '0.5', '--owl', '--out', 'x'],
        /--owl allocates by Wanda scores: use it with --method wanda or sparsegpt/,
      ],
      [
        ['prune', '--method', 'wanda', '--pattern', '2:4', '--owl', '--out', 'x'],
        /--owl allocates unstructured sparsity/,
      ],
      [['eval', '--protocol', 'rolling', '--max-windows', '2'], /--max-windows is for --protocol sparsegpt/],
      [['bench', 'gpus'], /unknown benchmark "gpus"/],
      [['generate'], /--prompt is required/],
    ];
    for (const [args, message] of cases) {
      const r = await run(...args);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stdout + r.stderr, args.join(' ')).toMatch(message);
    }
    const r = await run('eval', '--bogus');
    expect(r.stderr).toContain('hint: run "sparsekit eval --help"');
  });
});

describe('on tiny-lm', () => {
  it('evaluates, with --json on stdout and progress on stderr', async () => {
    const r = await run('eval', '--max-windows', '3', '--json');
    expect(r.code).toBe(0);
    const out = json(r.stdout);
    expect(out.protocol.windows).toBe(3);
    expect(out.perplexity).toBeGreaterThan(1);
    expect(out.perplexity).toBeLessThan(200);
    expect(r.stderr).toContain('eval: 3/3 windows');
  });

  it("runs lm-eval-style tasks: the bundled ones by name, a task file with --data, lm-eval's results JSON", async () => {
    const out = join(work, 'results.json');
    const r = await run('eval', '--tasks', 'tinylm_cloze,tinylm_nextsent', '--limit', '6', '--output', out);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/tinylm_nextsent\s+0\s+6\s+acc_norm/);
    const file = json(readFileSync(out, 'utf8'));
    expect(Object.keys(file.results).sort()).toEqual(['tinylm_cloze', 'tinylm_nextsent']);
    expect(file['n-samples'].tinylm_cloze).toEqual({ original: 500, effective: 6 });
    expect(file.results.tinylm_cloze['perplexity,none']).toBeGreaterThan(1);
    expect(file.higher_is_better.tinylm_cloze).toEqual({ perplexity: false, acc: true });
    const yaml = join(work, 'letters.yaml');
    writeFileSync(
      yaml,
      'task: letters\noutput_type: multiple_choice\ntest_split: test\ndoc_to_text: "{{q}}"\ndoc_to_choice: "{{[a, b]}}"\ndoc_to_target: gold\n',
    );
    const data = join(work, 'letters.jsonl');
    writeFileSync(
      data,
      '{"q": "The whale", "a": " is", "b": " xq", "gold": 0}\n{"q": "Call me", "a": " zz", "b": " Ishmael", "gold": 1}\n',
    );
    const cache = join(work, 'requests.json');
    const t = await run('eval', '--tasks', yaml, '--data', `test=${data}`, '--cache', cache, '--json');
    expect(t.code, t.stderr).toBe(0);
    expect(json(t.stdout).results.letters['acc,none']).toBeGreaterThanOrEqual(0);
    expect(t.stderr).toMatch(/0 results reused, 4 new/);
    const again = await run('eval', '--tasks', yaml, '--data', `test=${data}`, '--cache', cache, '--json');
    expect(again.stderr).toMatch(/4 results reused, 0 new/);
    expect(json(again.stdout).results).toEqual(json(t.stdout).results);
    for (const [args, message] of [
      [['--tasks', 'nope'], /unknown task "nope"/],
      [['--tasks', yaml, '--data', 'oops'], /--data must be \[TASK:\]SPLIT=FILE/],
      [['--tasks', 'tinylm_cloze', '--protocol', 'rolling'], /--protocol is for perplexity/],
      [['--limit', '3'], /--limit is for --tasks/],
    ] as const) {
      const bad = await run('eval', ...args);
      expect(bad.code, args.join(' ')).toBe(2);
      expect(bad.stderr).toMatch(message);
    }
    const missing = await run('eval', '--tasks', yaml);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/nothing is downloaded/);
  });

  it('compares models in a report: lm-eval results, perplexity and speed JSON as Markdown, SVG and HTML', async () => {
    const tasks = join(work, 'report-tasks.json');
    expect((await run('eval', '--tasks', 'tinylm_nextsent', '--limit', '4', '--output', tasks)).code).toBe(0);
    const ppl = join(work, 'report-ppl.json');
    writeFileSync(ppl, (await run('eval', '--max-windows', '2', '--json')).stdout);
    const speed = join(work, 'report-speed.json');
    const bench = await run('bench', 'model', '--tokens', '4', '--reps', '1', '--json');
    expect(json(bench.stdout).speed).toMatchObject({
      decodeTokensPerSecond: expect.any(Number),
      timeToFirstTokenMs: expect.any(Number),
      peakRssBytes: expect.any(Number),
      modelBytes: expect.any(Number),
    });
    writeFileSync(speed, bench.stdout);
    const out = join(work, 'report');
    const r = await run(
      'report',
      '--input',
      `dense=${tasks},${ppl},${speed}`,
      '--input',
      `again=${tasks}`,
      '--out',
      out,
    );
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/\| dense \| 0\.0 \| \d+\.\d\d \|/);
    expect(readFileSync(join(out, 'report.svg'), 'utf8')).toMatch(/^<svg/);
    expect(readFileSync(join(out, 'report.html'), 'utf8')).toContain('tinylm_nextsent acc_norm');
    const notJson = join(work, 'not-json.txt');
    writeFileSync(notJson, 'task: x\n');
    const bad = await run('report', '--input', `x=${notJson}`, '--out', out);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/not JSON/);
    expect((await run('report', '--out', out)).stderr).toMatch(/give at least one --input/);
  });

  it('prunes 2:4 with Wanda, packs, and the saved model inspects and evaluates as 2:4', async () => {
    const out = join(work, 'wanda24');
    const r = await run(
      'prune',
      '--method',
      'wanda',
      '--pattern',
      ' 2:4',
      '--calib-samples',
      '4',
      '--pack',
      '--out',
      out,
    );
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('layers.3.mlp.down_proj');
    expect(r.stdout).toMatch(/wanda 2:4: 50\.00% of the pruned layers' weights are zero/);
    const report = json(readFileSync(join(out, 'prune-report.json'), 'utf8'));
    expect(report.report.layers).toHaveLength(28);
    expect(report.calibration).toMatchObject({ samples: 4, seqLen: 128 });
    expect(report.report.recipe.pattern).toBe('2:4'); // as parsed, not as typed
    const inspect = json((await run('inspect', '--model', out, '--json')).stdout);
    expect(inspect.sparsity).toBeCloseTo(0.5, 6);
    for (const l of inspect.layers) expect(l.format).toBe('nm 2:4');
    const ev = await run('eval', '--model', out, '--max-windows', '2', '--json');
    expect(ev.code).toBe(0);
    expect(json(ev.stdout).perplexity).toBeGreaterThan(1);
  });

  it('prunes in 1x8 blocks with SparseGPT, packs them as BSR, and the saved model evaluates', async () => {
    const out = join(work, 'blocks');
    const r = await run(
      'prune',
      '--method',
      'sparsegpt',
      '--sparsity',
      '0.5',
      '--blocks',
      '1x8',
      '--calib-samples',
      '4',
      '--pack',
      '--no-errors',
      '--out',
      out,
    );
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/sparsegpt 0\.5 in 1x8 blocks: 50\.00% of the pruned layers' weights are zero/);
    const inspect = json((await run('inspect', '--model', out, '--json')).stdout);
    for (const l of inspect.layers) expect(l.format).toBe('bsr');
    const ev = await run('eval', '--model', out, '--max-windows', '2', '--json');
    expect(ev.code, ev.stderr).toBe(0);
    expect(json(ev.stdout).perplexity).toBeGreaterThan(1);
    for (const [args, message] of [
      [['--method', 'wanda', '--pattern', '2:4', '--blocks', '1x4'], /use --sparsity, not --pattern/],
      [
        ['--method', 'slicegpt', '--sparsity', '0.2', '--blocks', '1x4'],
        /--blocks is for --method magnitude/,
      ],
      [['--method', 'wanda', '--sparsity', '0.5', '--blocks', '1by4'], /--blocks must be ROWSxCOLS/],
    ] as const) {
      const bad = await run('prune', ...args, '--out', join(work, 'never'));
      expect(bad.code, args.join(' ')).toBe(2);
      expect(bad.stderr).toMatch(message);
    }
    const untiled = await run(
      'prune',
      '--method',
      'magnitude',
      '--sparsity',
      '0.5',
      '--blocks',
      '1x48',
      '--out',
      join(work, 'never'),
    );
    expect(untiled.code).toBe(1);
    expect(untiled.stderr).toMatch(/multiple of the block's 48 inputs/);
  });

  it('packs each layer by its own pattern when a recipe overrides some, and measures magnitude errors', async () => {
    const recipe = join(work, 'mixed.yaml');
    writeFileSync(
      recipe,
      'method: magnitude\npattern: "2:4"\noverrides:\n  - { match: "down_proj", sparsity: 0.6 }\ncalibration: { samples: 2 }\n',
    );
    const out = join(work, 'mixed');
    const r = await run('prune', '--recipe', recipe, '--pack', '--seed', '5', '--out', out);
    expect(r.code, r.stderr).toBe(0);
    const report = json(readFileSync(join(out, 'prune-report.json'), 'utf8')).report;
    // The recorded recipe is the one run: --seed overrides the recipe's calibration.
    expect(report.recipe.calibration).toEqual({ samples: 2, seqLen: 128, seed: 5 });
    for (const l of report.layers) {
      expect(l.pattern).toEqual(l.name.endsWith('down_proj') ? { sparsity: 0.6 } : { n: 2, m: 4 });
      expect(l.reconstructionError).toBeGreaterThan(0);
    }
    const inspect = json((await run('inspect', '--model', out, '--json')).stdout);
    for (const l of inspect.layers) {
      if (l.name.endsWith('down_proj')) expect(l.format).not.toMatch(/^nm/);
      else expect(l.format).toBe('nm 2:4');
    }
  });

  it('records --owl in the recipe of the report, with the per-block allocation', async () => {
    const out = join(work, 'owl');
    const r = await run(
      'prune',
      '--method',
      'wanda',
      '--sparsity',
      '0.5',
      '--owl',
      '--calib-samples',
      '2',
      '--out',
      out,
      '--json',
    );
    expect(r.code, r.stderr).toBe(0);
    const report = json(r.stdout).report;
    expect(report.recipe).toEqual({
      method: 'wanda',
      sparsity: 0.5,
      owl: true,
      calibration: { samples: 2, seqLen: 128, seed: 0 },
    });
    expect(report.owl.sparsities).toHaveLength(4);
  });

  it('global magnitude and random (ERK) pruning over all layers, packed, recorded', async () => {
    const out = join(work, 'random');
    const r = await run(
      'prune',
      '--method',
      'random',
      '--sparsity',
      '0.6',
      '--distribution',
      'erk',
      '--pack',
      '--out',
      out,
      '--json',
    );
    expect(r.code, r.stderr).toBe(0);
    const report = json(r.stdout).report;
    expect(report.recipe).toEqual({
      method: 'random',
      sparsity: 0.6,
      random: { distribution: 'erk', seed: 0 },
    });
    expect(report.layers).toHaveLength(28);
    expect(report.sparsity).toBeCloseTo(0.6, 2);
    expect(
      new Set(report.layers.map((l: { pattern: { sparsity: number } }) => l.pattern.sparsity)).size,
    ).toBeGreaterThan(1); // ERK: per-layer densities
    const inspect = json((await run('inspect', '--model', out, '--json')).stdout);
    expect(inspect.sparsity).toBeCloseTo(0.6, 2);
    const g = await run(
      'prune',
      '--method',
      'global-magnitude',
      '--sparsity',
      '0.5',
      '--min-keep',
      '0.2',
      '--out',
      join(work, 'global'),
      '--json',
    );
    expect(g.code, g.stderr).toBe(0);
    const global = json(g.stdout).report;
    expect(global.sparsity).toBeCloseTo(0.5, 2);
    for (const l of global.layers) expect(l.sparsity).toBeLessThanOrEqual(0.8 + 1e-9);
  });

  it('deletes MLP channels and heads (structured) into a smaller model that loads and evaluates', async () => {
    const out = join(work, 'narrow');
    const r = await run(
      'prune',
      '--method',
      'structured',
      '--mlp-channels',
      '0.25',
      '--heads',
      '0.5',
      '--calib-samples',
      '4',
      '--out',
      out,
      '--json',
    );
    expect(r.code, r.stderr).toBe(0);
    const report = json(r.stdout).report;
    expect(report.structured.blockShape).toEqual({ mlpChannels: 288, heads: 2, kvHeads: 2, headDim: 32 });
    expect(report.recipe).toEqual({
      method: 'structured',
      structured: { mlpChannels: 0.25, heads: 0.5 },
      calibration: { samples: 4, seqLen: 128, seed: 0 },
    });
    expect(report.parameters.after).toBeLessThan(report.parameters.before);
    const config = json(readFileSync(join(out, 'config.json'), 'utf8'));
    expect([config.intermediate_size, config.num_attention_heads, config.head_dim]).toEqual([288, 2, 32]);
    const ev = await run('eval', '--model', out, '--max-windows', '2', '--json');
    expect(ev.code, ev.stderr).toBe(0);
    expect(json(ev.stdout).perplexity).toBeGreaterThan(1);
  });

  it('slices with SliceGPT into a smaller model that loads and generates', async () => {
    const out = join(work, 'sliced');
    const r = await run(
      'prune',
      '--method',
      'slicegpt',
      '--sparsity',
      '0.25',
      '--calib-samples',
      '4',
      '--out',
      out,
      '--json',
    );
    expect(r.code, r.stderr).toBe(0);
    expect(json(r.stdout).report.slice.slicedWidth).toBe(96);
    expect(json(r.stdout).report.recipe).toEqual({
      method: 'slicegpt',
      sparsity: 0.25,
      calibration: { samples: 4, seqLen: 128, seed: 0 },
    });
    // The same from a recipe file.
    const recipe = join(work, 'slice.yaml');
    writeFileSync(recipe, 'method: slicegpt\nsparsity: 0.25\ncalibration: { samples: 2 }\n');
    const fromRecipe = await run('prune', '--recipe', recipe, '--out', join(work, 'sliced-recipe'), '--json');
    expect(fromRecipe.code, fromRecipe.stderr).toBe(0);
    expect(json(fromRecipe.stdout).report).toMatchObject({
      slice: { slicedWidth: 96 },
      recipe: { method: 'slicegpt', sparsity: 0.25, calibration: { samples: 2, seqLen: 128, seed: 0 } },
    });
    const config = json(readFileSync(join(out, 'config.json'), 'utf8'));
    expect(config.hidden_size).toBe(96);
    const g = await run('generate', '--model', out, '--prompt', 'The sea', '--max-new-tokens', '8', '--json');
    expect(g.code, g.stderr).toBe(0);
    const gen = json(g.stdout);
    expect(gen.tokens).toHaveLength(8);
    expect(gen.decodeTokensPerSecond).toBeGreaterThan(0);
  });

  it('generate prints prompt and continuation as the tokenizer decodes them together', async () => {
    const args = ['generate', '--prompt', 'It was the best of', '--max-new-tokens', '6', '--seed', '3'];
    const j = json((await run(...args, '--json')).stdout);
    const p = await run(...args);
    expect(p.code, p.stderr).toBe(0);
    const { tokenizer } = await loadHfModel(tinyLmPath());
    const ids = tokenizer!.encode('It was the best of');
    expect(p.stdout).toContain(tokenizer!.decode([...ids, ...j.tokens]));
  });

  it('converts to compressed-tensors and back to dense without changing a weight', async () => {
    const pruned = join(work, 'mag50');
    const p = await run(
      'prune',
      '--method',
      'magnitude',
      '--sparsity',
      '0.5',
      '--no-errors',
      '--out',
      pruned,
    );
    expect(p.code, p.stderr).toBe(0);
    // --no-errors: no calibration pass, no reconstruction errors.
    const noErrors = json(readFileSync(join(pruned, 'prune-report.json'), 'utf8'));
    expect(noErrors.calibration.samples).toBe(0);
    expect(
      noErrors.report.layers.every((l: { reconstructionError: unknown }) => l.reconstructionError === null),
    ).toBe(true);
    const ct = join(work, 'ct');
    const c = await run('convert', '--model', pruned, '--to', 'compressed-tensors', '--out', ct);
    expect(c.code, c.stderr).toBe(0);
    const config = json(readFileSync(join(ct, 'config.json'), 'utf8'));
    expect(config.quantization_config.sparsity_config.format).toBe('sparse-bitmask');
    const header = readFileSync(join(ct, 'model.safetensors')).subarray(8, 20000).toString('latin1');
    expect(header).toContain('model.layers.0.mlp.up_proj.bitmask');
    const back = join(work, 'dense-again');
    expect((await run('convert', '--model', ct, '--to', 'dense', '--out', back)).code).toBe(0);
    const a = json((await run('eval', '--model', pruned, '--max-windows', '2', '--json')).stdout);
    const b = json((await run('eval', '--model', back, '--max-windows', '2', '--json')).stdout);
    expect(b.perplexity).toBe(a.perplexity);
    // Half precision: half the bytes, torch_dtype set, nearly the same perplexity.
    const half = join(work, 'dense-bf16');
    const h = await run('convert', '--model', pruned, '--to', 'dense', '--dtype', 'bf16', '--out', half);
    expect(h.code, h.stderr).toBe(0);
    expect(json(readFileSync(join(half, 'config.json'), 'utf8')).torch_dtype).toBe('bfloat16');
    expect(statSync(join(half, 'model.safetensors')).size).toBeLessThan(
      0.55 * statSync(join(back, 'model.safetensors')).size,
    );
    const c16 = json((await run('eval', '--model', half, '--max-windows', '2', '--json')).stdout);
    expect(Math.abs(c16.perplexity / a.perplexity - 1)).toBeLessThan(0.02);
    const bad = await run(
      'convert',
      '--model',
      pruned,
      '--to',
      'csr',
      '--dtype',
      'bf16',
      '--out',
      join(work, 'x'),
    );
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/--dtype bf16 is for --to dense/);
  });

  it('benchmarks kernels and the model against dense in the same run', async () => {
    const k = await run('bench', 'kernels', '--rows', '256', '--cols', '256', '--reps', '3', '--json');
    expect(k.code, k.stderr).toBe(0);
    const kernels = json(k.stdout);
    expect(kernels.results.map((r: { case: string }) => r.case)).toEqual([
      'dense f32',
      '50% csr',
      '2:4 nm',
      '90% csr',
    ]);
    expect(kernels.results[3].sparsity).toBeCloseTo(0.9, 2);
    const m = await run('bench', 'model', '--tokens', '8', '--reps', '1', '--json');
    expect(m.code, m.stderr).toBe(0);
    expect(json(m.stdout).results).toHaveLength(2);
  });

  it('runs on the native kernels by default; without them says why in one line and runs on wasm', async () => {
    const args = ['bench', 'kernels', '--rows', '64', '--cols', '64', '--reps', '1', '--json'];
    const auto = await run(...args);
    expect(auto.code, auto.stderr).toBe(0);
    expect(json(auto.stdout).backend).toBe('native');
    expect(auto.stderr).not.toMatch(/unavailable/);
    const hidden = await runWithEnv({ SPARSEKIT_NATIVE: '0' }, ...args);
    expect(hidden.code, hidden.stderr).toBe(0);
    expect(json(hidden.stdout).backend).toBe('wasm');
    expect(hidden.stderr).toContain('native kernels unavailable (hidden by SPARSEKIT_NATIVE=0): using wasm');
    const named = await run(...args, '--backend', 'reference');
    expect(json(named.stdout).backend).toBe('reference');
    const refused = await runWithEnv({ SPARSEKIT_NATIVE: '0' }, ...args, '--backend', 'native');
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/Native kernels unavailable: hidden by SPARSEKIT_NATIVE=0/);
    const bad = await run(...args, '--backend', 'gpu');
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/--backend must be one of auto, native, wasm, reference/);
  });

  it('runs the demo end to end (small settings) and writes its report', async () => {
    const out = join(work, 'demo');
    // The speed model's rows are tested on a small shape (demo-speed.test.ts): here only tiny-lm's.
    const r = await run('demo', '--windows', '2', '--calib', '4', '--no-speed', '--out', out);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/SparseGPT 2:4\s+50\.0%/);
    expect(r.stdout).toContain(`report: ${join(out, 'report.md')}`);
    expect(readFileSync(join(out, 'report.md'), 'utf8')).toContain('| Wanda 50% |');
    expect(readFileSync(join(out, 'report.svg'), 'utf8')).toMatch(/^<svg/);
    // Every measured row is in results.jsonl; --resume reuses them (here: all five) instead of rerunning.
    const lines = readFileSync(join(out, 'results.jsonl'), 'utf8').trim().split('\n');
    expect(lines).toHaveLength(6);
    const again = await run('demo', '--windows', '2', '--calib', '4', '--no-speed', '--out', out, '--resume');
    expect(again.code, again.stderr).toBe(0);
    expect(again.stderr).toContain('resumed dense, Wanda 50%, Wanda 2:4, SparseGPT 50%, SparseGPT 2:4');
    const other = await run('demo', '--windows', '3', '--calib', '4', '--no-speed', '--out', out, '--resume');
    expect(other.code).toBe(1);
    expect(other.stderr).toMatch(/holds a sweep with other settings/);
  });
});

describe('large and hostile folders', () => {
  it('inspects a 600 MB model.safetensors reading only the 3.4 MB of tensors the model uses', async () => {
    const folder = join(work, 'unused-tensor');
    mkdirSync(folder);
    for (const file of ['config.json', 'tokenizer.json'])
      cpSync(join(tinyLmPath(), file), join(folder, file));
    const unused = 600 * 2 ** 20; // a file hole: no disk used
    safetensorsWithHole(join(tinyLmPath(), 'model.safetensors'), join(folder, 'model.safetensors'), unused);
    const r = await runMeasured('inspect', '--model', folder, '--json');
    expect(r.code, r.stderr).toBe(0);
    const reference = json((await run('inspect', '--json')).stdout);
    expect(json(r.stdout).layers).toEqual(reference.layers);
    expect(r.maxRss).toBeLessThan(unused / 2);
    if (r.rchar !== null) expect(r.rchar).toBeLessThan(64 * 2 ** 20);
  });

  it('refuses a tokenizer.json whose Split pattern backtracks exponentially, at once, with a hint', async () => {
    const folder = join(work, 'hostile-tokenizer');
    cpSync(tinyLmPath(), folder, { recursive: true });
    const tokenizer = JSON.parse(readFileSync(join(folder, 'tokenizer.json'), 'utf8'));
    tokenizer.pre_tokenizer = {
      type: 'Sequence',
      pretokenizers: [
        { type: 'Split', pattern: { Regex: '(a|aa)+$' }, behavior: 'Isolated', invert: false },
        tokenizer.pre_tokenizer,
      ],
    };
    writeFileSync(join(folder, 'tokenizer.json'), JSON.stringify(tokenizer));
    const text = join(work, 'aaa.txt');
    writeFileSync(text, `${'a'.repeat(60)}b `.repeat(50)); // hours of backtracking per line, unchecked
    const started = Date.now();
    const r = await run('eval', '--model', folder, '--text', text, '--max-windows', '1');
    expect(Date.now() - started).toBeLessThan(15_000);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(
      /pre_tokenizer\.pretokenizers\[0\]\.pattern\.Regex "\(a\|aa\)\+\$" can backtrack exponentially/,
    );
    expect(r.stderr).toContain('hint: ');
    expect(hintFor(new TokenizerTimeoutError('t', 10, 11, 5))).toMatch(
      /tokenizer.json is pathologically slow/,
    );
  });
});

describe('broken inputs: exit 1 with a hint, nothing written', () => {
  it('missing folder', async () => {
    const r = await run('eval', '--model', join(work, 'nope'));
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/error: no model folder at .*nope\nhint: pass --model/);
  });

  it('a tokenizer.json that does not parse: inspect (weights only) works, eval is refused with a hint', async () => {
    const folder = join(work, 'bad-tokenizer');
    cpSync(tinyLmPath(), folder, { recursive: true });
    writeFileSync(join(folder, 'tokenizer.json'), '{}');
    expect((await run('inspect', '--model', folder)).code).toBe(0);
    const r = await run('eval', '--model', folder, '--max-windows', '1');
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/tokenizer.json is not a tokenizer this runtime reads/);
    expect(r.stderr).toContain('hint: ');
  });

  it('a config.json with fewer layers than the weights gets the hint about configs, not about JSON', async () => {
    const folder = join(work, 'fewer-layers');
    cpSync(tinyLmPath(), folder, { recursive: true });
    const config = JSON.parse(readFileSync(join(folder, 'config.json'), 'utf8'));
    writeFileSync(join(folder, 'config.json'), JSON.stringify({ ...config, num_hidden_layers: 2 }));
    const r = await run('inspect', '--model', folder);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/belongs to block 2/);
    expect(r.stderr).toContain('hint: config.json does not describe these weights');
  });

  it('hints name the system reason of a failed write (a full disk is not a missing path)', () => {
    const io = (code: string) =>
      new IOError('/x', 'Could not write', Object.assign(new Error(code), { code }));
    expect(hintFor(io('ENOSPC'))).toMatch(/disk .* is full/);
    expect(hintFor(io('EACCES'))).toMatch(/permission denied/);
    expect(hintFor(io('ENOENT'))).toMatch(/exists/);
  });

  it('bounds the calibration sample count', async () => {
    const r = await run(
      'prune',
      '--method',
      'wanda',
      '--sparsity',
      '0.5',
      '--calib-samples',
      '1000000000',
      '--out',
      join(work, 'too-many'),
    );
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/--calib-samples must be an integer >= 1 <= 65536/);
  });

  it("another model's eval and prune need their own text; text of unknown tokens is refused", async () => {
    const gpt2 = join(
      fileURLToPath(new URL('.', import.meta.url)),
      '../../../packages/models/src/hf/fixtures/hf-tiny/gpt2',
    );
    const e = await run('eval', '--model', gpt2);
    expect(e.code).toBe(1);
    expect(e.stderr).toMatch(/built-in test text is tiny-lm's/);
    expect(e.stderr).toContain('hint: give text for this model with --text FILE');
    const p = await run(
      'prune',
      '--model',
      gpt2,
      '--method',
      'wanda',
      '--sparsity',
      '0.5',
      '--out',
      join(work, 'gpt2-out'),
    );
    expect(p.code).toBe(1);
    expect(p.stderr).toMatch(/built-in calibration text is tiny-lm's/);
    // A tokenizer that knows three words: English text is nearly all unknown tokens.
    const folder = join(work, 'word-level');
    cpSync(tinyLmPath(), folder, { recursive: true });
    writeFileSync(
      join(folder, 'tokenizer.json'),
      JSON.stringify({
        version: '1.0',
        added_tokens: [],
        normalizer: null,
        pre_tokenizer: { type: 'Whitespace' },
        post_processor: null,
        decoder: null,
        model: { type: 'WordLevel', vocab: { the: 0, sea: 1, '<unk>': 2 }, unk_token: '<unk>' },
      }),
    );
    const text = join(work, 'english.txt');
    writeFileSync(text, 'Call me Ishmael. Some years ago, never mind how long precisely, I went to the sea.');
    const u = await run('eval', '--model', folder, '--text', text);
    expect(u.code).toBe(1);
    expect(u.stderr).toMatch(/% of the evaluation text is unknown tokens/);
  });

  it('corrupt safetensors', async () => {
    const broken = join(work, 'broken');
    cpSync(tinyLmPath(), broken, { recursive: true });
    truncateSync(join(broken, 'model.safetensors'), 1000);
    const r = await run('inspect', '--model', broken);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/hint: the weights file is damaged/);
  });

  it('bad recipe, and the output folder is not created', async () => {
    const recipe = join(work, 'bad.yaml');
    writeFileSync(recipe, 'method: wanda\nsparsity: 0.5\nlayerz: []\n');
    const out = join(work, 'never');
    const r = await run('prune', '--recipe', recipe, '--out', out);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/recipe\.layerz: unknown field/);
    expect(r.stderr).toContain('hint: fix the recipe field');
    expect(existsSync(out)).toBe(false);
  });

  it('output folders: refused before any work when unnamed, a file or holding files; --force replaces whole', async () => {
    const prune = (out: string, ...more: string[]) =>
      run('prune', '--method', 'magnitude', '--sparsity', '0.5', '--no-errors', '--out', out, ...more);
    const file = join(work, 'a-file');
    writeFileSync(file, 'mine');
    const full = join(work, 'full');
    mkdirSync(full);
    writeFileSync(join(full, 'notes.txt'), 'mine');
    for (const [out, message] of [
      ['', /--out must name a folder/],
      [file, /is a file, not a folder/],
      [full, /is not empty: choose a new folder, or pass --force/],
    ] as const) {
      const r = await prune(out);
      expect(r.code, out).toBe(2);
      expect(r.stderr, out).toMatch(message);
    }
    expect(readFileSync(file, 'utf8')).toBe('mine');
    const forced = await prune(full, '--force');
    expect(forced.code, forced.stderr).toBe(0);
    expect(readdirSync(full).sort()).toEqual([
      'config.json',
      'model.safetensors',
      'prune-report.json',
      'tokenizer.json',
    ]);
    expect(readdirSync(work).filter((f) => f.includes('.tmp-'))).toEqual([]);
    // A recipe file with a byte-order mark reads as the text after it.
    const bom = join(work, 'bom.json');
    writeFileSync(bom, '\uFEFF{"method": "magnitude", "sparsity": 0.5}');
    const fromBom = await run('prune', '--recipe', bom, '--no-errors', '--out', join(work, 'bom-out'));
    expect(fromBom.code, fromBom.stderr).toBe(0);
    // A recipe override that names no layer is refused before any work.
    const typo = join(work, 'typo.yaml');
    writeFileSync(
      typo,
      'method: magnitude\nsparsity: 0.5\noverrides: [{ match: "down_prj", sparsity: 0.7 }]\n',
    );
    const typoRun = await run('prune', '--recipe', typo, '--out', join(work, 'typo-out'));
    expect(typoRun.code).toBe(1);
    expect(typoRun.stderr).toMatch(/recipe.overrides\[0\].match: "down_prj" matches no layer/);
    expect(existsSync(join(work, 'typo-out'))).toBe(false);
    // A calibration text shorter than the windows together: they overlap, and the user is told.
    const short = join(work, 'short.txt');
    writeFileSync(short, readFileSync(join(tinyLmPath(), 'calibration.txt'), 'utf8').slice(0, 2000));
    const shortRun = await run(
      'prune',
      '--method',
      'wanda',
      '--sparsity',
      '0.5',
      '--calib',
      short,
      '--calib-samples',
      '16',
      '--out',
      join(work, 'short-out'),
    );
    expect(shortRun.code, shortRun.stderr).toBe(0);
    expect(shortRun.stderr).toMatch(
      /warning: the calibration text has \d+ tokens, so 16 windows of 128 \(2048 tokens\) overlap/,
    );
    // A folder given as a text file is named as such.
    const dirAsText = await run('eval', '--text', work);
    expect(dirAsText.code).toBe(1);
    expect(dirAsText.stderr).toMatch(/is not a file/);
  });

  it('--out above the model folder never deletes it; two prunes to one folder: one is refused, none lost', async () => {
    const parent = join(work, 'holder');
    mkdirSync(parent);
    const model = join(parent, 'model');
    cpSync(tinyLmPath(), model, { recursive: true });
    const prune = (out: string, ...more: string[]) =>
      run(
        'prune',
        '--model',
        model,
        '--method',
        'magnitude',
        '--sparsity',
        '0.5',
        '--no-errors',
        '--out',
        out,
        ...more,
      );
    const above = await prune(parent, '--force');
    expect(above.code).toBe(2);
    expect(above.stderr).toMatch(/--out must differ from --model and may not hold it/);
    expect(existsSync(join(model, 'model.safetensors'))).toBe(true);
    // Two runs writing one folder at once: the second finds the lock and says so; the first writes.
    const out = join(work, 'contended');
    const [a, b] = await Promise.all([prune(out), prune(out)]);
    const codes = [a.code, b.code].sort();
    expect(codes, `${a.stderr}\n${b.stderr}`).toEqual([0, 1]);
    const refused = a.code === 1 ? a : b;
    // Refused at the lock while the other writes, or, if the other finished first, as no longer empty.
    expect(refused.stderr).toMatch(/is being written by process \d+|Refusing to write .*: it is not empty/);
    const written = json(readFileSync(join(out, 'prune-report.json'), 'utf8'));
    expect(written.report.method).toBe('magnitude');
    expect(readdirSync(work).filter((f) => f.startsWith('.contended'))).toEqual([]);
  });

  it('impossible SliceGPT target', async () => {
    const r = await run(
      'prune',
      '--method',
      'slicegpt',
      '--sparsity',
      '0.99',
      '--calib-samples',
      '2',
      '--out',
      join(work, 'x'),
    );
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/leaves no coordinates/);
  });
});
