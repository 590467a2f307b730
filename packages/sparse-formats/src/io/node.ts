import type { Tensor, TensorEntry } from '@sparsekit/core';
import { SafetensorsError } from '@sparsekit/core';
import { SafetensorsFile, writeSafetensors } from '@sparsekit/core/node';
import type { SparseMatrix } from '../types.js';
import {
  type SparseFileContents,
  type SparseFileLayout,
  sparseFileLayout,
  sparseToTensorMap,
} from './codec.js';
import { matrixFromTensors, type StoredFormat, storedTensorNames } from './tensors.js';

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

/**
 * An open safetensors file of matrices (saveSparseSafetensors' formats, compressed-tensors'
 * sparse-bitmask) and plain tensors, read on demand: opening reads the header alone, and reading
 * a matrix or a tensor reads only its bytes.
 */
export class SparseSafetensorsFile {
  private constructor(
    private readonly file: SafetensorsFile,
    private readonly layout: SparseFileLayout,
  ) {}

  static async open(path: string): Promise<SparseSafetensorsFile> {
    const file = await SafetensorsFile.open(path);
    try {
      return new SparseSafetensorsFile(file, sparseFileLayout(file.names(), file.metadata));
    } catch (error) {
      await file.close();
      throw error;
    }
  }

  get path(): string {
    return this.file.path;
  }

  /** File metadata, without the entry Sparsekit uses for formats. */
  get metadata(): Readonly<Record<string, string>> {
    return this.layout.metadata;
  }

  matrixNames(): string[] {
    return Object.keys(this.layout.formats);
  }

  /** Tensors that belong to no matrix. */
  tensorNames(): string[] {
    return [...this.layout.tensorNames];
  }

  /** A tensor's dtype, shape and byte range, from the header. */
  entry(name: string): TensorEntry {
    return this.file.entry(name);
  }

  async readMatrix(name: string): Promise<SparseMatrix> {
    const parts = new Map<string, Tensor>();
    for (const key of this.partsOf(name)) parts.set(key, await this.file.read(key));
    return matrixFromTensors(this.stored(name), (key) => parts.get(key));
  }

  readMatrixSync(name: string): SparseMatrix {
    const parts = new Map<string, Tensor>();
    for (const key of this.partsOf(name)) parts.set(key, this.file.readSync(key));
    return matrixFromTensors(this.stored(name), (key) => parts.get(key));
  }

  readTensor(name: string): Promise<Tensor> {
    return this.file.read(name);
  }

  readTensorSync(name: string): Tensor {
    return this.file.readSync(name);
  }

  close(): Promise<void> {
    return this.file.close();
  }

  private stored(name: string): StoredFormat {
    const stored = Object.hasOwn(this.layout.formats, name) ? this.layout.formats[name] : undefined;
    if (stored === undefined)
      throw new SafetensorsError(`no matrix named '${name}' (the file has ${this.matrixNames().length})`, {
        file: this.path,
        tensor: name,
      });
    return stored;
  }

  /** The matrix's tensors that the file has (a missing one is named when the matrix is rebuilt). */
  private partsOf(name: string): string[] {
    return storedTensorNames(this.stored(name)).filter((key) => this.file.has(key));
  }
}

/** Read a safetensors file written by saveSparseSafetensors or by compressed-tensors (sparse-bitmask). */
export async function loadSparseSafetensors(path: string): Promise<SparseFileContents> {
  const file = await SparseSafetensorsFile.open(path);
  try {
    const matrices: Record<string, SparseMatrix> = Object.create(null); // a name may be __proto__
    for (const name of file.matrixNames()) matrices[name] = await file.readMatrix(name);
    const tensors: Record<string, Tensor> = Object.create(null); // a tensor may be named __proto__
    for (const name of file.tensorNames()) tensors[name] = await file.readTensor(name);
    return { matrices, tensors, metadata: { ...file.metadata } };
  } finally {
    await file.close();
  }
}
