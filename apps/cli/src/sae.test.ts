import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { json, run, work } from './cli.test-util.js';

describe('sparsekit sae', () => {
  const out = join(work, 'sae-topk');

  it('train: a TopK SAE at the middle residual stream, evaluated on held-out text, saved as SAELens', async () => {
    const r = await run(
      'sae',
      'train',
      '--d-sae',
      '256',
      '--k',
      '8',
      '--epochs',
      '1',
      '--batch',
      '1024',
      '--eval-windows',
      '2',
      '--out',
      out,
      '--json',
    );
    expect(r.code, r.stderr).toBe(0);
    const res = json(r.stdout);
    expect(res).toMatchObject({
      site: 'blocks.1.hook_resid_post',
      architecture: 'topk',
      dIn: 128,
      dSae: 256,
      k: 8,
    });
    expect(res.heldOut.l0).toBeLessThanOrEqual(8);
    expect(res.heldOut.explained_variance).toBeGreaterThan(0.5);
    expect(res.heldOut.ce_loss_score).toBeGreaterThan(0.3);
    expect(r.stderr).toMatch(/collect: \d+\/\d+ batches/);
    expect(r.stderr).toMatch(/train: \d+\/\d+ steps/);
    const cfg = JSON.parse(readFileSync(join(out, 'cfg.json'), 'utf8'));
    expect(cfg).toMatchObject({
      architecture: 'topk',
      d_in: 128,
      d_sae: 256,
      k: 8,
      metadata: { hook_name: 'blocks.1.hook_resid_post' },
    });
    expect(existsSync(join(out, 'sae_weights.safetensors'))).toBe(true);
    expect(JSON.parse(readFileSync(join(out, 'training-log.json'), 'utf8')).log.length).toBeGreaterThan(0);
  });

  it('eval and features read the folder back (site from its metadata)', async () => {
    const e = await run('sae', 'eval', '--sae', out, '--windows', '2', '--json');
    expect(e.code, e.stderr).toBe(0);
    const m = json(e.stdout);
    expect(m.site).toBe('blocks.1.hook_resid_post');
    for (const key of [
      'explained_variance',
      'mse',
      'cossim',
      'l2_ratio',
      'relative_reconstruction_bias',
      'l0',
      'l1',
      'ce_loss_score',
      'kl_div_score',
    ])
      expect(Number.isFinite(m[key]), key).toBe(true);
    const file = join(work, 'features.json');
    const f = await run(
      'sae',
      'features',
      '--sae',
      out,
      '--windows',
      '2',
      '--features',
      '0,3',
      '--contexts',
      '2',
      '--out',
      file,
    );
    expect(f.code, f.stderr).toBe(0);
    expect(f.stdout).toMatch(/density/);
    const data = JSON.parse(readFileSync(file, 'utf8'));
    expect(data.features.map((x: { feature: number }) => x.feature)).toEqual([0, 3]);
    for (const x of data.features) {
      expect(x.topContexts.length).toBeLessThanOrEqual(2);
      for (const c of x.topContexts) expect(c.text).toHaveLength(c.tokens.length);
      expect(x.logitEffects.positive).toHaveLength(10);
    }
  });

  it('refuses bad input with usage errors, a damaged folder with a typed error', async () => {
    for (const [args, message] of [
      [['sae'], /say what to do/],
      [
        ['sae', 'train', '--architecture', 'fancy', '--out', join(work, 'x')],
        /--architecture must be one of/,
      ],
      [
        ['sae', 'train', '--architecture', 'standard', '--k', '4', '--out', join(work, 'x')],
        /--k is for topk/,
      ],
      [['sae', 'train', '--d-sae', '16', '--k', '32', '--out', join(work, 'x')], /--k 32 exceeds/],
      [['sae', 'train', '--site', 'blocks.9.hook_resid_post', '--out', join(work, 'x')], /4 blocks/],
      [['sae', 'train', '--site', 'layers.2', '--out', join(work, 'x')], /is not a hook name/],
      [['sae', 'train', '--expansion', '4', '--d-sae', '64', '--out', join(work, 'x')], /not both/],
      [['sae', 'eval'], /--sae is required/],
      [['sae', 'eval', '--sae', out, '--k', '3'], /--k is for sae train/],
      [['sae', 'features', '--sae', out, '--features', '0,9999'], /9999 is not a feature id/],
    ] as const) {
      const r = await run(...args);
      expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(2);
      expect(r.stderr).toMatch(message);
    }
    const damaged = join(work, 'sae-damaged');
    const { cpSync } = await import('node:fs');
    cpSync(out, damaged, { recursive: true });
    writeFileSync(
      join(damaged, 'cfg.json'),
      JSON.stringify({
        architecture: 'jumprelu',
        d_in: 128,
        d_sae: 256,
        metadata: { sae_lens_version: '6.1.0' },
      }),
    );
    const bad = await run('sae', 'eval', '--sae', damaged, '--json');
    expect(bad.code, bad.stderr).toBe(1);
    expect(json(bad.stdout).error.code).toBe('sae/file');
  });
});
