import { InvalidArgumentError, loadTfjs, Rng } from '@sparsekit/core';
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { beforeAll, describe, expect, it } from 'vitest';
import { erkDensities } from '../methods/global.js';
import { ConstantSparsity, PolynomialDecay } from '../schedules.js';
import { iterativeMagnitudePruning } from './imp.js';
import { PruningStepMissingError } from './prunable.js';
import {
  type PruningSummary,
  prunedLayers,
  pruneLowMagnitude,
  pruningSummaries,
  stripPruning,
  updatePruningStep,
} from './prune.js';
import { pruneRandomAtInit } from './random.js';
import { sparseModelSoup } from './soups.js';
import { PruneLowMagnitude } from './wrapper.js';

const zerosOf = (t: tf.Tensor) => Array.from(t.dataSync()).filter((v) => v === 0).length;

function data(rows: number, inputs: number, outputs: number, seed = 1) {
  const rng = new Rng(seed);
  return {
    x: tf.tensor2d(rng.normalArray(rows * inputs), [rows, inputs]),
    y: tf.tensor2d(rng.normalArray(rows * outputs), [rows, outputs]),
  };
}

function mlp(seed = 0) {
  const init = (s: number) => tfl.initializers.glorotUniform({ seed: seed + s });
  return tfl.sequential({
    layers: [
      tfl.layers.dense({ units: 16, inputShape: [8], activation: 'relu', kernelInitializer: init(1) }),
      tfl.layers.dropout({ rate: 0 }),
      tfl.layers.dense({ units: 4, kernelInitializer: init(2) }),
    ],
  });
}

beforeAll(async () => {
  await loadTfjs();
});

describe('pruneLowMagnitude on tfjs-layers', () => {
  it('wraps the prunable layers of a Sequential model, sharing their weights', () => {
    const base = mlp();
    const pruned = pruneLowMagnitude(base, { pruningSchedule: new ConstantSparsity(0.5, 0, -1, 1) });
    expect(pruned).toBeInstanceOf(tfl.Sequential);
    expect(pruned.layers.map((l) => l.getClassName())).toEqual([
      'PruneLowMagnitude',
      'Dropout',
      'PruneLowMagnitude',
    ]);
    expect((pruned.layers[0] as PruneLowMagnitude).layer).toBe(base.layers[0]);
    expect(pruned.trainableWeights.map((w) => w.name)).toEqual(base.trainableWeights.map((w) => w.name));
    const x = data(3, 8, 4).x;
    expect(Array.from((pruned.predict(x) as tf.Tensor).dataSync())).toEqual(
      Array.from((base.predict(x) as tf.Tensor).dataSync()),
    );
  });

  it('fails training without updatePruningStep, with a typed error naming the fix', async () => {
    const pruned = pruneLowMagnitude(mlp());
    pruned.compile({ optimizer: 'sgd', loss: 'meanSquaredError' });
    const { x, y } = data(16, 8, 4);
    const error = await pruned.fit(x, y, { epochs: 1, batchSize: 8, verbose: 0 }).catch((e: unknown) => e);
    expect(PruningStepMissingError.isInstance(error)).toBe(true);
    expect(String((error as Error).message)).toContain('updatePruningStep()');
  });

  it("follows the schedule step by step, TFMOT's way, and ends each epoch exactly sparse", async () => {
    const schedule = new PolynomialDecay(0.2, 0.8, 0, 8, 3, 2);
    const pruned = pruneLowMagnitude(mlp(), { pruningSchedule: schedule });
    pruned.compile({ optimizer: tf.train.adam(0.01), loss: 'meanSquaredError' });
    const { x, y } = data(40, 8, 4);
    const seen: PruningSummary[][] = [];
    await pruned.fit(x, y, {
      epochs: 2,
      batchSize: 8,
      shuffle: false,
      verbose: 0,
      callbacks: [updatePruningStep(), pruningSummaries({ onSummary: (e) => void seen.push(e) })],
    });
    const [first, second] = prunedLayers(pruned);
    // 5 batches an epoch: steps 1..10; masks recomputed at the even steps, last at 8 (sparsity 0.8).
    expect(first!.pruningStep).toBe(10);
    const kernel = first!.layer.getWeights()[0]!;
    expect(zerosOf(kernel)).toBe(128 - Math.round(128 * 0.2));
    expect(zerosOf(second!.layer.getWeights()[0]!)).toBe(64 - Math.round(64 * 0.2));
    expect(zerosOf(first!.layer.getWeights()[1]!)).toBeLessThan(16); // biases are not pruned
    // Summaries at each epoch's end: after step 5 the mask is step 4's.
    expect(seen).toHaveLength(2);
    expect(seen[0]!.map((e) => e.name)).toEqual([
      `${first!.name}/kernel/sparsity`,
      `${second!.name}/kernel/sparsity`,
    ]);
    const step4 = schedule.at(4).sparsity;
    expect(seen[0]![0]!.sparsity).toBeCloseTo(1 - Math.max(Math.round(128 * (1 - step4)), 1) / 128, 6);
    expect(seen[1]![0]!.sparsity).toBe(1 - Math.round(128 * 0.2) / 128);
    expect(seen[1]![0]!.step).toBe(10);
  });

  it('keeps counting on a second fit, and strips to the plain layers with exact zeros', async () => {
    const pruned = pruneLowMagnitude(mlp(), { pruningSchedule: new ConstantSparsity(0.75, 0, -1, 1) });
    pruned.compile({ optimizer: 'adam', loss: 'meanSquaredError' });
    const { x, y } = data(16, 8, 4);
    const fit = () =>
      pruned.fit(x, y, { epochs: 1, batchSize: 8, verbose: 0, callbacks: [updatePruningStep()] });
    await fit();
    await fit();
    expect(prunedLayers(pruned)[0]!.pruningStep).toBe(4);
    const plain = stripPruning(pruned);
    expect(plain.layers.map((l) => l.getClassName())).toEqual(['Dense', 'Dropout', 'Dense']);
    expect(zerosOf(plain.layers[0]!.getWeights()[0]!)).toBe(96);
    expect(Array.from((plain.predict(x) as tf.Tensor).dataSync())).toEqual(
      Array.from((pruned.predict(x) as tf.Tensor).dataSync()),
    );
  });

  it('prunes functional models with Conv2D, DepthwiseConv2D and Embedding layers; N:M and blocks', async () => {
    const image = tfl.input({ shape: [6, 6, 4] });
    const c = tfl.layers
      .conv2d({ filters: 8, kernelSize: 3, name: 'conv' })
      .apply(image) as tfl.SymbolicTensor;
    const d = tfl.layers.depthwiseConv2d({ kernelSize: 3, name: 'dw' }).apply(c) as tfl.SymbolicTensor;
    const f = tfl.layers.flatten().apply(d) as tfl.SymbolicTensor;
    const out = tfl.layers.dense({ units: 4, name: 'head' }).apply(f) as tfl.SymbolicTensor;
    const model = tfl.model({ inputs: image, outputs: out });
    // tfjs-backend-wasm has no DepthwiseConv2D backprop kernel: train this one on the cpu backend.
    await tf.setBackend('cpu');
    const nm = pruneLowMagnitude(model, { nm: [2, 4] });
    expect(nm.layers.map((l) => l.name)).toEqual([
      model.layers[0]!.name,
      'prune_low_magnitude_conv',
      'prune_low_magnitude_dw',
      model.layers[3]!.name,
      'prune_low_magnitude_head',
    ]);
    nm.compile({ optimizer: 'sgd', loss: 'meanSquaredError' });
    const rng = new Rng(5);
    const x = tf.tensor4d(rng.normalArray(4 * 6 * 6 * 4), [4, 6, 6, 4]);
    const y = tf.tensor2d(rng.normalArray(16), [4, 4]);
    await nm.fit(x, y, { epochs: 1, batchSize: 2, verbose: 0, callbacks: [updatePruningStep()] });
    const conv = model.getLayer('conv').getWeights()[0]!; // [3, 3, 4, 8]: 2 of every 4 inputs
    expect(zerosOf(conv)).toBe(conv.size / 2);
    const dw = model.getLayer('dw').getWeights()[0]!; // [3, 3, 8, 1]
    expect(zerosOf(dw)).toBe(dw.size / 2);
    await tf.setBackend('wasm');

    const emb = tfl.sequential({
      layers: [tfl.layers.embedding({ inputDim: 10, outputDim: 4, inputLength: 3 }), tfl.layers.flatten()],
    });
    const prunedEmb = pruneLowMagnitude(emb, { pruningSchedule: new ConstantSparsity(0.5, 0, -1, 1) });
    expect(prunedEmb.layers[0]).toBeInstanceOf(PruneLowMagnitude);
    const wrapper = prunedEmb.layers[0] as PruneLowMagnitude;
    wrapper.updateMasks(1);
    wrapper.applyMasks();
    expect(zerosOf(emb.layers[0]!.getWeights()[0]!)).toBe(20);

    const dense = tfl.sequential({ layers: [tfl.layers.dense({ units: 8, inputShape: [8] })] });
    const blocks = pruneLowMagnitude(dense, {
      pruningSchedule: new ConstantSparsity(0.5, 0, -1, 1),
      blockSize: [2, 4],
      blockPooling: 'max',
    });
    const bw = blocks.layers[0] as PruneLowMagnitude;
    bw.updateMasks(1);
    bw.applyMasks();
    const k = dense.layers[0]!.getWeights()[0]!.arraySync() as number[][];
    for (let r = 0; r < 8; r += 2)
      for (let c2 = 0; c2 < 8; c2 += 4) {
        const block = [0, 1].flatMap((i) => k[r + i]!.slice(c2, c2 + 4));
        expect(block.every((v) => v === 0) || block.every((v) => v !== 0)).toBe(true);
      }
  });

  it('takes custom layers through getPrunableWeights, and refuses the unknown', () => {
    class Scale extends tfl.layers.Layer {
      static className = 'ScaleForPruningTest';
      w!: tfl.LayerVariable;
      override build(shape: tfl.Shape) {
        this.w = this.addWeight('w', [shape.at(-1)!], 'float32', tfl.initializers.ones());
        this.built = true;
      }
      override call(x: tf.Tensor | tf.Tensor[]) {
        return tf.mul(Array.isArray(x) ? x[0]! : x, this.w.read());
      }
    }
    class PrunableScale extends Scale {
      static override className = 'PrunableScaleForPruningTest';
      getPrunableWeights() {
        return [this.w];
      }
    }
    const make = (layer: tfl.layers.Layer) =>
      tfl.sequential({ layers: [tfl.layers.dense({ units: 4, inputShape: [4] }), layer] });
    expect(() => pruneLowMagnitude(make(new Scale({})))).toThrow(InvalidArgumentError);
    expect(() => pruneLowMagnitude(new Scale({}))).toThrow(/getPrunableWeights/);
    const ok = pruneLowMagnitude(make(new PrunableScale({})));
    expect(ok.layers[1]).toBeInstanceOf(PruneLowMagnitude);
    expect(() => pruneLowMagnitude({} as never)).toThrow(InvalidArgumentError);
    expect(() => pruneLowMagnitude(tfl.layers.dense({ units: 2 }), { nm: [4, 4] })).toThrow(
      InvalidArgumentError,
    );
  });

  it('saves and loads a pruned model (masks included) through the layers serialisation', async () => {
    const pruned = pruneLowMagnitude(mlp(3), { pruningSchedule: new ConstantSparsity(0.5, 0, -1, 1) });
    (pruned.layers[0] as PruneLowMagnitude).updateMasks(1);
    let artifacts: tf.io.ModelArtifacts | undefined;
    await pruned.save(
      tf.io.withSaveHandler(async (a) => {
        artifacts = a;
        return { modelArtifactsInfo: {} as never };
      }),
    );
    const back = await tfl.loadLayersModel(tf.io.fromMemory(artifacts!));
    expect(back.layers[0]).toBeInstanceOf(PruneLowMagnitude);
    const x = data(2, 8, 4).x;
    expect(Array.from((back.predict(x) as tf.Tensor).dataSync())).toEqual(
      Array.from((pruned.predict(x) as tf.Tensor).dataSync()),
    );
  });
});

describe('iterative magnitude pruning', () => {
  it('prunes 20% of the remaining weights per round and rewinds the survivors', async () => {
    const model = mlp(7);
    const rewindTo = model.getWeights().map((t) => t.clone());
    const { x, y } = data(32, 8, 4, 2);
    model.compile({ optimizer: 'adam', loss: 'meanSquaredError' });
    await model.fit(x, y, { epochs: 2, batchSize: 8, verbose: 0 }); // "trained" past the rewind point
    const sparsities: number[] = [];
    const pruned = await iterativeMagnitudePruning(model, {
      rounds: 2,
      rewindTo,
      train: async (m, round) => {
        // At the start of each round: every weight is its rewind value, times its mask.
        const mask = prunedLayers(m)[0]!.getMasks()[0]!;
        const now = prunedLayers(m)[0]!.layer.getWeights()[0]!.dataSync();
        const then = rewindTo[0]!.dataSync();
        for (let i = 0; i < now.length; i++) expect(now[i]! + 0).toBe(mask[i] === 0 ? 0 : then[i]);
        expect(round).toBeGreaterThan(0);
        m.compile({ optimizer: 'adam', loss: 'meanSquaredError' });
        await m.fit(x, y, { epochs: 1, batchSize: 8, verbose: 0, callbacks: [updatePruningStep()] });
      },
      onRound: ({ sparsity }) => void sparsities.push(sparsity),
    });
    // 128 + 64 kernel weights: ceil(0.2 x 192) = 39 pruned, then ceil(0.2 x 153) = 31 more.
    expect(sparsities.map((s) => Math.round(s * 192))).toEqual([39, 70]);
    const zeros = prunedLayers(pruned).reduce((n, l) => n + zerosOf(l.layer.getWeights()[0]!), 0);
    expect(zeros).toBe(70);
    await expect(iterativeMagnitudePruning(mlp(), { rounds: 0, train: async () => {} })).rejects.toThrow(
      InvalidArgumentError,
    );
  });
});

describe('random pruning at init and sparse model soups', () => {
  it('draws fixed random masks at ERK densities that training keeps', async () => {
    const model = mlp(11);
    const pruned = pruneRandomAtInit(model, { sparsity: 0.7, seed: 3 });
    const [a, b] = prunedLayers(pruned);
    // ERK on [8, 16] and [16, 4]: densities proportional to 24/128 and 20/64.
    const zerosA = zerosOf(a!.layer.getWeights()[0]!);
    const zerosB = zerosOf(b!.layer.getWeights()[0]!);
    const [dA, dB] = erkDensities(
      [
        [8, 16],
        [16, 4],
      ],
      0.7,
    );
    expect(zerosA).toBe(Math.round(128 * (1 - dA!)));
    expect(zerosB).toBe(Math.round(64 * (1 - dB!)));
    expect(dB!).toBeGreaterThan(dA!);
    const before = a!.getMasks()[0]!;
    pruned.compile({ optimizer: 'adam', loss: 'meanSquaredError' });
    const { x, y } = data(16, 8, 4);
    await pruned.fit(x, y, { epochs: 2, batchSize: 8, verbose: 0, callbacks: [updatePruningStep()] });
    expect(Array.from(a!.getMasks()[0]!)).toEqual(Array.from(before));
    expect(zerosOf(a!.layer.getWeights()[0]!)).toBe(zerosA);
    const uniform = prunedLayers(pruneRandomAtInit(mlp(12), { sparsity: 0.5, distribution: 'uniform' }));
    expect(uniform.map((l) => zerosOf(l.layer.getWeights()[0]!))).toEqual([64, 32]);
  });

  it('averages ingredients retrained on one mask, cycle after cycle', async () => {
    const model = mlp(13);
    const { x, y } = data(32, 8, 4, 4);
    const cycles: Array<{ sparsity: number; ok: boolean }> = [];
    const soup = await sparseModelSoup(model, {
      build: () => mlp(99),
      cycles: 2,
      ingredients: 2,
      sparsity: 0.75,
      train: async (m, _cycle, i) => {
        m.compile({ optimizer: tf.train.adam(0.01 * (i + 1)), loss: 'meanSquaredError' });
        await m.fit(x, y, { epochs: 1, batchSize: 8, verbose: 0, callbacks: [updatePruningStep()] });
      },
      onCycle: ({ sparsity, soup: s, ingredients }) => {
        const mean = s.getWeights().every((w, j) => {
          const got = w.dataSync();
          const a = ingredients[0]![j]!.dataSync();
          const b = ingredients[1]![j]!.dataSync();
          return got.every((v, k) => Math.abs(v - (a[k]! + b[k]!) / 2) < 1e-6);
        });
        cycles.push({ sparsity, ok: mean });
      },
    });
    // Each cycle prunes 1 - 0.25^(1/2) = 50% of the remaining: 96 then 144 of 192 kernel weights.
    expect(cycles.map((c) => Math.round(c.sparsity * 192))).toEqual([96, 144]);
    expect(cycles.every((c) => c.ok)).toBe(true);
    const kernels = soup.layers.filter((l) => l.getWeights().length > 0).map((l) => l.getWeights()[0]!);
    expect(kernels.reduce((n, k) => n + zerosOf(k), 0)).toBe(144);
    await expect(
      sparseModelSoup(model, { build: () => mlp(), sparsity: 1, train: async () => {} }),
    ).rejects.toThrow(InvalidArgumentError);
  });
});

describe('dynamic N:M training (SR-STE, mask decay, structure decay)', () => {
  const single = (seed: number) =>
    tfl.sequential({
      layers: [
        tfl.layers.dense({
          units: 4,
          inputShape: [8],
          useBias: false,
          kernelInitializer: tfl.initializers.glorotUniform({ seed }),
        }),
      ],
    });
  const holds = (w: Float32Array | Uint8Array | Int32Array, n: number, m: number) => {
    // Dense kernel [8, 4]: groups of m consecutive inputs per output keep at most n nonzeros.
    for (let o = 0; o < 4; o++)
      for (let g = 0; g < 8; g += m) {
        let nz = 0;
        for (let i = g; i < g + m; i++) if (w[i * 4 + o] !== 0) nz++;
        if (nz > n) return false;
      }
    return true;
  };

  it('keeps the pruned weights in a shadow, recomputes the mask each step, and strips to exact N:M', async () => {
    const pruned = pruneLowMagnitude(single(1), { nm: [2, 4], nmTraining: { method: 'ste' } });
    pruned.compile({ optimizer: tf.train.sgd(0.5), loss: 'meanSquaredError' });
    const { x, y } = data(32, 8, 4, 6);
    const w = prunedLayers(pruned)[0]!;
    const masks: string[] = [];
    for (let e = 0; e < 4; e++) {
      await pruned.fit(x, y, { epochs: 1, batchSize: 8, verbose: 0, callbacks: [updatePruningStep()] });
      expect(holds(w.layer.getWeights()[0]!.dataSync() as Float32Array, 2, 4)).toBe(true);
      masks.push(Array.from(w.getMasks()[0]!).join(''));
      expect(w.denseWeights()[0]!.filter((v) => v === 0).length).toBe(0); // pruned weights keep values
    }
    expect(new Set(masks).size).toBeGreaterThan(1); // the mask moves with the dense weights
    const plain = stripPruning(pruned);
    const k = plain.layers[0]!.getWeights()[0]!.dataSync() as Float32Array;
    expect(k.filter((v) => v === 0).length).toBe(16);
    expect(holds(k, 2, 4)).toBe(true);
  });

  it('SR-STE decays only the pruned weights, by lr x lambda a step (SGD, zero task gradient)', async () => {
    const pruned = pruneLowMagnitude(single(2), {
      nm: [2, 4],
      nmTraining: { method: 'srste', lambda: 0.5, learningRate: 0.1 },
    });
    // A loss with no gradient: the only change is SR-STE's decay.
    pruned.compile({
      optimizer: tf.train.sgd(0.1),
      loss: (_y: tf.Tensor, p: tf.Tensor) => tf.mul(tf.sum(p), 0),
    });
    const { x, y } = data(8, 8, 4, 7);
    const w = prunedLayers(pruned)[0]!;
    await pruned.fit(x, y, { epochs: 1, batchSize: 8, verbose: 0, callbacks: [updatePruningStep()] });
    const mask = w.getMasks()[0]!;
    const before = w.denseWeights()[0]!;
    await pruned.fit(x, y, { epochs: 2, batchSize: 8, verbose: 0, callbacks: [updatePruningStep()] });
    const after = w.denseWeights()[0]!;
    for (let i = 0; i < before.length; i++)
      expect(after[i]!).toBeCloseTo(mask[i] === 1 ? before[i]! : before[i]! * (1 - 0.05) ** 2, 6);
    expect(() => pruneLowMagnitude(single(3), { nm: [2, 4], nmTraining: { method: 'srste' } })).toThrow(
      InvalidArgumentError,
    );
    expect(() => pruneLowMagnitude(single(3), { nmTraining: { method: 'ste' } })).toThrow(
      InvalidArgumentError,
    );
  });

  it('mask decay scales the pruned weights by beta(t); structure decay moves through N:M stages', async () => {
    const decayed = pruneLowMagnitude(single(4), {
      nm: [2, 4],
      nmTraining: { method: 'mask-decay', decay: 'linear', rate: 0.1 },
    });
    decayed.compile({ optimizer: tf.train.sgd(0), loss: 'meanSquaredError' });
    const { x, y } = data(8, 8, 4, 8);
    await decayed.fit(x, y, { epochs: 3, batchSize: 8, verbose: 0, callbacks: [updatePruningStep()] });
    const w = prunedLayers(decayed)[0]!;
    const forward = w.layer.getWeights()[0]!.dataSync();
    const dense = w.denseWeights()[0]!;
    const mask = w.getMasks()[0]!;
    for (let i = 0; i < dense.length; i++)
      expect(forward[i]!).toBeCloseTo(dense[i]! * (mask[i] === 1 ? 1 : 1 - 0.1 * 3), 6);

    const staged = pruneLowMagnitude(single(5), {
      nm: [3, 4],
      nmTraining: {
        method: 'ste',
        stages: [
          { fromStep: 3, n: 2, m: 4 },
          { fromStep: 5, n: 1, m: 4 },
        ],
      },
    });
    staged.compile({ optimizer: tf.train.sgd(0.01), loss: 'meanSquaredError' });
    const s = prunedLayers(staged)[0]!;
    const seen: number[] = [];
    for (let step = 1; step <= 6; step++) {
      await staged.fit(x, y, { epochs: 1, batchSize: 8, verbose: 0, callbacks: [updatePruningStep()] });
      seen.push(s.getMasks()[0]!.reduce((a, b) => a + b, 0));
    }
    expect(seen).toEqual([24, 24, 16, 16, 8, 8]);
  });
});
