import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { cp } from 'node:fs/promises';
import { join } from 'node:path';
import { loadHfModel } from '@sparsekit/models/node';
import { beforeAll, describe, expect, it } from 'vitest';
import { json, run, work } from './cli.test-util.js';
import { EXPERTS, saveTinyMixtral, TOP_K } from './moe-model.test-util.js';

const dir = join(work, 'tiny-mixtral');

beforeAll(async () => {
  await saveTinyMixtral(dir);
}, 60_000);

describe('sparsekit moe', () => {
  it('the test model is a Mixtral checkpoint that reloads with its experts', async () => {
    const config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
    expect(config).toMatchObject({
      model_type: 'mixtral',
      num_local_experts: EXPERTS,
      num_experts_per_tok: TOP_K,
    });
    const { model } = await loadHfModel(dir);
    expect(model.config.moe).toEqual({ numExperts: EXPERTS, expertsPerToken: TOP_K });
    expect(model.params.blocks.every((b) => b.mlp.kind === 'moe')).toBe(true);
  });

  it('inspect: per-layer routing of the calibration text, loads summing to tokens x k', async () => {
    const r = await run('moe', 'inspect', '--model', dir, '--windows', '2', '--threads', '1', '--json');
    expect(r.code, r.stderr).toBe(0);
    const out = json(r.stdout);
    expect(out.windows).toBe(2);
    expect(out.layers).toHaveLength(4);
    for (const layer of out.layers) {
      expect(layer).toMatchObject({ experts: EXPERTS, k: TOP_K, router: 'TopKRouter', dropped: 0 });
      expect(layer.tokens).toBe(2 * out.seqLen);
      expect(layer.tokensPerExpert.reduce((a: number, b: number) => a + b, 0)).toBe(
        layer.tokens * TOP_K - layer.dropped,
      );
      expect(layer.loadCv).toBeGreaterThan(0);
      expect(layer.maxMeanLoad).toBeGreaterThanOrEqual(1);
      // Mixtral's form with coefficient 1 is k at perfect balance, more when uneven.
      expect(layer.balancingLoss).toBeGreaterThan(TOP_K * 0.99);
      expect(layer.zLoss).toBeGreaterThan(0);
    }
    expect(r.stderr).toMatch(/route: 2\/2 windows/);
    const text = await run('moe', 'inspect', '--model', dir, '--windows', '1', '--threads', '1');
    expect(text.code, text.stderr).toBe(0);
    expect(text.stdout).toMatch(/tokens per expert/);
    expect(text.stdout).toMatch(/TopKRouter/);
  });

  it('eval: dropless top-k equals the own router; a capacity factor of 0.5 drops tokens', async () => {
    const same = await run('moe', 'eval', '--model', dir, '--windows', '2', '--threads', '1', '--json');
    expect(same.code, same.stderr).toBe(0);
    const a = json(same.stdout);
    expect(a.router.name).toBe('top-k');
    expect(a.router.perplexity).toBeCloseTo(a.own.perplexity, 6);
    expect(a.router.dropRate).toBe(0);
    expect(a.own.layers).toHaveLength(4);
    expect(a.scoredTokens).toBe(2 * (a.seqLen - 1));
    expect(same.stderr).toMatch(/own router: 2\/2 windows/);
    expect(same.stderr).toMatch(/top-k: 2\/2 windows/);
    const half = await run(
      'moe',
      'eval',
      '--model',
      dir,
      '--windows',
      '2',
      '--capacity-factor',
      '0.5',
      '--threads',
      '1',
      '--json',
    );
    expect(half.code, half.stderr).toBe(0);
    const b = json(half.stdout);
    expect(b.router.capacity).toEqual({ factor: 0.5, convention: 'switch' });
    // At factor 0.5, at most half of the slots fit.
    expect(b.router.dropRate).toBeGreaterThanOrEqual(0.5);
    expect(b.router.dropped).toBeGreaterThan(0);
    for (const layer of b.router.layers) {
      expect(layer.capacity).toBe(Math.floor((0.5 * a.seqLen * TOP_K) / EXPERTS));
      expect(Math.max(...layer.tokensPerExpert)).toBeLessThanOrEqual(2 * layer.capacity);
    }
    expect(b.router.perplexity).toBeGreaterThan(b.own.perplexity);
    expect(b.own.perplexity).toBeCloseTo(a.own.perplexity, 6);
    const text = await run(
      'moe',
      'eval',
      '--model',
      dir,
      '--windows',
      '1',
      '--router',
      'switch',
      '--capacity-rule',
      'deepspeed',
      '--capacity-factor',
      '1',
      '--threads',
      '1',
    );
    expect(text.code, text.stderr).toBe(0);
    expect(text.stdout).toMatch(/switch, per layer/);
    expect(text.stdout).toMatch(/drop rate/);
  });

  it('prune: STUN removes experts, Wanda prunes the rest; the saved Mixtral folder reloads smaller', async () => {
    const out = join(work, 'tiny-mixtral-stun');
    const r = await run(
      'moe',
      'prune',
      '--model',
      dir,
      '--experts',
      '6',
      '--method',
      'wanda',
      '--sparsity',
      '0.5',
      '--calib-samples',
      '4',
      '--threads',
      '1',
      '--out',
      out,
      '--json',
    );
    expect(r.code, r.stderr).toBe(0);
    const res = json(r.stdout);
    expect(res.stun.layers).toHaveLength(4);
    for (const l of res.stun.layers) {
      expect(l.experts).toBe(EXPERTS);
      expect(l.kept).toHaveLength(6);
      expect(l.removed).toHaveLength(2);
      expect([...l.kept, ...l.removed].sort((a: number, b: number) => a - b)).toEqual([
        0, 1, 2, 3, 4, 5, 6, 7,
      ]);
    }
    // Wanda ran on the experts left only: router gates stay dense.
    const names: string[] = res.report.layers.map((l: { name: string }) => l.name);
    expect(names.some((n) => /\.mlp\.gate$/.test(n))).toBe(false);
    expect(names.filter((n) => n.includes('.mlp.experts.')).length).toBe(4 * 6 * 3);
    // 2 of 8 experts gone, half of the rest zeroed: 1 - 6/8 * 0.5 of the experts' weights.
    expect(res.expertWeights.sparsity).toBeCloseTo(1 - (6 / 8) * 0.5, 2);
    expect(res.parameters.after).toBeLessThan(res.parameters.before);
    expect(r.stderr).toMatch(/route: 4\/4 batches/);
    const config = JSON.parse(readFileSync(join(out, 'config.json'), 'utf8'));
    expect(config.num_local_experts).toBe(6);
    expect(config.num_experts_per_tok).toBe(TOP_K);
    const { model } = await loadHfModel(out);
    expect(model.parameterCount()).toBe(res.parameters.after);
    const report = JSON.parse(readFileSync(join(out, 'prune-report.json'), 'utf8'));
    expect(report.stun.layers[0].kept).toEqual(res.stun.layers[0].kept);
    // The structured stage alone, printed as a table.
    const text = await run(
      'moe',
      'prune',
      '--model',
      dir,
      '--expert-ratio',
      '0.25',
      '--calib-samples',
      '2',
      '--threads',
      '1',
      '--out',
      join(work, 'tiny-mixtral-stun-only'),
    );
    expect(text.code, text.stderr).toBe(0);
    expect(text.stdout).toMatch(/8 -> 6/);
    expect(text.stdout).toMatch(/25\.00% of the experts' weights removed/);
  });

  it("defaults to the bundled tiny-lm-moe (8 experts, top-4), whose text is tiny-lm's", async () => {
    const r = await run('moe', 'inspect', '--windows', '1', '--threads', '1', '--json');
    expect(r.code, r.stderr).toBe(0);
    const out = json(r.stdout);
    expect(out.model).toMatch(/tiny-lm-moe$/);
    expect(out.layers).toHaveLength(4);
    for (const layer of out.layers) expect(layer).toMatchObject({ experts: 8, k: 4, dropped: 0 });
  });

  it('refuses bad input with usage errors (exit 2) naming the flag, a damaged folder with exit 1', async () => {
    for (const [args, message] of [
      [['moe'], /say what to do/],
      [['moe', 'inspect', '--model', join(work, '..', 'nowhere'), '--windows', '0'], /--windows/],
      [['moe', 'eval', '--model', dir, '--router', 'fancy'], /unknown --router/],
      [['moe', 'eval', '--model', dir, '--capacity-factor', 'NaN'], /--capacity-factor/],
      [['moe', 'eval', '--model', dir, '--capacity-factor', '0'], /--capacity-factor must be > 0/],
      [
        ['moe', 'eval', '--model', dir, '--router', 'hash', '--capacity-factor', '1'],
        /--capacity-factor: the hash router/,
      ],
      [['moe', 'eval', '--model', dir, '--capacity-rule', 'gshard'], /--capacity-rule must be one of/],
      [['moe', 'prune', '--model', dir, '--out', join(work, 'p')], /exactly one of --experts/],
      [['moe', 'prune', '--model', dir, '--experts', '0', '--out', join(work, 'p')], /--experts/],
      [['moe', 'prune', '--model', dir, '--expert-ratio', '1', '--out', join(work, 'p')], /--expert-ratio/],
      [['moe', 'prune', '--model', dir, '--experts', '6'], /--out is required/],
      [
        ['moe', 'prune', '--model', dir, '--experts', '6', '--sparsity', '0.5', '--out', join(work, 'p')],
        /--sparsity is for the unstructured stage/,
      ],
      [
        [
          'moe',
          'prune',
          '--model',
          dir,
          '--experts',
          '6',
          '--method',
          'slicegpt',
          '--sparsity',
          '0.2',
          '--out',
          join(work, 'p'),
        ],
        /the unstructured stage takes/,
      ],
      [['moe', 'inspect', '--model', dir, '--experts', '6'], /--experts is for moe prune/],
      [['moe', 'prune', '--model', dir, '--router', 'hash'], /--router is for moe eval/],
    ] as const) {
      const r = await run(...args);
      expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(2);
      expect(r.stderr).toMatch(message);
    }
    const tinyLm = await run(
      'moe',
      'inspect',
      '--model',
      join(import.meta.dirname, '../../../packages/models/tiny-lm'),
    );
    expect(tinyLm.code, tinyLm.stderr).toBe(2);
    expect(tinyLm.stderr).toMatch(/--model .* has no mixture-of-experts layer/);
    const damaged = join(work, 'damaged-mixtral');
    await cp(dir, damaged, { recursive: true });
    const weights = join(damaged, 'model.safetensors');
    writeFileSync(weights, readFileSync(weights).subarray(0, 1000));
    expect(existsSync(weights)).toBe(true);
    const bad = await run('moe', 'inspect', '--model', damaged, '--json');
    expect(bad.code, bad.stderr).toBe(1);
    expect(json(bad.stdout).error.code).toMatch(/safetensors/);
  });
});
