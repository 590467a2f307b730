// Loading a task from disk: its YAML or JSON config (with lm-eval's `include` of a base config), and
// the documents of its splits from local files named by `dataset_kwargs.data_files` (relative to the
// config) or given by the caller, which override them.
import { existsSync, readFileSync, statSync } from 'node:fs';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { InvalidArgumentError, InvalidFormatError, IOError } from '@sparsekit/core';
import { parseTaskText, taskSplits, validateTaskConfig } from './config.js';
import { parseDocuments } from './dataset.js';
import type { LoadedTask } from './evaluate.js';

/** Data files larger than this are refused (read whole into memory). */
export const MAX_DATA_BYTES = 512 * 2 ** 20;
const MAX_CONFIG_BYTES = 2 ** 20;
const MAX_INCLUDES = 8;

export interface LoadTaskOptions {
  /** Split name -> local file (JSON Lines or a JSON array), overriding the config's data files. */
  dataFiles?: Record<string, string>;
}

function readText(path: string, limit: number, what: string): string {
  if (!existsSync(path)) throw new IOError(path, `no ${what} here`);
  const size = statSync(path).size;
  if (size > limit) throw new InvalidFormatError(what, `${path} is ${size} bytes; at most ${limit} are read`);
  try {
    return readFileSync(path, 'utf8');
  } catch (error) {
    throw new IOError(path, `cannot read the ${what}`, error);
  }
}

/** The config at `path` with its includes merged (the including file's fields win, as in lm-eval). */
function readConfig(path: string, depth = 0): Record<string, unknown> {
  if (depth > MAX_INCLUDES)
    throw new InvalidFormatError('task config', `${path}: includes nest deeper than ${MAX_INCLUDES}`);
  const raw = parseTaskText(readText(path, MAX_CONFIG_BYTES, 'task config'), path);
  const include = raw.include;
  if (include === undefined) return raw;
  if (typeof include !== 'string')
    throw new InvalidFormatError('task config', `${path}: include must be a file name`);
  const { include: _, ...own } = raw;
  const base = readConfig(isAbsolute(include) ? include : join(dirname(path), include), depth + 1);
  return { ...base, ...own };
}

/** Load a task config and its documents. */
export function loadTask(path: string, options: LoadTaskOptions = {}): LoadedTask {
  const configPath = resolve(path);
  const config = validateTaskConfig(readConfig(configPath));
  const { eval: evalSplit, fewshot } = taskSplits(config);
  const declared = config.dataset_kwargs?.data_files;
  const files: Record<string, string> = {};
  if (typeof declared === 'string') files[evalSplit] = declared;
  else if (declared !== undefined)
    for (const [split, f] of Object.entries(declared)) files[split] = Array.isArray(f) ? f[0]! : f;
  for (const key of Object.keys(files)) files[key] = resolve(dirname(configPath), files[key]!);
  for (const [split, f] of Object.entries(options.dataFiles ?? {})) files[split] = resolve(f);
  const fileOf = (split: string) => {
    const f = files[split];
    if (f !== undefined) return f;
    throw new InvalidArgumentError(
      'data files',
      split,
      `task ${config.task} reads split "${split}"${config.dataset_path === undefined ? '' : ` of ${config.dataset_path}`}, and nothing is downloaded: give it as a local file (JSON Lines), e.g. --data ${split}=FILE`,
    );
  };
  const evalFile = fileOf(evalSplit);
  const docs = parseDocuments(readText(evalFile, MAX_DATA_BYTES, 'task data'), evalFile);
  const fewshotFile = fewshot === undefined ? undefined : files[fewshot];
  const fewshotDocs =
    fewshotFile === undefined
      ? undefined
      : fewshotFile === evalFile
        ? docs
        : parseDocuments(readText(fewshotFile, MAX_DATA_BYTES, 'task data'), fewshotFile);
  return { config, docs, ...(fewshotDocs === undefined ? {} : { fewshotDocs }), original: docs.length };
}
