import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { json, run, work } from './cli.test-util.js';

describe('sparsekit activations', () => {
  it('calibrates TEAL thresholds, evaluates and measures them, and CHESS from a saved calibration', async () => {
    const teal = join(work, 'teal-50.json');
    const cal = join(work, 'chess.safetensors');
    const made = await run(
      'activations',
      'calibrate',
      '--method',
      'teal',
      '--sparsity',
      '0.5',
      '--calib-samples',
      '4',
      '--out',
      teal,
      '--json',
    );
    expect(made.code, made.stderr).toBe(0);
    expect(json(made.stdout)).toMatchObject({ method: 'teal', sparsity: 0.5, entries: 16 });
    expect(made.stderr).toMatch(/calibrate: 4\/4 batches/);
    const ev = await run(
      'activations',
      'eval',
      '--thresholds',
      teal,
      '--max-length',
      '64',
      '--max-windows',
      '40',
      '--json',
    );
    expect(ev.code, ev.stderr).toBe(0);
    const r = json(ev.stdout);
    expect(r.perplexity).toBeGreaterThan(r.densePerplexity);
    expect(r.sitesSparsity).toBeGreaterThan(0.4);
    expect(r.sitesSparsity).toBeLessThan(0.6);
    const m = await run('activations', 'measure', '--thresholds', teal, '--calib-samples', '2');
    expect(m.code, m.stderr).toBe(0);
    expect(m.stdout).toMatch(/mlp\.hidden\s+384\s+\d+\.\d%/);
    expect(m.stdout).toMatch(/overall \d+\.\d% inactive/);
    // CHESS: the calibration saved once, thresholds at two sparsities made from it.
    const chess = await run(
      'activations',
      'calibrate',
      '--method',
      'chess',
      '--calib-samples',
      '2',
      '--save-calibration',
      cal,
      '--out',
      join(work, 'chess-50.json'),
    );
    expect(chess.code, chess.stderr).toBe(0);
    const again = await run(
      'activations',
      'calibrate',
      '--method',
      'chess',
      '--sparsity',
      '0.7',
      '--calibration',
      cal,
      '--out',
      join(work, 'chess-70.json'),
      '--json',
    );
    expect(again.code, again.stderr).toBe(0);
    const t = JSON.parse(readFileSync(join(work, 'chess-70.json'), 'utf8'));
    expect(t.method).toBe('chess');
    expect(t.entries[0].channels).toHaveLength(384);
  });

  it('times decode with sparse decode against dense in the same run', async () => {
    const path = join(work, 'topk.json');
    const made = await run(
      'activations',
      'calibrate',
      '--method',
      'top-k',
      '--sparsity',
      '0.5',
      '--out',
      path,
    );
    expect(made.code, made.stderr).toBe(0);
    const b = await run(
      'activations',
      'bench',
      '--thresholds',
      path,
      '--tokens',
      '4',
      '--reps',
      '1',
      '--json',
    );
    expect(b.code, b.stderr).toBe(0);
    const r = json(b.stdout);
    expect(r.dense.decodeTokensPerSecond).toBeGreaterThan(0);
    expect(r.sparse.decodeTokensPerSecond).toBeGreaterThan(0);
    expect(r.weightsSkipped).toBeGreaterThan(0.4);
  });

  it('refuses bad input with a hint, before loading anything', async () => {
    const none = await run('activations');
    expect(none.code).toBe(2);
    expect(none.stderr).toMatch(/say what to do: measure, calibrate, eval, bench/);
    const noFile = await run('activations', 'eval');
    expect(noFile.code).toBe(2);
    expect(noFile.stderr).toMatch(/--thresholds is required/);
    const method = await run('activations', 'calibrate', '--method', 'wanda', '--out', 'x.json');
    expect(method.code).toBe(2);
    expect(method.stderr).toMatch(
      /--method must be one of teal, teal-greedy, cats, chess, chess\+, top-k, delta/,
    );
    const bad = join(work, 'bad.json');
    writeFileSync(
      bad,
      '{"format": "sparsekit.activation-thresholds", "method": "teal-uniform", "entries": [{"block": 0, "site": "mlp.hidden", "sparsity": 0.5, "threshold": -1}]}',
    );
    const damaged = await run('activations', 'eval', '--thresholds', bad);
    expect(damaged.code).toBe(1);
    expect(damaged.stderr).toMatch(/threshold must be a finite number >= 0/);
    const other = join(work, 'other.json');
    writeFileSync(
      other,
      JSON.stringify({
        format: 'sparsekit.activation-thresholds',
        version: 1,
        method: 'teal-uniform',
        sparsity: 0.5,
        entries: [{ block: 9, site: 'mlp.hidden', sparsity: 0.5, threshold: 0.1 }],
      }),
    );
    const wrongModel = await run('activations', 'eval', '--thresholds', other);
    expect(wrongModel.code).toBe(2);
    expect(wrongModel.stderr).toMatch(/names block 9, but the model has 4 blocks/);
    const mixed = await run(
      'activations',
      'calibrate',
      '--method',
      'cats',
      '--calibration',
      join(work, 'chess.safetensors'),
      '--out',
      join(work, 'cats.json'),
    );
    expect(mixed.code).toBe(1);
    expect(mixed.stderr).toMatch(/needs a 'magnitude' calibration/);
  });
});
