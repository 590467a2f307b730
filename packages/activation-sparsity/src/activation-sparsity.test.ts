import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Hooks, NonFiniteError, Rng, Tensor } from '@sparsekit/core';
import { calibrationWindows } from '@sparsekit/eval-harness';
import { loadHfModel, tinyLmPath } from '@sparsekit/models/node';
import { createWasmBackend } from '@sparsekit/sparse-formats';
import { describe, expect, it } from 'vitest';
import { applyThresholds } from './apply.js';
import { calibrateActivations } from './calibrate.js';
import { greedyThresholds, greedyThresholdsAt } from './greedy.js';
import { SiteHistogram } from './histogram.js';
import { loadCalibration, loadThresholds, saveCalibration, saveThresholds } from './io.js';
import { measureActivations } from './measure.js';
import type { HookableLM } from './sites.js';
import { catsThresholds, tealThresholds } from './thresholds.js';

const fixture = JSON.parse(readFileSync(new URL('./fixtures/teal-seed5.json', import.meta.url), 'utf8'))
  .teal as {
  acts: number[][];
  sparsity: number;
  threshold: number;
};

async function tinyLm() {
  const { model, tokenizer } = await loadHfModel(tinyLmPath());
  const ids = tokenizer!.encode(readFileSync(join(tinyLmPath(), 'calibration.txt'), 'utf8').slice(0, 20_000));
  return { model, batches: calibrationWindows(ids, { samples: 4, seqLen: 64, seed: 1 }) };
}

describe('SiteHistogram', () => {
  it("matches the reference's TEAL threshold: sorted |acts| at floor(s * n)", () => {
    const h = new SiteHistogram();
    for (const row of fixture.acts) h.add(row);
    expect(h.isExact).toBe(true);
    expect(h.threshold(fixture.sparsity)).toBeCloseTo(fixture.threshold, 6); // f32 storage of the f64 values
    expect(h.threshold(0)).toBe(0);
  });

  it('past the exact limit, bins (1% tails outside) give icdf(0.5 + s/2) close to the exact quantile', () => {
    const rng = new Rng(3);
    const values = Float32Array.from({ length: 200_000 }, () => rng.normal());
    const binned = new SiteHistogram({ exactLimit: 50_000 });
    const exact = new SiteHistogram({ exactLimit: 1 << 20 });
    for (let i = 0; i < values.length; i += 10_000) {
      binned.add(values.subarray(i, i + 10_000));
      exact.add(values.subarray(i, i + 10_000));
    }
    expect(binned.isExact).toBe(false);
    const { counts } = binned.histogram();
    expect(counts.length).toBe(10_000);
    expect(counts.reduce((a, b) => a + b, 0)).toBe(200_000);
    expect(counts[0]! / 200_000).toBeCloseTo(0.01, 2);
    // Within 1%: the signed icdf assumes symmetry, which a sample of 200k normals has to about that.
    for (const s of [0.25, 0.4, 0.5, 0.7, 0.9])
      expect(Math.abs(binned.threshold(s) / exact.threshold(s) - 1), `s = ${s}`).toBeLessThan(0.01);
  });

  it('refuses NaN and impossible targets', () => {
    const h = new SiteHistogram();
    expect(() => h.add([1, Number.NaN])).toThrow(NonFiniteError);
    expect(() => h.threshold(0.5)).toThrow(/calibrate first/);
    h.add([1, 2, 3]);
    expect(() => h.threshold(1)).toThrow(/\[0, 1\)/);
  });
});

describe('TEAL on tiny-lm', () => {
  it('threshold 0 gives the dense model exactly; at 50% the first site drops half its values', async () => {
    const { model, batches } = await tinyLm();
    const dense = model.logits(batches[0]!).data.slice();
    const calibration = await calibrateActivations(model, batches);
    expect(calibration.tokens).toBe(4 * 64);
    const zero = applyThresholds(model.hooks, tealThresholds(calibration, 0));
    expect(model.logits(batches[0]!).data).toEqual(dense);
    zero.remove();
    const half = applyThresholds(model.hooks, tealThresholds(calibration, 0.5));
    for (const b of batches) model.logits(b);
    const first = half.measured().find((m) => m.block === 0 && m.site === 'attention.input')!;
    // The same tokens it was calibrated on, and nothing upstream is sparsified: half, to one value.
    expect(Math.abs(first.zeros / first.values - 0.5)).toBeLessThanOrEqual(1 / first.values + 1e-12);
    expect(half.overall()).toBeGreaterThan(0.4);
    expect(half.overall()).toBeLessThan(0.6);
    const sparse = model.logits(batches[0]!).data;
    expect(sparse).not.toEqual(dense);
    half.remove();
    expect(model.logits(batches[0]!).data).toEqual(dense);
  }, 30_000);

  it("'last-half' sparsifies only the last floor(seq / 2) tokens of a call, as TEAL's prefill", async () => {
    const { model, batches } = await tinyLm();
    const calibration = await calibrateActivations(model, batches.slice(0, 1), { sites: ['mlp.hidden'] });
    const applied = applyThresholds(model.hooks, tealThresholds(calibration, 0.5), { tokens: 'last-half' });
    model.logits(batches[0]!);
    for (const m of applied.measured()) expect(m.values).toBe(32 * 384);
    applied.remove();
  }, 30_000);

  it('calibration and thresholds save and load back to the same thresholds; damaged files are refused', async () => {
    const { model, batches } = await tinyLm();
    const calibration = await calibrateActivations(model, batches.slice(0, 2), { exactLimit: 4096 });
    const dir = mkdtempSync(join(tmpdir(), 'act-'));
    await saveCalibration(join(dir, 'calibration.safetensors'), calibration);
    const back = await loadCalibration(join(dir, 'calibration.safetensors'));
    const a = tealThresholds(calibration, 0.4);
    expect(tealThresholds(back, 0.4)).toEqual(a);
    await saveThresholds(join(dir, 'thresholds.json'), a);
    expect(await loadThresholds(join(dir, 'thresholds.json'))).toEqual(a);
    writeFileSync(
      join(dir, 'bad.json'),
      JSON.stringify({
        format: 'sparsekit.activation-thresholds',
        method: 'teal-uniform',
        entries: [{ block: 0, site: 'mlp.hidden', sparsity: 0.5, threshold: -1 }],
      }),
    );
    await expect(loadThresholds(join(dir, 'bad.json'))).rejects.toThrow(
      /threshold must be a finite number >= 0/,
    );
    writeFileSync(join(dir, 'calibration.safetensors'), 'garbage');
    await expect(loadCalibration(join(dir, 'calibration.safetensors'))).rejects.toMatchObject({
      code: 'core/safetensors',
    });
  }, 30_000);
});

describe('CATS', () => {
  it('thresholds |act(gate)| per block; down_proj then reads zeros wherever the gate was cut', async () => {
    const { model, batches } = await tinyLm();
    const calibration = await calibrateActivations(model, batches, { sites: ['mlp.gate'] });
    const cats = catsThresholds(calibration, 0.5);
    expect(cats.entries.map((e) => e.site)).toEqual(['mlp.gate', 'mlp.gate', 'mlp.gate', 'mlp.gate']);
    const applied = applyThresholds(model.hooks, cats);
    const hidden = await measureActivations(model, batches, { sites: ['mlp.hidden'] });
    const gate = applied.measured();
    // Block 0's gate sees exactly the values it was calibrated on: half cut, to one value.
    expect(Math.abs(gate[0]!.zeros / gate[0]!.values - 0.5)).toBeLessThanOrEqual(1 / gate[0]!.values + 1e-12);
    for (const site of hidden.sites) expect(site.tls, `block ${site.block}`).toBeGreaterThanOrEqual(0.45);
    applied.remove();
    expect(() => catsThresholds(calibration, 1)).toThrow(/\[0, 1\)/);
    const teal = await calibrateActivations(model, batches.slice(0, 1), { sites: ['mlp.hidden'] });
    expect(() => catsThresholds(teal, 0.5)).toThrow(/needs 'mlp.gate'/);
  }, 30_000);
});

describe('TEAL greedy allocation', () => {
  it('reaches the target per block, with a block error no larger than the uniform allocation', async () => {
    const { model, batches: all } = await tinyLm();
    model.backend = await createWasmBackend();
    const batches = all.slice(0, 1);
    const calibration = await calibrateActivations(model, batches);
    // A coarse step keeps the test short (TEAL's is 0.05).
    const greedy = await greedyThresholds(model, calibration, batches, { target: 0.4, step: 0.4 });
    const blockError = (block: number, thresholds: ReturnType<typeof tealThresholds>, h: Tensor<'f32'>[]) => {
      const hooks = new Hooks();
      applyThresholds(hooks, { ...thresholds, entries: thresholds.entries.filter((e) => e.block === block) });
      let sum = 0;
      let n = 0;
      for (const x of h) {
        const want = model.runBlock(block, x).data;
        const got = model.runBlock(block, x, { hooks }).data;
        const width = x.shape.at(-1)!;
        for (let row = 0; row < got.length / width; row++) {
          if (row % 64 < 48) continue; // the last quarter, as the allocation measures it
          let e = 0;
          for (let c = row * width; c < (row + 1) * width; c++) e += (want[c]! - got[c]!) ** 2;
          sum += Math.sqrt(e);
          n++;
        }
      }
      return sum / n;
    };
    const uniform = tealThresholds(calibration, 0.4);
    let hidden = batches.map((b) => model.embed(b));
    for (const b of greedy.blocks) {
      expect(b.effective).toBeGreaterThanOrEqual(0.4 - 1e-9);
      expect(b.effective).toBeLessThan(0.45); // one round adds step / (sum of the weights), 0.4 / 12 here
      expect(b.error).toBeCloseTo(blockError(b.block, greedy.thresholds, hidden), 9);
      expect(b.error).toBeLessThanOrEqual(blockError(b.block, uniform, hidden));
      hidden = hidden.map((h) => model.runBlock(b.block, h));
    }
    // The path holds every lower target: read at 0.2, it equals a run to 0.2.
    const lower = await greedyThresholds(model, calibration, batches, { target: 0.2, step: 0.4 });
    expect(greedyThresholdsAt(calibration, greedy, 0.2)).toEqual(lower.thresholds);
    expect(greedy.path[0]![0]!.effective).toBe(0);
    expect(() => greedyThresholdsAt(calibration, lower, 0.4)).toThrow(/beyond block 0's path/);
  }, 60_000);
});

describe('measureActivations', () => {
  /** A model whose only site is mlp.hidden of block 0, carrying a given [1, seq, width] tensor. */
  function fixed(x: Float32Array, seq: number, width: number): HookableLM {
    const hooks = new Hooks();
    return {
      hooks,
      numBlocks: 1,
      vocabSize: 2,
      maxSequenceLength: seq,
      logits: () => {
        hooks.run(x, [1, seq, width], { site: 'mlp.hidden', block: 0, batch: 1, seq, position: 0 });
        return new Tensor('f32', [1, seq, 2], new Float32Array(2 * seq));
      },
    };
  }

  it('token- and chunk-level sparsity and channel activity equal a direct count', async () => {
    const seq = 10;
    const width = 6;
    const rng = new Rng(11);
    const x = Float32Array.from({ length: seq * width }, () => (rng.uniform() < 0.6 ? 0 : rng.normal()));
    const m = await measureActivations(
      fixed(x, seq, width),
      [new Tensor('i32', [1, seq], new Int32Array(seq))],
      {
        sites: ['mlp.hidden'],
        chunk: 4,
      },
    );
    const s = m.sites[0]!;
    let zeros = 0;
    for (const v of x) if (v === 0) zeros++;
    expect(s.tls).toBeCloseTo(zeros / x.length, 12);
    // Two whole chunks of 4 tokens (the last 2 tokens do not make one).
    let cls = 0;
    for (const start of [0, 4]) {
      let off = 0;
      for (let c = 0; c < width; c++) {
        let any = false;
        for (let t = start; t < start + 4; t++) if (x[t * width + c] !== 0) any = true;
        if (!any) off++;
      }
      cls += off / width / 2;
    }
    expect(s.cls).toBeCloseTo(cls, 12);
    for (let c = 0; c < width; c++) {
      let active = 0;
      for (let t = 0; t < seq; t++) if (x[t * width + c] !== 0) active++;
      expect(s.channelActivity[c]).toBeCloseTo(active / seq, 12);
    }
    expect(m.overall).toBeCloseTo(zeros / x.length, 12);
  });
});
