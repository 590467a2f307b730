import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { InvalidArgumentError, Tensor } from '@sparsekit/core';
import { writeFileAtomic } from '@sparsekit/core/node';
import type { SparseMatrix } from '@sparsekit/sparse-formats';
import { saveSparseSafetensors } from '@sparsekit/sparse-formats/node';
import { configToHf } from '../config.js';
import { UnsupportedModelError } from '../errors.js';
import type { TransformerLM } from '../runtime/model.js';
import { paramsToHf } from './names.js';

export interface SaveOptions {
  /**
   * 'dense' (default): every weight dense f32 under the Hugging Face names, loadable by any HF tool.
   * 'packed': each decoder linear layer in the format it is held in (CSR, N:M, bitmask, ...), under
   * its runtime name; the rest under HF names. Both load with `loadHfModel`.
   */
  layout?: 'dense' | 'packed';
  /** A tokenizer.json to copy into the folder. */
  tokenizerJson?: string;
}

/** Write `model` to `dir` (config.json, model.safetensors, tokenizer.json); each file atomically. */
export async function saveModel(model: TransformerLM, dir: string, options: SaveOptions = {}): Promise<void> {
  const c = model.config;
  if (c.normWidth !== undefined && c.family !== 'llama') {
    throw new UnsupportedModelError(
      'saving folded norms',
      `${c.family} checkpoints have no weightless RMSNorm; only llama`,
    );
  }
  const widths = [
    { at: 'embeddings' } as const,
    ...model.params.blocks.flatMap((_, block) => [
      { at: 'attention', block } as const,
      { at: 'mlp', block } as const,
    ]),
  ].map((point) => model.streamWidth(point));
  widths.pop(); // the last block's output (the head's input) may keep another width
  if (widths.some((w) => w !== c.hiddenSize)) {
    throw new InvalidArgumentError(
      'model',
      'partially sliced',
      `every point of the residual stream must have one width to save (widths: ${widths.join(', ')})`,
    );
  }
  const config = configToHf(model.config); // before anything is written: it refuses what it cannot describe
  await mkdir(dir, { recursive: true });
  const packed = options.layout === 'packed';
  const tensors: Record<string, Tensor> = {};
  for (const [name, [shape, values]] of paramsToHf(model.config, model.params, { linears: !packed })) {
    tensors[name] = new Tensor('f32', shape, values);
  }
  const matrices: Record<string, SparseMatrix> = {};
  if (packed) {
    for (const layer of model.linearLayers()) {
      matrices[`${layer.name}.weight`] = layer.matrix;
      if (layer.bias !== undefined)
        tensors[`${layer.name}.bias`] = new Tensor('f32', [layer.outFeatures], layer.bias);
    }
  }
  await saveSparseSafetensors(join(dir, 'model.safetensors'), matrices, tensors, { format: 'pt' });
  await writeText(join(dir, 'config.json'), `${JSON.stringify(config, null, 2)}\n`);
  if (options.tokenizerJson !== undefined)
    await writeText(join(dir, 'tokenizer.json'), options.tokenizerJson);
}

function writeText(path: string, text: string): Promise<void> {
  return writeFileAtomic(path, (file) => file.writeFile(text, 'utf8'));
}
