import { mkdir, readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
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
  /** A tokenizer.json to write into the folder (default: the one of the folder the model came from). */
  tokenizerJson?: string;
}

/** Files of a Hugging Face folder that describe the tokenizer and generation, copied on save. */
const COMPANION_FILES = [
  'tokenizer.json',
  'tokenizer_config.json',
  'special_tokens_map.json',
  'generation_config.json',
] as const;

/** Source config fields that describe weights no longer stored that way (the saved weights are f32). */
const DROPPED_FIELDS = ['quantization_config', 'compression_config', 'dtype'] as const;

/**
 * Write `model` to `dir` (config.json, model.safetensors, and the tokenizer and generation files of
 * the folder it was loaded from); each file atomically.
 */
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
  // Before anything is written: configToHf refuses what it cannot describe. The source config's other
  // fields (pad_token_id, transformers_version, ...) are kept; the runtime's own fields win.
  const source = { ...(model.source?.config ?? {}) };
  for (const field of DROPPED_FIELDS) delete source[field];
  const config = { ...source, ...configToHf(model.config) };
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
  // The companions of the source folder (unless saving over it, or given a tokenizer above).
  const from = model.source?.dir;
  if (from !== undefined && resolve(from) !== resolve(dir)) {
    for (const name of COMPANION_FILES) {
      if (name === 'tokenizer.json' && options.tokenizerJson !== undefined) continue;
      let text: string;
      try {
        text = await readFile(join(from, name), 'utf8');
      } catch {
        continue; // the source folder has no such file
      }
      await writeText(join(dir, name), text);
    }
  }
}

function writeText(path: string, text: string): Promise<void> {
  return writeFileAtomic(path, (file) => file.writeFile(text, 'utf8'));
}
