import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  ActivationStore,
  InvalidArgumentError,
  InvalidFormatError,
  NonFiniteError,
  Rng,
  ShapeMismatchError,
  Tensor,
} from '@sparsekit/core';
import { writeSafetensors } from '@sparsekit/core/node';
import { calibrationWindows, perplexityOfTokens } from '@sparsekit/eval-harness';
import { loadHfModel, tinyLmPath } from '@sparsekit/models/node';
import { createWasmBackend } from '@sparsekit/sparse-formats';
import { describe, expect, it } from 'vitest';
import { applyThresholds } from './apply.js';
import { calibrateActivations } from './calibrate.js';
import {
  activeLabels,
  applyPredictors,
  MlpPredictor,
  measurePredictors,
  predictorMetrics,
  predictorRows,
} from './predictor.js';
import { type BlockPredictorData, collectPredictorData, type PredictorData } from './predictor-data.js';
import { loadPredictors, savePredictors } from './predictor-io.js';
import { defaultRank, type TrainedPredictors, trainPredictors } from './predictor-train.js';
import { tealThresholds } from './thresholds.js';

async function tinyLm() {
  const { model, tokenizer } = await loadHfModel(tinyLmPath());
  model.backend = await createWasmBackend();
  const text = (name: string) => tokenizer!.encode(readFileSync(join(tinyLmPath(), name), 'utf8'));
  return { model, calibration: text('calibration.txt'), test: text('test.txt') };
}

/**
 * Predictors for blocks 0 and 1 of the tiny-lm, trained once for the tests below: 24 calibration
 * windows of 128 tokens (2 held out), batches of 256, 5 epochs (about a second per block).
 */
let trainedOnce:
  | Promise<{
      lm: Awaited<ReturnType<typeof tinyLm>>;
      data: PredictorData;
      trained: TrainedPredictors;
      heldOut: Tensor<'i32'>[];
    }>
  | undefined;
function trainedTinyLm() {
  trainedOnce ??= (async () => {
    const lm = await tinyLm();
    const batches = calibrationWindows(lm.calibration, { samples: 24, seqLen: 128, seed: 1 });
    const data = await collectPredictorData(lm.model, batches, { blocks: [0, 1], validation: 0.1 });
    const trained = await trainPredictors(data, { batchSize: 256, epochs: 5 });
    // Held-out tokens from another text: the tiny-lm's test split.
    const heldOut = calibrationWindows(lm.test, { samples: 8, seqLen: 128, seed: 2 });
    return { lm, data, trained, heldOut };
  })();
  return trainedOnce;
}

describe('labels and metrics', () => {
  it('label rules: positive, magnitude (|h| > t) and top-k per token with ties to the lower channel', () => {
    const h = Float32Array.from([0.5, -2, 0, 1, /* token 2 */ -0.1, 0.3, 0.3, -0.3]);
    expect([...activeLabels(h, 4, { rule: 'positive' })]).toEqual([1, 0, 0, 1, 0, 1, 1, 0]);
    expect([...activeLabels(h, 4, { rule: 'magnitude', threshold: 0.5 })]).toEqual([0, 1, 0, 1, 0, 0, 0, 0]);
    expect([...activeLabels(h, 4, { rule: 'magnitude', threshold: 0 })]).toEqual([1, 1, 0, 1, 1, 1, 1, 1]);
    expect([...activeLabels(h, 4, { rule: 'top-k', k: 2 })]).toEqual([0, 1, 0, 1, 0, 1, 1, 0]);
    expect([...activeLabels(h, 4, { rule: 'top-k', k: 0 })]).toEqual([0, 0, 0, 0, 0, 0, 0, 0]);
  });

  it('recall, precision, classifier and true sparsity equal a hand count', () => {
    // 3 tokens x 4 channels.
    const actual = Uint8Array.from([1, 1, 0, 0, /**/ 0, 1, 0, 0, /**/ 1, 1, 1, 0]);
    const predicted = Uint8Array.from([1, 0, 1, 0, /**/ 0, 1, 0, 0, /**/ 1, 1, 0, 1]);
    // Truly active: 2 + 1 + 3 = 6; predicted active: 2 + 1 + 3 = 6; both: 1 + 1 + 2 = 4.
    const m = predictorMetrics(predicted, actual, 4, 7);
    expect(m).toEqual({
      block: 7,
      tokens: 3,
      channels: 4,
      recall: 4 / 6,
      precision: 4 / 6,
      classifierSparsity: 1 - 6 / 12,
      trueSparsity: 1 - 6 / 12,
    });
    const all = predictorMetrics(new Uint8Array(12).fill(1), actual, 4);
    expect([all.recall, all.precision, all.classifierSparsity]).toEqual([1, 0.5, 0]);
    const none = predictorMetrics(new Uint8Array(12), new Uint8Array(12), 4);
    expect([none.recall, none.precision, none.trueSparsity]).toEqual([1, 1, 1]);
    expect(() => predictorMetrics(predicted, actual.subarray(0, 8), 4)).toThrow(ShapeMismatchError);
  });
});

describe('MlpPredictor', () => {
  const rng = new Rng(4);
  const [d, r, m] = [6, 3, 10];
  const predictor = new MlpPredictor({
    block: 2,
    inputSize: d,
    rank: r,
    hiddenSize: m,
    fc1: rng.normalArray(r * d),
    fc2: rng.normalArray(m * r),
    label: { rule: 'positive' },
  });

  it('logits are fc2 (fc1 x); a channel fires when sigmoid(logit) >= the threshold', () => {
    const x = rng.normalArray(2 * d);
    const want: number[] = [];
    for (let t = 0; t < 2; t++) {
      const h = Array.from({ length: r }, (_, j) => {
        let s = 0;
        for (let i = 0; i < d; i++) s += predictor.fc1[j * d + i]! * x[t * d + i]!;
        return s;
      });
      for (let c = 0; c < m; c++) want.push(h.reduce((s, v, j) => s + predictor.fc2[c * r + j]! * v, 0));
    }
    expect(predictor.logits(x)).toAllClose(want, { atol: 1e-5, rtol: 0 });
    for (const p of [0.5, 0.2, 0.9]) {
      predictor.threshold = p;
      const mask = predictor.predictMask(x);
      expect([...mask]).toEqual(want.map((z) => (1 / (1 + Math.exp(-z)) >= p ? 1 : 0)));
      const second = x.subarray(d);
      expect([...predictor.predictActive(second)]).toEqual(
        want.slice(m).flatMap((z, c) => (1 / (1 + Math.exp(-z)) >= p ? [c] : [])),
      );
    }
    predictor.threshold = 0;
    expect(predictor.predictActive(x.subarray(0, d)).length).toBe(m);
    predictor.threshold = 0.5;
  });

  it('refuses weights of the wrong size, bad thresholds and label rules', () => {
    const base = { block: 0, inputSize: 2, rank: 1, hiddenSize: 3, label: { rule: 'positive' } as const };
    const fc1 = new Float32Array(2);
    const fc2 = new Float32Array(3);
    expect(() => new MlpPredictor({ ...base, fc1: new Float32Array(3), fc2 })).toThrow(ShapeMismatchError);
    expect(() => new MlpPredictor({ ...base, fc1, fc2, threshold: 1.5 })).toThrow(/\[0, 1\]/);
    expect(() => new MlpPredictor({ ...base, fc1, fc2, label: { rule: 'top-k', k: 4 } })).toThrow(/\[0, 3\]/);
    expect(
      () => new MlpPredictor({ ...base, fc1, fc2, label: { rule: 'magnitude', threshold: -1 } }),
    ).toThrow(InvalidArgumentError);
    expect(() => predictor.predictActive(new Float32Array(d + 1))).toThrow(ShapeMismatchError);
  });
});

describe('training', () => {
  /** Rows whose hidden activations are a rank-3 linear map of the input: a predictor can get every label right. */
  function linearData(seed: number): PredictorData {
    const rng = new Rng(seed);
    const [d, m, rank] = [8, 16, 3];
    const u = rng.normalArray(m * rank);
    const v = rng.normalArray(rank * d);
    const store = (rows: number) => {
      const s = new ActivationStore({ width: d + m, seed });
      const data = new Float32Array(rows * (d + m));
      for (let t = 0; t < rows; t++) {
        const x = rng.normalArray(d);
        data.set(x, t * (d + m));
        for (let c = 0; c < m; c++) {
          let h = 0;
          for (let j = 0; j < rank; j++) {
            let p = 0;
            for (let i = 0; i < d; i++) p += v[j * d + i]! * x[i]!;
            h += u[c * rank + j]! * p;
          }
          data[t * (d + m) + d + c] = h;
        }
      }
      s.add(data);
      return s;
    };
    const block: BlockPredictorData = {
      block: 0,
      inputSize: d,
      hiddenSize: m,
      gated: false,
      train: store(2048),
      validation: store(256),
    };
    return { blocks: [block], tokens: 2304, sequences: 1, validationSequences: 0 };
  }

  it('learns a separable rule; the reference monitor (recall) stops above 0.99; seeded runs agree', async () => {
    const options = { rank: 4, batchSize: 128, monitor: 'recall' as const };
    const a = await trainPredictors(linearData(1), options);
    const report = a.reports[0]!;
    expect(report.label).toEqual({ rule: 'positive' }); // 'auto' on a plain MLP: the reference's fc1 > 0
    expect(report.stopped).toBe('recall');
    expect(report.metrics.recall).toBeGreaterThan(0.99);
    expect(report.metrics.precision).toBeGreaterThan(0.9);
    expect(report.history[0]!.epoch).toBe(0);
    const b = await trainPredictors(linearData(1), options);
    expect(b.predictors[0]!.fc1).toEqual(a.predictors[0]!.fc1);
    expect(b.predictors[0]!.fc2).toEqual(a.predictors[0]!.fc2);
    const loss = await trainPredictors(linearData(1), { rank: 4, batchSize: 128, epochs: 3 });
    expect(loss.reports[0]!.epochs).toBe(3);
    expect(loss.reports[0]!.history.map((h) => h.epoch)).toEqual([0, 1, 2, 3]);
    await expect(trainPredictors(linearData(1), { learningRate: 0 })).rejects.toThrow(InvalidArgumentError);
  }, 30_000);

  it('the default rank is min(1000, hiddenSize / 8 to a multiple of 8)', () => {
    expect(defaultRank(384)).toBe(48);
    expect(defaultRank(11008)).toBe(1000);
    expect(defaultRank(20)).toBe(8);
  });
});

describe('Deja Vu predictors on tiny-lm', () => {
  it('collects each token of whole sequences, held-out sequences apart', async () => {
    const { data } = await trainedTinyLm();
    expect(data.tokens).toBe(24 * 128);
    expect(data.validationSequences).toBe(2); // round(0.1 * 24)
    for (const b of data.blocks) {
      expect(b.gated).toBe(true);
      expect([b.inputSize, b.hiddenSize]).toEqual([128, 384]);
      expect(b.validation.rows).toBe(2 * 128);
      expect(b.train.rows).toBe(22 * 128);
    }
    const { model } = (await trainedTinyLm()).lm;
    await expect(
      collectPredictorData(model, calibrationWindows(new Int32Array(300), { samples: 1, seqLen: 64 })),
    ).rejects.toThrow(/leave none to train on/);
  }, 60_000);

  it('reach recall well above chance on held-out tokens of another text', async () => {
    const { lm, trained, heldOut } = await trainedTinyLm();
    for (const r of trained.reports) {
      // 'auto' on a gated MLP: |act(gate) * up| above the block's 50% magnitude threshold.
      expect(r.label).toMatchObject({ rule: 'magnitude', sparsity: 0.5 });
      expect(r.rank).toBe(48);
      expect(Math.abs(r.metrics.trueSparsity - 0.5)).toBeLessThan(0.05);
    }
    const metrics = await measurePredictors(lm.model, trained.predictors, heldOut);
    for (const m of metrics) {
      // Measured (seeded): block 0 recall 0.81 at classifier sparsity 0.52, block 1 0.95 at 0.44.
      // A predictor that drops a share s of channels at random keeps recall 1 - s.
      expect(m.tokens).toBe(8 * 128);
      expect(m.recall, `block ${m.block}`).toBeGreaterThanOrEqual(0.78);
      expect(m.classifierSparsity, `block ${m.block}`).toBeGreaterThanOrEqual(0.4);
      expect(m.recall - (1 - m.classifierSparsity), `block ${m.block}`).toBeGreaterThanOrEqual(0.3);
      expect(m.precision, `block ${m.block}`).toBeGreaterThan(0.75);
    }
  }, 60_000);

  it('applied as hooks: all-active predictions give the dense model exactly; trained ones drop what they predict', async () => {
    const { lm, trained, heldOut } = await trainedTinyLm();
    const { model } = lm;
    const batch = heldOut[0]!;
    const dense = model.logits(batch).data.slice();
    const allActive = trained.predictors.map(
      ({ block, inputSize, rank, hiddenSize, fc1, fc2, label }) =>
        new MlpPredictor({ block, inputSize, rank, hiddenSize, fc1, fc2, label, threshold: 0 }),
    );
    const zero = applyPredictors(model.hooks, allActive);
    expect(model.logits(batch).data).toEqual(dense);
    expect(zero.overall()).toBe(0);
    zero.remove();

    // Block 0's MLP input is upstream of every prediction: what the hooks drop there is exactly
    // the classifier sparsity measured on the dense model.
    const first = trained.predictors.filter((p) => p.block === 0);
    const [want] = await measurePredictors(model, first, [batch]);
    const applied = applyPredictors(model.hooks, first);
    let zeros = 0;
    const observe = model.hooks.add(
      'mlp.hidden',
      (t) => {
        for (const v of t.data) if (v === 0) zeros++;
      },
      { blocks: [0] },
    );
    const sparse = model.logits(batch).data;
    observe.remove();
    applied.remove();
    const got = applied.measured()[0]!;
    expect(got.values).toBe(128 * 384);
    expect(got.zeros / got.values).toBeCloseTo(want!.classifierSparsity, 12);
    expect(zeros).toBeGreaterThanOrEqual(got.zeros);
    expect(sparse).not.toEqual(dense);
    expect(model.logits(batch).data).toEqual(dense);
  }, 60_000);

  it('at decode, predictorRows has gate and up compute only the predicted rows, as the hooks simulate', async () => {
    const { lm, trained, heldOut } = await trainedTinyLm();
    const { model } = lm;
    const ids = Array.from(heldOut[0]!.data.subarray(0, 12));
    const decode = () => {
      const cache = model.createCache(1);
      model.forward(new Tensor('i32', [1, 4], Int32Array.from(ids.slice(0, 4))), cache);
      return ids.slice(4).map((t) => model.forward(new Tensor('i32', [1, 1], Int32Array.of(t)), cache).data);
    };
    const simulated = applyPredictors(model.hooks, trained.predictors);
    const want = decode();
    let rowsAsked = 0;
    const rows = predictorRows(trained.predictors);
    model.sparseDecode = {
      minZeroShare: 0.1,
      mlpRows: (block, input) => {
        const r = rows(block, input);
        rowsAsked += r?.length ?? 0;
        return r;
      },
    };
    const accelerated = decode();
    model.sparseDecode = undefined;
    simulated.remove();
    for (let t = 0; t < want.length; t++)
      for (let i = 0; i < want[t]!.length; i++)
        expect(Math.abs(accelerated[t]![i]! - want[t]![i]!)).toBeLessThan(
          1e-4 * (1 + Math.abs(want[t]![i]!)),
        );
    const width = model.config.intermediateSize;
    const share = rowsAsked / (width * trained.predictors.length * want.length);
    expect(share).toBeGreaterThan(0.3);
    expect(share).toBeLessThan(0.7);
  }, 60_000);

  it('perplexity with the predictors stays near the dense model and the oracle at the same sparsity', async () => {
    const { lm, trained } = await trainedTinyLm();
    const { model } = lm;
    const tokens = lm.test.slice(0, 8 * 128);
    const ppl = async () => (await perplexityOfTokens(model, tokens, { maxLength: 128 })).perplexity;
    const dense = await ppl();
    const applied = applyPredictors(model.hooks, trained.predictors);
    const predicted = await ppl();
    const dropped = applied.overall();
    applied.remove();
    // The oracle: TEAL's magnitude thresholds at the labels' sparsity on the same blocks' mlp.hidden.
    const calibration = await calibrateActivations(
      model,
      calibrationWindows(lm.calibration, { samples: 24, seqLen: 128, seed: 1 }),
      { sites: ['mlp.hidden'] },
    );
    const teal = tealThresholds(calibration, 0.5);
    const oracle = applyThresholds(model.hooks, {
      ...teal,
      entries: teal.entries.filter((e) => e.block <= 1),
    });
    const exact = await ppl();
    oracle.remove();
    // Measured: dense 28.69, predictors 28.92 (48% of blocks 0-1's channels dropped), oracle 28.75.
    expect(dropped).toBeGreaterThan(0.4);
    expect(predicted).toBeGreaterThan(dense);
    expect(predicted / dense).toBeLessThan(1.03);
    expect(exact).toBeLessThan(predicted);
  }, 60_000);

  it('save and load back the same predictors; damaged or mismatched files are refused with typed errors', async () => {
    const { trained } = await trainedTinyLm();
    const dir = mkdtempSync(join(tmpdir(), 'dejavu-'));
    const path = join(dir, 'predictors.safetensors');
    await savePredictors(path, trained.predictors);
    const back = await loadPredictors(path);
    expect(back.length).toBe(2);
    for (const [i, p] of trained.predictors.entries()) {
      const q = back[i]!;
      expect([q.block, q.inputSize, q.rank, q.hiddenSize, q.threshold]).toEqual([
        p.block,
        p.inputSize,
        p.rank,
        p.hiddenSize,
        p.threshold,
      ]);
      expect(q.label).toEqual(p.label);
      expect(q.fc1).toEqual(p.fc1);
      expect(q.fc2).toEqual(p.fc2);
      const x = new Float32Array(128).map((_, j) => Math.sin(j));
      expect(q.predictActive(x)).toEqual(p.predictActive(x));
    }

    const p = trained.predictors[0]!;
    const entry = {
      block: 0,
      inputSize: 128,
      rank: p.rank,
      hiddenSize: 384,
      threshold: 0.5,
      label: { rule: 'positive' },
    };
    const write = async (
      name: string,
      tensors: Record<string, Tensor>,
      metadata: Record<string, string> = { format: 'sparsekit.dejavu-predictors', version: '1' },
    ) => {
      await writeSafetensors(join(dir, name), tensors, metadata);
      return loadPredictors(join(dir, name));
    };
    const weights = {
      'blocks.0.fc1.weight': new Tensor('f32', [p.rank, 128], p.fc1),
      'blocks.0.fc2.weight': new Tensor('f32', [384, p.rank], p.fc2),
    };
    const meta = (entries: unknown) => ({
      format: 'sparsekit.dejavu-predictors',
      version: '1',
      predictors: JSON.stringify(entries),
    });
    expect((await write('ok.safetensors', weights, meta([entry])))[0]!.label).toEqual({ rule: 'positive' });
    await expect(write('format.safetensors', weights, { format: 'other' })).rejects.toThrow(
      InvalidFormatError,
    );
    await expect(write('version.safetensors', weights, { ...meta([entry]), version: '2' })).rejects.toThrow(
      /version "2"/,
    );
    await expect(
      write(
        'shape.safetensors',
        {
          ...weights,
          'blocks.0.fc1.weight': new Tensor('f32', [p.rank, 127], new Float32Array(p.rank * 127)),
        },
        meta([entry]),
      ),
    ).rejects.toThrow(ShapeMismatchError);
    await expect(
      write('missing.safetensors', { 'blocks.0.fc1.weight': weights['blocks.0.fc1.weight'] }, meta([entry])),
    ).rejects.toThrow(/'blocks.0.fc2.weight' is missing/);
    await expect(
      write('label.safetensors', weights, meta([{ ...entry, label: { rule: 'top-k', k: 999 } }])),
    ).rejects.toThrow(InvalidFormatError);
    await expect(write('threshold.safetensors', weights, meta([{ ...entry, threshold: 2 }]))).rejects.toThrow(
      /threshold must be a number in \[0, 1\]/,
    );
    await expect(write('list.safetensors', weights, meta({ block: 0 }))).rejects.toThrow(/must be a list/);
    await expect(write('extra.safetensors', weights, meta([]))).rejects.toThrow(/belongs to no predictor/);
    const nan = p.fc2.slice();
    nan[5] = Number.NaN;
    await expect(
      write(
        'nan.safetensors',
        { ...weights, 'blocks.0.fc2.weight': new Tensor('f32', [384, p.rank], nan) },
        meta([entry]),
      ),
    ).rejects.toThrow(NonFiniteError);
    writeFileSync(join(dir, 'garbage.safetensors'), 'garbage');
    await expect(loadPredictors(join(dir, 'garbage.safetensors'))).rejects.toMatchObject({
      code: 'core/safetensors',
    });
  }, 60_000);
});
