/**
 * The TensorFlow Model Optimization pruning tutorial (pruning_with_keras), reproduced on
 * tfjs-layers with @sparsekit/pruners/tfjs, and two more ways to prune the same model:
 *
 *   node tooling/mnist/dist/mnist-pruning.js [--dense-epochs 4] [--prune-epochs 2] [--imp-rounds 7]
 *     [--imp-epochs 1] [--train-images 60000] [--out tooling/mnist/results/mnist-pruning.json]
 *
 * The model: Reshape(28, 28, 1), Conv2D(12, 3x3, relu), MaxPooling2D(2), Flatten, Dense(10) logits;
 * Adam, softmax cross-entropy, validation split 0.1 (the last 6,000 training images), the rest
 * shuffled each epoch by a seeded permutation, initialisers seeded. Dense: `--dense-epochs` at batch 32. Then, each
 * from a copy of the trained dense model:
 *   - TFMOT's recipe: PolynomialDecay(0.5 -> 0.8, begin 0, end ceil(54000 / 128) x 2 = 844) for
 *     `--prune-epochs` at batch 128;
 *   - 2:4 (TFMOT's sparsity_m_by_n=(2, 4)) for `--prune-epochs` at batch 128;
 *   - IMP: `--imp-rounds` rounds of pruning 20% of the remaining kernel weights (global), rewinding
 *     to the weights after the first dense epoch, and retraining `--imp-epochs` at batch 128.
 * Sizes are gzip (level 9) of the saved model: model.json + the weights, as tfjs writes them
 * (dense float32), and as sparse weight shards (@sparsekit/sparse-formats/tfjs, bitmask or CSR,
 * f32 or f16). Sparsity is counted from the saved kernels.
 */
import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { gzipSync } from 'node:zlib';
import { markdownTable, numberOption, option } from '@sparsekit/bench';
import { loadTfjs, Rng } from '@sparsekit/core';
import { nmKeepMask, PolynomialDecay, zeroShare } from '@sparsekit/pruners';
import {
  iterativeMagnitudePruning,
  prunedLayers,
  pruneLowMagnitude,
  stripPruning,
  updatePruningStep,
} from '@sparsekit/pruners/tfjs';
import { encodeSparseModel } from '@sparsekit/sparse-formats/tfjs';
import type * as TF from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { loadMnist } from './mnist.js';

const SEED = 1234;
const root = join(import.meta.dirname ?? '.', '..', '..', '..');
const denseEpochs = numberOption('dense-epochs', 4);
const pruneEpochs = numberOption('prune-epochs', 2);
const impRounds = numberOption('imp-rounds', 7);
const impEpochs = numberOption('imp-epochs', 1);
const trainImages = numberOption('train-images', 60_000);
const outPath = resolve(option('out', join(root, 'tooling', 'mnist', 'results', 'mnist-pruning.json')));
const t0 = performance.now();
const say = (line: string) => console.error(`[${((performance.now() - t0) / 1000).toFixed(0)} s] ${line}`);

const { tf, backend } = await loadTfjs();
const data = loadMnist();
const n = Math.min(trainImages, data.train.count);
const xTrain = tf.tensor3d(data.train.images.subarray(0, n * 784), [n, 28, 28]);
const yTrain = tf.oneHot(tf.tensor1d(Int32Array.from(data.train.labels.subarray(0, n)), 'int32'), 10);
// The tutorial's validation split: the last 10% of the training images; the rest is shuffled by a
// seeded permutation each epoch (tfjs's own shuffle is not seedable).
const nTrain = Math.round(n * 0.9);
const xFit = tf.slice(xTrain, [0, 0, 0], [nTrain, 28, 28]);
const yFit = tf.slice(yTrain, [0, 0], [nTrain, 10]);
const validationData: [TF.Tensor, TF.Tensor] = [
  tf.slice(xTrain, [nTrain, 0, 0]),
  tf.slice(yTrain, [nTrain, 0]),
];
const order = new Rng(SEED);
const xTest = tf.tensor3d(data.test.images, [data.test.count, 28, 28]);
const yTest = tf.oneHot(tf.tensor1d(Int32Array.from(data.test.labels), 'int32'), 10);
say(
  `MNIST: ${n} training images (validation split 0.1), ${data.test.count} test images; tfjs backend ${backend}`,
);

function makeModel(): tfl.LayersModel {
  return tfl.sequential({
    layers: [
      tfl.layers.reshape({ targetShape: [28, 28, 1], inputShape: [28, 28] }),
      tfl.layers.conv2d({
        filters: 12,
        kernelSize: 3,
        activation: 'relu',
        kernelInitializer: tfl.initializers.glorotUniform({ seed: 1 }),
      }),
      tfl.layers.maxPooling2d({ poolSize: 2 }),
      tfl.layers.flatten(),
      tfl.layers.dense({ units: 10, kernelInitializer: tfl.initializers.glorotUniform({ seed: 2 }) }),
    ],
  });
}

const compile = (m: tfl.LayersModel) =>
  m.compile({
    optimizer: tf.train.adam(1e-3),
    loss: (y: TF.Tensor, logits: TF.Tensor) => tf.losses.softmaxCrossEntropy(y, logits),
    metrics: ['accuracy'],
  });

async function fit(
  m: tfl.LayersModel,
  epochs: number,
  batchSize: number,
  what: string,
  extra: tfl.Callback[] = [],
): Promise<void> {
  for (let epoch = 0; epoch < epochs; epoch++) {
    const perm = tf.tensor1d(order.permutation(nTrain), 'int32');
    const x = tf.gather(xFit, perm);
    const y = tf.gather(yFit, perm);
    const h = await m.fit(x, y, {
      epochs: 1,
      batchSize,
      shuffle: false,
      validationData,
      verbose: 0,
      callbacks: extra,
    });
    say(
      `${what} epoch ${epoch + 1}: loss ${Number(h.history.loss?.[0]).toFixed(4)}, val accuracy ${Number(h.history.val_acc?.[0]).toFixed(4)}`,
    );
    tf.dispose([perm, x, y]);
  }
}

function accuracy(m: tfl.LayersModel): number {
  return tf.tidy(() => {
    const logits = m.predict(xTest, { batchSize: 1000 }) as TF.Tensor;
    const right = tf.equal(tf.argMax(logits, 1), tf.argMax(yTest, 1));
    return tf.mean(tf.cast(right, 'float32')).dataSync()[0]!;
  });
}

async function artifactsOf(m: tfl.LayersModel): Promise<TF.io.ModelArtifacts> {
  let saved: TF.io.ModelArtifacts | undefined;
  await m.save(
    tf.io.withSaveHandler(async (a) => {
      saved = a;
      return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
    }),
  );
  return saved!;
}

const gz = (parts: Uint8Array[]) => gzipSync(Buffer.concat(parts), { level: 9 }).length;

/** Bytes of the model saved as tfjs does (model.json + weights.bin), and as sparse shards; sparsity of its kernels. */
async function measure(m: tfl.LayersModel) {
  const a = await artifactsOf(m);
  const json = new TextEncoder().encode(
    JSON.stringify({
      modelTopology: a.modelTopology,
      weightsManifest: [{ paths: ['weights.bin'], weights: a.weightSpecs }],
    }),
  );
  const weights = new Uint8Array(a.weightData as ArrayBuffer);
  const sparse32 = encodeSparseModel(a);
  const sparse16 = encodeSparseModel(a, { dtype: 'f16' });
  const sparseBytes = (s: typeof sparse32) =>
    gz([new TextEncoder().encode(JSON.stringify(s.modelJson)), s.shard]);
  const kernels = m.layers.flatMap((layer) =>
    layer
      .getWeights()
      .slice(0, 1)
      .filter((w) => w.rank >= 2)
      .map((w) => w.dataSync()),
  );
  return {
    sparsity: zeroShare(kernels),
    rawBytes: json.length + weights.length,
    gzipBytes: gz([json, weights]),
    sparseRawBytes: JSON.stringify(sparse32.modelJson).length + sparse32.shard.length,
    sparseGzipBytes: sparseBytes(sparse32),
    sparseF16GzipBytes: sparseBytes(sparse16),
  };
}

function copyOf(weights: TF.Tensor[]): tfl.LayersModel {
  const m = makeModel();
  m.setWeights(weights);
  return m;
}

interface Row {
  model: string;
  accuracy: number;
  sparsity: number;
  rawBytes: number;
  gzipBytes: number;
  sparseRawBytes: number;
  sparseGzipBytes: number;
  sparseF16GzipBytes: number;
  seconds: number;
}
const rows: Row[] = [];
const record = async (model: string, m: tfl.LayersModel, started: number) => {
  const row = {
    model,
    accuracy: accuracy(m),
    ...(await measure(m)),
    seconds: (performance.now() - started) / 1000,
  };
  rows.push(row);
  say(
    `${model}: accuracy ${row.accuracy.toFixed(4)}, sparsity ${(100 * row.sparsity).toFixed(1)}%, gzip ${row.gzipBytes} B, sparse gzip ${row.sparseGzipBytes} B`,
  );
};

// Dense, keeping the weights after the first epoch for IMP's rewinding.
let start = performance.now();
const dense = makeModel();
compile(dense);
await fit(dense, 1, 32, 'dense');
const rewindTo = dense.getWeights().map((t) => t.clone());
await fit(dense, denseEpochs - 1, 32, 'dense');
await record('dense', dense, start);
const trained = dense.getWeights().map((t) => t.clone());

// TFMOT's recipe.
start = performance.now();
const endStep = Math.ceil(nTrain / 128) * pruneEpochs;
const schedule = new PolynomialDecay(0.5, 0.8, 0, endStep);
const tfmot = pruneLowMagnitude(copyOf(trained), { pruningSchedule: schedule });
compile(tfmot);
await fit(tfmot, pruneEpochs, 128, 'PolynomialDecay 0.5 -> 0.8', [updatePruningStep()]);
const tfmotWrapped = await measure(tfmot);
const tfmotStripped = stripPruning(tfmot);
await record(`PolynomialDecay 0.5 -> 0.8 (end step ${endStep}), stripped`, tfmotStripped, start);

// 2:4 (Conv2D's 1 input channel is a group of 1, kept; the Dense kernel keeps 2 of every 4 inputs).
start = performance.now();
const nm = pruneLowMagnitude(copyOf(trained), { nm: [2, 4] });
compile(nm);
await fit(nm, pruneEpochs, 128, '2:4', [updatePruningStep()]);
const nmStripped = stripPruning(nm);
const denseKernel = nmStripped.layers.at(-1)!.getWeights()[0]!;
const keep = nmKeepMask(denseKernel.dataSync(), denseKernel.shape, 2, 4);
const nmOk = Array.from(denseKernel.dataSync()).every((v, i) => keep[i] === 1 || v === 0);
await record('2:4, stripped', nmStripped, start);

// IMP with rewinding to epoch 1.
start = performance.now();
const impRows: Array<{ round: number; sparsity: number; accuracy: number }> = [];
const imp = await iterativeMagnitudePruning(copyOf(trained), {
  rounds: impRounds,
  rewindTo,
  train: async (m, round) => {
    compile(m);
    await fit(m, impEpochs, 128, `IMP round ${round}`, [updatePruningStep()]);
  },
  onRound: ({ round, sparsity, model }) => {
    const acc = accuracy(model);
    impRows.push({ round, sparsity, accuracy: acc });
    say(`IMP round ${round}: sparsity ${(100 * sparsity).toFixed(1)}%, accuracy ${acc.toFixed(4)}`);
  },
});
await record(`IMP, ${impRounds} rounds of 20% (rewind to epoch 1)`, stripPruning(imp), start);

const result = {
  command: `node tooling/mnist/dist/mnist-pruning.js ${process.argv.slice(2).join(' ')}`.trim(),
  tfjsBackend: backend,
  trainImages: n,
  denseEpochs,
  pruneEpochs,
  endStep,
  tfmotWrappedGzipBytes: tfmotWrapped.gzipBytes,
  nmPatternHolds: nmOk,
  prunedLayers: prunedLayers(tfmot).map((l) => l.name),
  seconds: (performance.now() - t0) / 1000,
  rows,
  imp: impRows,
};
mkdirSync(dirname(outPath), { recursive: true });
writeFileSync(`${outPath}.tmp`, `${JSON.stringify(result, null, 1)}\n`);
renameSync(`${outPath}.tmp`, outPath);
const kb = (b: number) => `${(b / 1024).toFixed(1)} KiB`;
const table = markdownTable(
  [
    'model',
    'test accuracy',
    'kernel sparsity',
    'tfjs layout',
    'tfjs layout, gzip',
    'sparse shards f32',
    'sparse f32, gzip',
    'sparse f16, gzip',
  ],
  rows.map((r) => [
    r.model,
    r.accuracy.toFixed(4),
    `${(100 * r.sparsity).toFixed(1)}%`,
    kb(r.rawBytes),
    kb(r.gzipBytes),
    kb(r.sparseRawBytes),
    kb(r.sparseGzipBytes),
    kb(r.sparseF16GzipBytes),
  ]),
);
const impTable = markdownTable(
  ['IMP round', 'sparsity', 'test accuracy'],
  impRows.map((r) => [String(r.round), `${(100 * r.sparsity).toFixed(1)}%`, r.accuracy.toFixed(4)]),
);
const md = `# TFMOT's MNIST pruning anchor on tfjs-layers\n\n\`${result.command}\` (${result.seconds.toFixed(0)} s, tfjs ${backend})\n\n${table}\n\nThe pruned model before stripping (wrappers and masks saved): ${kb(tfmotWrapped.gzipBytes)} gzipped.\n\n${impTable}\n`;
const mdPath = outPath.replace(/\.json$/, '.md');
writeFileSync(`${mdPath}.tmp`, md);
renameSync(`${mdPath}.tmp`, mdPath);
console.log(md);
