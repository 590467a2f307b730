import { constants } from 'node:buffer';
import { type FileHandle, open } from 'node:fs/promises';
import { IOError, SafetensorsError } from '../errors.js';
import { type SafetensorsContents, tensorFromBytes } from '../safetensors/codec.js';
import {
  parseHeader,
  parseHeaderLength,
  type SafetensorsHeader,
  type TensorEntry,
} from '../safetensors/header.js';
import { planLayout, type TensorMap, tensorBytes } from '../safetensors/layout.js';
import type { Tensor } from '../tensor.js';
import { readExactlyAt, readExactlyAtSync, writeAllAt, writeFileAtomic } from './atomic-write.js';

/**
 * An open safetensors file. Opening reads and validates only the header (at most MAX_HEADER_SIZE
 * bytes; every tensor's byte range must lie inside the file); `read(name)` and `readSync(name)` read
 * one tensor's bytes and nothing else. Offsets are plain numbers (exact to 2^53), so files over 2 GB
 * work. A tensor larger than one typed array can hold here is refused before anything is allocated.
 */
export class SafetensorsFile {
  readonly path: string;
  readonly header: SafetensorsHeader;
  private readonly handle: FileHandle;
  private readonly byName: Map<string, TensorEntry>;

  private constructor(path: string, handle: FileHandle, header: SafetensorsHeader) {
    this.path = path;
    this.handle = handle;
    this.header = header;
    this.byName = new Map(header.entries.map((entry) => [entry.name, entry]));
  }

  static async open(path: string): Promise<SafetensorsFile> {
    let handle: FileHandle;
    try {
      handle = await open(path, 'r');
    } catch (error) {
      throw new IOError(
        path,
        `Cannot open safetensors file (${(error as NodeJS.ErrnoException).code ?? 'error'})`,
        error,
      );
    }
    try {
      const { size } = await handle.stat();
      const prefix = size >= 8 ? await readExactlyAt(handle, 8, 0, path) : new Uint8Array(0);
      const n = parseHeaderLength(prefix, size, path);
      const headerBytes = await readExactlyAt(handle, n, 8, path);
      const header = parseHeader(headerBytes, size - 8 - n, path);
      return new SafetensorsFile(path, handle, header);
    } catch (error) {
      await handle.close();
      throw error;
    }
  }

  get metadata(): Readonly<Record<string, string>> {
    return this.header.metadata;
  }

  names(): string[] {
    return this.header.entries.map((entry) => entry.name);
  }

  has(name: string): boolean {
    return this.byName.has(name);
  }

  entry(name: string): TensorEntry {
    const entry = this.byName.get(name);
    if (entry === undefined) {
      throw new SafetensorsError(`no tensor named '${name}' (the file has ${this.byName.size})`, {
        file: this.path,
        tensor: name,
      });
    }
    return entry;
  }

  /** Read one tensor, touching only its bytes. */
  async read(name: string): Promise<Tensor> {
    const entry = this.entry(name);
    const length = this.checkLength(entry);
    try {
      const bytes = await readExactlyAt(this.handle, length, this.header.dataOffset + entry.begin, this.path);
      return tensorFromBytes(entry, bytes, { copy: false });
    } catch (error) {
      throw this.allocationError(entry, error);
    }
  }

  /** `read`, synchronously (for sources that cannot await, such as a model loader's tensor lookups). */
  readSync(name: string): Tensor {
    const entry = this.entry(name);
    const length = this.checkLength(entry);
    try {
      const bytes = readExactlyAtSync(
        this.handle.fd,
        length,
        this.header.dataOffset + entry.begin,
        this.path,
      );
      return tensorFromBytes(entry, bytes, { copy: false });
    } catch (error) {
      throw this.allocationError(entry, error);
    }
  }

  /** The tensor's byte length, refused when no typed array can hold it. */
  private checkLength(entry: TensorEntry): number {
    const length = entry.end - entry.begin;
    if (length > constants.MAX_LENGTH)
      throw new SafetensorsError(
        `the tensor is ${length} bytes, more than the ${constants.MAX_LENGTH} bytes one array can hold in this runtime`,
        { file: this.path, tensor: entry.name },
      );
    return length;
  }

  /** An allocation failure (RangeError) as a SafetensorsError naming the tensor; other errors as they are. */
  private allocationError(entry: TensorEntry, error: unknown): unknown {
    if (!(error instanceof RangeError)) return error;
    return new SafetensorsError(
      `cannot allocate the tensor's ${entry.end - entry.begin} bytes (${error.message})`,
      { file: this.path, tensor: entry.name },
    );
  }

  async close(): Promise<void> {
    await this.handle.close();
  }
}

/** Read every tensor and the metadata of a safetensors file. */
export async function readSafetensors(path: string): Promise<SafetensorsContents> {
  const file = await SafetensorsFile.open(path);
  try {
    const tensors: Record<string, Tensor> = Object.create(null); // a tensor may be named __proto__
    for (const name of file.names()) tensors[name] = await file.read(name);
    return { tensors, metadata: { ...file.metadata } };
  } finally {
    await file.close();
  }
}

/** Write tensors to a safetensors file atomically (temporary file, then rename), streaming each tensor. */
export async function writeSafetensors(
  path: string,
  tensors: TensorMap,
  metadata: Readonly<Record<string, string>> = {},
): Promise<void> {
  const layout = planLayout(tensors, metadata);
  await writeFileAtomic(path, async (file) => {
    await writeAllAt(file, layout.head, 0);
    for (const item of layout.tensors) {
      await writeAllAt(file, tensorBytes(item.tensor), layout.head.length + item.begin);
    }
  });
}
