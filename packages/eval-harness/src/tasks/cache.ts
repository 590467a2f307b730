// A request cache on disk (lm-eval's --use_cache): the log-likelihood of every (context,
// continuation) computed for one model, so a rerun, or another task sharing requests, computes
// only what is new. The file names the model it belongs to and is refused for another.
import { existsSync, readFileSync, statSync } from 'node:fs';
import { InvalidArgumentError, InvalidFormatError, IOError } from '@sparsekit/core';
import { writeFileAtomic } from '@sparsekit/core/node';
import type { LoglikelihoodResult } from './requests.js';

const MAX_CACHE_BYTES = 1024 * 2 ** 20;

export interface RequestCache extends Map<string, LoglikelihoodResult> {
  /** Write the cache (atomically: a temporary file renamed into place). */
  save(): Promise<void>;
}

/**
 * The cache at `path` for the model `modelKey` (anything that changes when the model does: its
 * folder and its weight files' sizes and times, say); an empty one when the file does not exist.
 */
export function openRequestCache(path: string, modelKey: string): RequestCache {
  const cache = new Map<string, LoglikelihoodResult>() as RequestCache;
  if (existsSync(path)) {
    if (statSync(path).size > MAX_CACHE_BYTES)
      throw new InvalidFormatError('request cache', `${path} is larger than ${MAX_CACHE_BYTES} bytes`);
    let doc: { version?: unknown; model?: unknown; entries?: unknown };
    try {
      doc = JSON.parse(readFileSync(path, 'utf8'));
    } catch (error) {
      throw new InvalidFormatError(
        'request cache',
        `${path}: not JSON (${(error as Error).message}); delete it to start over`,
      );
    }
    if (doc.version !== 1 || !Array.isArray(doc.entries))
      throw new InvalidFormatError('request cache', `${path}: not a request cache of this harness`);
    if (doc.model !== modelKey)
      throw new InvalidArgumentError(
        'request cache',
        path,
        `holds the results of another model (${String(doc.model)}); give each model its own cache file`,
      );
    for (const e of doc.entries as unknown[]) {
      if (
        !Array.isArray(e) ||
        typeof e[0] !== 'string' ||
        typeof e[1] !== 'number' ||
        typeof e[2] !== 'boolean'
      )
        throw new InvalidFormatError(
          'request cache',
          `${path}: a damaged entry; delete the file to start over`,
        );
      cache.set(e[0], { loglikelihood: e[1], isGreedy: e[2] });
    }
  }
  cache.save = async () => {
    const entries = [...cache].map(([k, v]) => [k, v.loglikelihood, v.isGreedy]);
    try {
      await writeFileAtomic(path, (f) =>
        f.writeFile(`${JSON.stringify({ version: 1, model: modelKey, entries })}\n`, 'utf8'),
      );
    } catch (error) {
      throw new IOError(path, 'cannot write the request cache', error);
    }
  };
  return cache;
}
