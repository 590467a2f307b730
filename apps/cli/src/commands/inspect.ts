import { pqIndex } from '@sparsekit/pruners';
import { byteSize, sparsity } from '@sparsekit/sparse-formats';
import { stringFlag } from '../args.js';
import type { Command } from '../command.js';
import { loadModel, modelDir } from '../model-io.js';
import { formatBytes, table } from '../ui.js';

export const inspectCommand: Command = {
  name: 'inspect',
  summary: 'per-layer shape, format, sparsity, bytes and PQ index of a model',
  help: `Usage: sparsekit inspect [--model DIR]

Lists every decoder linear layer: shape, storage format (dense, csr, nm, bitmask, ...), sparsity
counted from the stored values, bytes of its arrays, and the PQ Index (p = 1, q = 2; 0 = dense-like,
higher = more compressible).

Flags:
  --model DIR   Hugging Face folder (default: the bundled tiny-lm)
  --json        print the result as JSON

Examples:
  sparsekit inspect
  sparsekit inspect --model out/tiny-lm-2of4 --json`,
  flags: { model: { type: 'string' } },
  async run({ flags, ui }) {
    const dir = modelDir(stringFlag(flags, 'model'));
    const { model, config } = await loadModel(dir, undefined, { tokenizer: false });
    const layers = model.linearLayers().map((l) => {
      const m = l.matrix;
      return {
        name: l.name,
        shape: [l.outFeatures, l.inFeatures],
        format: m.format === 'nm' ? `${m.format} ${m.n}:${m.m}` : m.format,
        dtype: m.dtype,
        sparsity: sparsity(m),
        bytes: byteSize(m),
        pqIndex: pqIndex(l.getWeight().data),
      };
    });
    const weights = layers.reduce((s, l) => s + l.shape[0]! * l.shape[1]!, 0);
    const zeros = layers.reduce((s, l) => s + l.sparsity * l.shape[0]! * l.shape[1]!, 0);
    const bytes = layers.reduce((s, l) => s + l.bytes, 0);
    ui.say(
      `${dir}\n${config.family}, ${config.numLayers} blocks, hidden ${config.hiddenSize}, ${model.parameterCount().toLocaleString('en-US')} parameters\n`,
    );
    ui.say(
      table(
        ['layer', 'shape', 'format', 'sparsity', 'bytes', 'PQ index'],
        layers.map((l) => [
          l.name,
          l.shape.join('x'),
          `${l.format} ${l.dtype}`,
          `${(100 * l.sparsity).toFixed(1)}%`,
          formatBytes(l.bytes),
          l.pqIndex.toFixed(3),
        ]),
      ),
    );
    ui.say(
      `\ndecoder linear layers: ${(100 * (weights === 0 ? 0 : zeros / weights)).toFixed(1)}% sparse, ${formatBytes(bytes)} (dense f32: ${formatBytes(4 * weights)})`,
    );
    return {
      model: dir,
      family: config.family,
      parameters: model.parameterCount(),
      sparsity: weights === 0 ? 0 : zeros / weights,
      bytes,
      denseBytes: 4 * weights,
      layers,
    };
  },
};
