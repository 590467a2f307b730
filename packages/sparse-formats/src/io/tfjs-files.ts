// Sparse tfjs model folders on disk: model.json + weights.sparse.safetensors, written atomically.
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { IOError } from '@sparsekit/core';
import { writeDirAtomic } from '@sparsekit/core/node';
import type * as TF from '@tensorflow/tfjs-core';
import {
  decodeSparseModel,
  encodeSparseModel,
  type SparseModelOptions,
  type SparseWeightReport,
} from './tfjs-model.js';

export interface SparseModelFilesOptions extends SparseModelOptions {
  /** Replace a folder that already holds a model (default true, as tfjs's own file handler). */
  replace?: boolean;
  /** Called after saving with each weight's format, sparsity and bytes. */
  onReport?: (report: SparseWeightReport[]) => void;
}

/**
 * An IOHandler for a sparse model folder: `model.save(sparseModelFiles(dir))` writes model.json
 * and the sparse shard (atomically: a temporary sibling renamed into place), and
 * `tf.loadLayersModel(sparseModelFiles(dir))` reads it back.
 */
export function sparseModelFiles(dir: string, options: SparseModelFilesOptions = {}): TF.io.IOHandler {
  return {
    save: async (artifacts) => {
      const { modelJson, shard, report } = encodeSparseModel(artifacts, options);
      const json = JSON.stringify(modelJson);
      await writeDirAtomic(
        dir,
        async (tmp) => {
          await writeFile(join(tmp, 'model.json'), json);
          await writeFile(join(tmp, modelJson.weightsManifest[0]!.paths[0]!), shard);
        },
        { replace: options.replace ?? true },
      );
      options.onReport?.(report);
      return {
        modelArtifactsInfo: {
          dateSaved: new Date(),
          modelTopologyType: 'JSON',
          modelTopologyBytes: json.length,
          weightSpecsBytes: JSON.stringify(modelJson.weightsManifest).length,
          weightDataBytes: shard.length,
        },
      };
    },
    load: async () => {
      const read = async (name: string) => {
        try {
          return await readFile(join(dir, name));
        } catch (error) {
          throw new IOError(join(dir, name), 'Could not read the sparse model file', error);
        }
      };
      const text = (await read('model.json')).toString('utf8');
      let json: { weightsManifest?: Array<{ paths?: string[] }> };
      try {
        json = JSON.parse(text);
      } catch (error) {
        throw new IOError(join(dir, 'model.json'), 'model.json is not JSON', error);
      }
      const shardName = json.weightsManifest?.[0]?.paths?.[0];
      if (
        typeof shardName !== 'string' ||
        shardName.includes('/') ||
        shardName.includes('\\') ||
        shardName.startsWith('.')
      )
        throw new IOError(join(dir, 'model.json'), 'model.json names no weight shard in this folder');
      const shard = await read(shardName);
      return decodeSparseModel(json, new Uint8Array(shard.buffer, shard.byteOffset, shard.byteLength));
    },
  };
}
