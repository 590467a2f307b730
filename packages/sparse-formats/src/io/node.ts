import type { Tensor } from '@sparsekit/core';
import { readSafetensors, writeSafetensors } from '@sparsekit/core/node';
import type { SparseMatrix } from '../types.js';
import { type SparseFileContents, sparseFromTensorMap, sparseToTensorMap } from './codec.js';

/** Write matrices (and plain tensors) to a safetensors file, atomically. */
export async function saveSparseSafetensors(
  path: string,
  matrices: Readonly<Record<string, SparseMatrix>>,
  tensors: Readonly<Record<string, Tensor>> = {},
  metadata: Readonly<Record<string, string>> = {},
): Promise<void> {
  const laid = sparseToTensorMap(matrices, tensors, metadata);
  await writeSafetensors(path, laid.tensors, laid.metadata);
}

/** Read a safetensors file written by saveSparseSafetensors or by compressed-tensors (sparse-bitmask). */
export async function loadSparseSafetensors(path: string): Promise<SparseFileContents> {
  const { tensors, metadata } = await readSafetensors(path);
  return sparseFromTensorMap(tensors, metadata);
}
