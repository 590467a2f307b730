import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type HookContext, Hooks, InvalidArgumentError, Rng, Tensor } from '@sparsekit/core';
import { calibrationWindows } from '@sparsekit/eval-harness';
import { loadHfModel, tinyLmPath } from '@sparsekit/models/node';
import { describe, expect, it } from 'vitest';
import { applyThresholds } from './apply.js';
import { calibrateActivations, calibrateDeltas } from './calibrate.js';
import { calibrateChess, chessThresholds } from './chess.js';
import { loadCalibration, loadThresholds, saveCalibration, saveThresholds } from './io.js';
import { fatReluThresholds, proSparseFactor } from './prosparse.js';
import { catsThresholds, deltaThresholds, topKSparsity } from './thresholds.js';

async function tinyLm() {
  const { model, tokenizer } = await loadHfModel(tinyLmPath());
  const ids = tokenizer!.encode(readFileSync(join(tinyLmPath(), 'calibration.txt'), 'utf8').slice(0, 20_000));
  return { model, batches: calibrationWindows(ids, { samples: 4, seqLen: 64, seed: 1 }) };
}

/** Run one site's hooks on `data` [batch, seq, width] as a model call would. */
function runSite(
  hooks: Hooks,
  data: Float32Array,
  shape: [number, number, number],
  extra: Partial<HookContext> = {},
) {
  return hooks.run(data, shape, {
    site: 'mlp.hidden',
    block: 0,
    batch: shape[0],
    seq: shape[1],
    position: 0,
    ...extra,
  });
}

describe('CHESS channel-wise thresholds', () => {
  it('t_c = quantile(|act(gate)| * mean|up|_c, s) / mean|up|_c, from a plain count of the same tokens', async () => {
    const { model, batches } = await tinyLm();
    const dense = model.logits(batches[0]!).data.slice();
    const few = batches.slice(0, 2);
    const calibration = await calibrateChess(model, few);
    expect(calibration.kind).toBe('chess');
    // The reference, by hand: block 0's act(gate) and up on the same batches.
    const gates: Float32Array[] = [];
    const ups: Float32Array[] = [];
    const h = model.hooks.add(['mlp.gate', 'mlp.up'], (t, ctx) => {
      if (ctx.block === 0) (ctx.site === 'mlp.gate' ? gates : ups).push(t.data.slice());
    });
    for (const b of few) model.logits(b);
    h.remove();
    const width = model.config.intermediateSize;
    const mean = new Float64Array(width);
    let rows = 0;
    for (const u of ups) {
      for (let i = 0; i < u.length; i++) mean[i % width]! += Math.abs(u[i]!);
      rows += u.length / width;
    }
    for (let c = 0; c < width; c++) mean[c]! /= rows;
    const weighted = gates.flatMap((g) =>
      Array.from(g, (v, i) => Math.fround(Math.abs(v) * Math.fround(mean[i % width]!))),
    );
    weighted.sort((a, b) => a - b);
    const s = 0.5;
    const T = weighted[Math.floor(s * weighted.length)]!;
    const thresholds = chessThresholds(calibration, s);
    const e0 = thresholds.entries[0]!;
    expect(e0.site).toBe('mlp.gate');
    expect(e0.threshold).toBeCloseTo(T, 6);
    for (let c = 0; c < width; c += 97) expect(e0.channels![c]).toBeCloseTo(T / mean[c]!, 4);
    // Applied to the calibration tokens, block 0 drops half its act(gate) values (nothing upstream changes).
    const applied = applyThresholds(model.hooks, thresholds);
    for (const b of few) model.logits(b);
    applied.remove();
    const m0 = applied.measured().find((m) => m.block === 0)!;
    expect(Math.abs(m0.zeros / m0.values - s)).toBeLessThan(0.002);
    // Threshold 0 changes nothing.
    const none = applyThresholds(model.hooks, chessThresholds(calibration, 0));
    expect(model.logits(batches[0]!).data).toEqual(dense);
    none.remove();
    // CHESS+ adds scalar thresholds at the attention input and before o_proj.
    const attention = await calibrateActivations(model, few, {
      sites: ['attention.input', 'attention.output'],
    });
    const plus = chessThresholds(calibration, s, { attention });
    expect(plus.method).toBe('chess+');
    expect(new Set(plus.entries.map((e) => e.site))).toEqual(
      new Set(['attention.input', 'attention.output', 'mlp.gate']),
    );
    // Kinds are not mixed up.
    expect(() => chessThresholds(attention, s)).toThrow(/needs a 'chess' calibration \(calibrateChess\)/);
    expect(() => catsThresholds(calibration, s)).toThrow(InvalidArgumentError);
    // Saved and loaded, the calibration gives the same thresholds; so do the thresholds themselves.
    const dir = mkdtempSync(join(tmpdir(), 'chess-'));
    await saveCalibration(join(dir, 'chess.safetensors'), calibration);
    const back = await loadCalibration(join(dir, 'chess.safetensors'));
    expect(chessThresholds(back, s)).toEqual(thresholds);
    await saveThresholds(join(dir, 't.json'), plus);
    expect(await loadThresholds(join(dir, 't.json'))).toEqual(plus);
  });
});

describe('top-k per token', () => {
  it('keeps the k largest |x| of each token, as a sort of that token gives', () => {
    const rng = new Rng(11);
    const [batch, seq, width] = [2, 3, 50];
    const data = Float32Array.from({ length: batch * seq * width }, () => rng.normal());
    const hooks = new Hooks();
    const applied = applyThresholds(hooks, topKSparsity(1, 0.7));
    const out = runSite(hooks, data, [batch, seq, width]);
    const k = Math.round(0.3 * width);
    for (let r = 0; r < batch * seq; r++) {
      const row = data.subarray(r * width, (r + 1) * width);
      const kth = Float32Array.from(row, Math.abs).sort()[width - k]!;
      for (let i = 0; i < width; i++) expect(out[r * width + i]).toBe(Math.abs(row[i]!) >= kth ? row[i] : 0);
    }
    expect(applied.overall()).toBeCloseTo(1 - k / width, 12);
    expect(() => topKSparsity(1, 1)).toThrow(/\[0, 1\)/);
  });
});

describe('delta sparsity', () => {
  it('passes a channel on only when it moved by more than t since its last passed value', () => {
    const hooks = new Hooks();
    const t = 0.5;
    applyThresholds(hooks, {
      method: 'delta',
      sparsity: 0.5,
      entries: [{ block: 0, site: 'mlp.hidden', sparsity: 0.5, threshold: t, rule: 'delta' }],
    });
    // One sequence, two channels, four tokens, in one call and then token by token: the same.
    const tokens = [
      [1, 1],
      [1.4, 2],
      [1.8, 2.1],
      [1.6, 3],
    ];
    const want = [
      [1, 1],
      [1, 2], // 0.4 <= t: channel 0 repeats 1
      [1.8, 2], // 0.8 > t: updated; 0.1 <= t: repeats 2
      [1.8, 3],
    ];
    const whole = runSite(hooks, Float32Array.from(tokens.flat()), [1, 4, 2]);
    expect(Array.from(whole)).toEqual(want.flat().map(Math.fround));
    const stepwise = tokens.map((row, p) =>
      Array.from(runSite(hooks, Float32Array.from(row), [1, 1, 2], { position: p })),
    );
    expect(stepwise.flat()).toEqual(want.flat().map(Math.fround));
  });

  it('on tiny-lm: threshold 0 is the dense model; prefill and token-by-token decode agree', async () => {
    const { model, batches } = await tinyLm();
    const calibration = await calibrateDeltas(model, batches, { sites: ['mlp.hidden'] });
    expect(calibration.kind).toBe('delta');
    const ids = batches[0]!.data.subarray(0, 16);
    const dense = model.logits(new Tensor('i32', [1, 16], ids)).data.slice();
    const zero = applyThresholds(model.hooks, deltaThresholds(calibration, 0));
    expect(model.logits(new Tensor('i32', [1, 16], ids)).data).toEqual(dense);
    zero.remove();
    const applied = applyThresholds(model.hooks, deltaThresholds(calibration, 0.5));
    const prefill = model.logits(new Tensor('i32', [1, 16], ids)).data.slice();
    const cache = model.createCache(1);
    const decoded: number[] = [];
    for (let p = 0; p < 16; p++)
      decoded.push(...model.forward(new Tensor('i32', [1, 1], ids.subarray(p, p + 1)), cache).data);
    for (let i = 0; i < prefill.length; i++)
      expect(Math.abs(decoded[i]! - prefill[i]!)).toBeLessThan(1e-3 * (1 + Math.abs(prefill[i]!)));
    expect(applied.overall()).toBeGreaterThan(0.2);
    applied.remove();
  });
});

describe('ProSparse schedule and FATReLU', () => {
  it('rises along a sine within each stage and holds after the last', () => {
    const stages = [
      { steps: 4, l1: 1 },
      { steps: 2, l1: 3 },
    ];
    const f = Array.from({ length: 8 }, (_, i) => proSparseFactor(i, stages));
    expect(f[0]).toBeCloseTo(Math.sin(Math.PI / 8), 12);
    expect(f[3]).toBeCloseTo(1, 12);
    expect(f[4]).toBeCloseTo(1 + 2 * Math.sin(Math.PI / 4), 12);
    expect(f[5]).toBeCloseTo(3, 12);
    expect(f[7]).toBe(3);
    for (let i = 1; i < f.length; i++) expect(f[i]!).toBeGreaterThanOrEqual(f[i - 1]!);
    expect(() =>
      proSparseFactor(0, [
        { steps: 2, l1: 2 },
        { steps: 2, l1: 1 },
      ]),
    ).toThrow(/previous stage/);
  });

  it('FATReLU zeros act(gate) at or below T in every block', () => {
    const t = fatReluThresholds(2, 0.1);
    expect(t.entries.map((e) => [e.block, e.site, e.threshold])).toEqual([
      [0, 'mlp.gate', 0.1],
      [1, 'mlp.gate', 0.1],
    ]);
    const hooks = new Hooks();
    applyThresholds(hooks, t);
    const out = hooks.run(Float32Array.of(0, 0.05, 0.1, 0.2), [1, 1, 4], {
      site: 'mlp.gate',
      block: 1,
      batch: 1,
      seq: 1,
      position: 0,
    });
    expect(Array.from(out)).toEqual([0, 0, 0, Math.fround(0.2)]);
    expect(() => fatReluThresholds(1, -1)).toThrow(InvalidArgumentError);
  });
});
