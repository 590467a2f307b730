import { readFile, stat } from 'node:fs/promises';
import { isAbsolute, join } from 'node:path';
import {
  assertFinite,
  InvalidFormatError,
  IOError,
  isFloatDType,
  Tensor,
  UnsupportedDTypeError,
} from '@sparsekit/core';
import type { AnyBackend } from '@sparsekit/sparse-formats';
import { toDenseArray, valuesF32 } from '@sparsekit/sparse-formats';
import { SparseSafetensorsFile } from '@sparsekit/sparse-formats/node';
import { configFromHf, type ModelConfig, validateConfig } from '../config.js';
import { TransformerLM } from '../runtime/model.js';
import { backendRef } from '../runtime/steps.js';
import { HfTokenizer } from '../tokenizer.js';
import { paramsFromHf, type StoredLinear } from './names.js';

export interface LoadOptions {
  /**
   * What runs the products (default: the reference backend; pass a wasm backend for speed, or a
   * WebGPU backend and use the model's async methods).
   */
  backend?: AnyBackend;
  /** Read tokenizer.json (default true); false for work on the weights alone (inspection, conversion). */
  tokenizer?: boolean;
}

export interface LoadedModel {
  model: TransformerLM;
  config: ModelConfig;
  /** The folder's tokenizer.json, when it has one. */
  tokenizer: HfTokenizer | undefined;
  /** The raw config.json. */
  hfConfig: Record<string, unknown>;
}

/** Largest JSON file of a model folder read (the largest real tokenizer.json files are ~20 MB). */
const MAX_JSON_BYTES = 64 * 2 ** 20;

async function readJson(path: string): Promise<Record<string, unknown>> {
  let text: string;
  try {
    const size = (await stat(path)).size;
    if (size > MAX_JSON_BYTES)
      throw new InvalidFormatError(
        'json',
        `${path} is ${(size / 2 ** 20).toFixed(0)} MiB; a model folder's JSON files are read up to ${MAX_JSON_BYTES / 2 ** 20} MiB`,
      );
    text = await readFile(path, 'utf8');
  } catch (error) {
    if (InvalidFormatError.isInstance(error)) throw error;
    throw new IOError(path, 'cannot read the file (is this a Hugging Face model folder?)', error);
  }
  try {
    const value: unknown = JSON.parse(text);
    if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new Error('not an object');
    return value as Record<string, unknown>;
  } catch (error) {
    throw new InvalidFormatError('json', `${path} is not a JSON object (${String(error)})`);
  }
}

/**
 * Whether a file is at `path`, from its directory entry alone (never reading it: a weight file may be
 * many GiB). Something other than a regular file there is an error that names it, not "missing".
 */
async function exists(path: string): Promise<boolean> {
  let info: Awaited<ReturnType<typeof stat>>;
  try {
    info = await stat(path);
  } catch (error) {
    const code = (error as { code?: string }).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return false;
    if (code === 'ELOOP')
      throw new IOError(path, 'is a symbolic link that loops (it resolves to itself)', error);
    throw new IOError(path, `cannot be examined (${code ?? String(error)})`, error);
  }
  if (!info.isFile())
    throw new InvalidFormatError(
      'file',
      `${path} is ${info.isDirectory() ? 'a folder' : 'not a regular file'}; a file belongs there`,
    );
  return true;
}

/** The safetensors files of a folder: model.safetensors, or the shards its index names. */
async function weightFiles(dir: string): Promise<string[]> {
  const single = join(dir, 'model.safetensors');
  if (await exists(single)) return [single];
  const indexPath = join(dir, 'model.safetensors.index.json');
  if (!(await exists(indexPath))) {
    throw new IOError(dir, 'no model.safetensors or model.safetensors.index.json in the folder');
  }
  const index = await readJson(indexPath);
  const map = index.weight_map;
  if (typeof map !== 'object' || map === null) {
    throw new InvalidFormatError('json', `${indexPath} has no "weight_map" object`);
  }
  const files = new Set<string>();
  for (const [tensor, file] of Object.entries(map as Record<string, unknown>)) {
    // A shard is a plain file name inside the folder: no other folder, no parent, no absolute path.
    if (
      typeof file !== 'string' ||
      file === '' ||
      /[\\/]/.test(file) ||
      file === '.' ||
      file === '..' ||
      isAbsolute(file)
    )
      throw new InvalidFormatError(
        'json',
        `${indexPath} maps ${tensor} to ${JSON.stringify(file)}: shards must be file names inside the model folder`,
      );
    files.add(file);
  }
  return [...files].map((file) => join(dir, file));
}

/** No weights of blocks beyond the config's layer count (they would be dropped), from the names alone. */
function checkBlocks(names: Iterable<string>, config: ModelConfig): void {
  for (const name of names) {
    const block = /(?:^|\.)(?:layers|h)\.(\d+)\./.exec(name);
    if (block !== null && Number(block[1]) >= config.numLayers) {
      throw new InvalidFormatError(
        'checkpoint',
        `${name} belongs to block ${block[1]}, but config.json gives ${config.numLayers} layers: the config does not describe these weights`,
      );
    }
  }
}

/**
 * A tokenizer.json as a tokenizer, refused (typed) when it does not parse, is too large, names ids
 * the model lacks or holds a pattern that can backtrack exponentially (HfTokenizer's checks).
 */
function tokenizerFrom(
  json: Record<string, unknown>,
  config: ModelConfig,
  path: string,
  tokenizerConfig: Record<string, unknown> = {},
): HfTokenizer {
  try {
    return HfTokenizer.fromJson(json, config, tokenizerConfig, { name: path });
  } catch (error) {
    if (InvalidFormatError.isInstance(error))
      throw new InvalidFormatError(error.format, `${path}: ${error.reason}`);
    throw new InvalidFormatError(
      'tokenizer.json',
      `${path} is not a tokenizer this runtime reads (${(error as Error).message})`,
    );
  }
}

/**
 * Load a Hugging Face model folder (config.json, model.safetensors or sharded with
 * model.safetensors.index.json, tokenizer.json) for model types gpt2, opt and llama. f16 and bf16
 * weights are converted to f32. Folders written by `saveModel` with packed layers load too, each
 * layer in its saved format.
 */
export async function loadHfModel(dir: string, options: LoadOptions = {}): Promise<LoadedModel> {
  const hfConfig = await readJson(join(dir, 'config.json'));
  // The config is checked before any weight is read, so its mistakes are named as its own.
  const config = validateConfig(configFromHf(hfConfig));
  const files: SparseSafetensorsFile[] = [];
  let model: TransformerLM;
  try {
    for (const path of await weightFiles(dir)) files.push(await SparseSafetensorsFile.open(path));
    model = await modelFrom(files, config, options);
  } finally {
    await Promise.all(files.map((file) => file.close()));
  }
  model.source = { dir, config: hfConfig };
  const tokenizerPath = join(dir, 'tokenizer.json');
  const tokenizer =
    options.tokenizer !== false && (await exists(tokenizerPath))
      ? tokenizerFrom(
          await readJson(tokenizerPath),
          config,
          tokenizerPath,
          (await exists(join(dir, 'tokenizer_config.json')))
            ? await readJson(join(dir, 'tokenizer_config.json'))
            : {},
        )
      : undefined;
  return { model, config, tokenizer, hfConfig };
}

/**
 * The model of open weight files. Only their headers have been read: each tensor is read when the
 * architecture asks for it, so tensors it does not use (optimizer state, extra heads, buffers) are
 * never read at all. Every value read must be finite (a NaN in an embedding or a norm would
 * otherwise load, prune and save without a word).
 */
async function modelFrom(
  files: readonly SparseSafetensorsFile[],
  config: ModelConfig,
  options: LoadOptions,
): Promise<TransformerLM> {
  const tensors = new Map<string, SparseSafetensorsFile>();
  const densified = new Map<string, SparseSafetensorsFile>();
  const packed = new Map<string, { file: SparseSafetensorsFile; name: string }>();
  for (const file of files) {
    for (const name of file.tensorNames()) tensors.set(name, file);
    for (const name of file.matrixNames()) {
      // Runtime names (saveModel's packed layout) keep their format, as do Llama's Hugging Face names
      // (compressed-tensors files); other Hugging Face names are densified for the name mapping.
      const layer = name.replace(/\.weight$/, '');
      const runtime = config.family === 'llama' ? layer.replace(/^model\./, '') : layer;
      if (/^layers\.\d+\./.test(runtime)) packed.set(runtime, { file, name });
      else densified.set(name, file);
    }
  }
  checkBlocks([...tensors.keys(), ...densified.keys(), ...packed.keys()], config);
  /** A plain tensor as read; one of floats as f32 (converted from f16, bf16 or f64), checked finite. */
  const read = (name: string): Tensor | undefined => {
    const t = tensors.get(name)?.readTensorSync(name);
    if (t === undefined || !isFloatDType(t.dtype)) return t;
    const f32 = t.dtype === 'f32' ? t : t.astype('f32');
    assertFinite(f32.data as Float32Array, name);
    return f32;
  };
  const stored = new Map<string, StoredLinear>();
  for (const [layer, { file, name }] of packed) {
    const weight = await file.readMatrix(name);
    assertFinite(valuesF32(weight.values, weight.dtype), name);
    const bias = read(`${layer}.bias`) ?? read(`model.${layer}.bias`);
    if (bias === undefined) stored.set(layer, { weight });
    else
      stored.set(layer, {
        weight,
        bias: (bias.dtype === 'f32' ? bias : bias.astype('f32')).data as Float32Array,
      });
  }
  const source = {
    where: files.map((file) => file.path).join(', '),
    names: () => [...tensors.keys(), ...densified.keys()],
    get: (name: string) => {
      const matrixFile = densified.get(name);
      if (matrixFile !== undefined) {
        const m = matrixFile.readMatrixSync(name);
        assertFinite(valuesF32(m.values, m.dtype), name);
        return new Tensor('f32', [m.rows, m.cols], toDenseArray(m));
      }
      const t = read(name);
      if (t === undefined) return undefined;
      // Integer or boolean data where a weight is read would load as floats and run silently wrong.
      if (!isFloatDType(t.dtype))
        throw new UnsupportedDTypeError(t.dtype, ['f32', 'f16', 'bf16', 'f64'], `weight ${name}`);
      return t as Tensor<'f32'>;
    },
  };
  const backends = backendRef(options.backend);
  return new TransformerLM(config, paramsFromHf(config, source, backends, stored), backends);
}
