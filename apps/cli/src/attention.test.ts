import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { json, run, work } from './cli.test-util.js';

describe('sparsekit attention', () => {
  it('draws a 128K StreamingLLM mask from its block lists, with sparsity and memory', async () => {
    const shown = await run(
      'attention',
      'show',
      '--pattern',
      'streaming',
      '--seq',
      '131072',
      '--window',
      '4096',
      '--json',
    );
    expect(shown.code, shown.stderr).toBe(0);
    const r = json(shown.stdout);
    expect(r.sparsity).toBeGreaterThan(96);
    expect(r.bytes).toBeLessThan(20 * 2 ** 20);
    expect(r.drawing).toMatch(/█/);
    const text = await run(
      'attention',
      'show',
      '--pattern',
      'bigbird',
      '--seq',
      '2048',
      '--pattern-block',
      '64',
    );
    expect(text.code, text.stderr).toBe(0);
    expect(text.stdout).toMatch(/bigbird, 2048 tokens, 128-token blocks: sparsity/);
  });

  it('evaluates Quest on tiny-lm: perplexity against dense, recall and output error, with progress', async () => {
    const ev = await run(
      'attention',
      'eval',
      '--policy',
      'quest',
      '--budget',
      '32',
      '--page-size',
      '4',
      '--windows',
      '2',
      '--json',
    );
    expect(ev.code, ev.stderr).toBe(0);
    const r = json(ev.stdout);
    expect(r.scoredTokens).toBe(2 * (128 - 32));
    expect(r.perplexity).toBeGreaterThan(r.densePerplexity * 0.98);
    expect(r.selection.recall).toBeGreaterThan(0.3);
    expect(r.selection.recall).toBeLessThan(1);
    expect(r.selection.density).toBeLessThan(1);
    expect(ev.stderr).toMatch(/quest: 2\/2 windows/);
  });

  it('calibrates Double Sparsity channels once, saves them, and evaluates from the file', async () => {
    const file = join(work, 'ds-channels.json');
    const first = await run(
      'attention',
      'eval',
      '--policy',
      'double-sparsity',
      '--budget',
      '24',
      '--windows',
      '1',
      '--no-dense',
      '--save-channels',
      file,
      '--json',
    );
    expect(first.code, first.stderr).toBe(0);
    expect(Object.keys(JSON.parse(readFileSync(file, 'utf8')))).toContain('model.layers.0.self_attn.qk_proj');
    const again = await run(
      'attention',
      'eval',
      '--policy',
      'double-sparsity',
      '--budget',
      '24',
      '--windows',
      '1',
      '--no-dense',
      '--channels',
      file,
      '--json',
    );
    expect(again.code, again.stderr).toBe(0);
    expect(json(again.stdout).perplexity).toBeCloseTo(json(first.stdout).perplexity, 6);
  });

  it('times decode attention of a policy against dense in one run', async () => {
    const b = await run(
      'attention',
      'bench',
      '--policy',
      'quest',
      '--context',
      '4096',
      '--kv-heads',
      '2',
      '--reps',
      '3',
      '--json',
    );
    expect(b.code, b.stderr).toBe(0);
    const r = json(b.stdout);
    expect(r.rows[0]).toMatchObject({ subject: 'dense', tokensRead: 4096 });
    expect(r.rows[1]).toMatchObject({ subject: 'quest', tokensRead: 256 });
    expect(r.rows[1].ms).toBeGreaterThan(0);
  });

  it('refuses bad input with usage errors (exit 2) and names the flag', async () => {
    for (const [args, message] of [
      [['attention'], /say what to do/],
      [['attention', 'show', '--pattern', 'nope'], /--pattern must be one of/],
      [['attention', 'show', '--seq', '-3'], /--seq/],
      [['attention', 'eval', '--budget', '8'], /--policy is required/],
      [['attention', 'eval', '--policy', 'quest'], /--budget is required/],
      [['attention', 'eval', '--policy', 'fancy', '--budget', '8'], /unknown --policy/],
      [['attention', 'eval', '--policy', 'quest', '--budget', '0'], /--budget/],
      [['attention', 'bench', '--policy', 'h2o'], /--policy must be one of quest, double-sparsity/],
    ] as const) {
      const r = await run(...args);
      expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(2);
      expect(r.stderr).toMatch(message);
    }
    const damaged = join(work, 'bad-channels.json');
    await import('node:fs').then((fs) =>
      fs.writeFileSync(damaged, '{"model.layers.0.self_attn.qk_proj": [[0, 1, 1]]'),
    );
    const bad = await run(
      'attention',
      'eval',
      '--policy',
      'double-sparsity',
      '--budget',
      '8',
      '--channels',
      damaged,
    );
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/channel|JSON/i);
  });
});
