// Activation shards as safetensors files in a folder: the disk side of `ActivationStore`.
import { randomBytes } from 'node:crypto';
import {
  closeSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import type { ShardSink } from '../activation-store.js';
import { IOError, SafetensorsError, SparsekitError } from '../errors.js';
import { decodeSafetensors, encodeSafetensors } from '../safetensors/codec.js';
import { Tensor } from '../tensor.js';

/**
 * Shards `activations-00000.safetensors`, ... in `dir` (created if missing), each one tensor
 * `activations` [rows, width] f32 with the width in its metadata. Written atomically (temporary file,
 * fsync, rename), so a killed process leaves whole shards or none.
 */
export function diskShards(dir: string, options: { prefix?: string } = {}): ShardSink {
  const prefix = options.prefix ?? 'activations';
  const path = (index: number) => join(dir, `${prefix}-${String(index).padStart(5, '0')}.safetensors`);
  return {
    write(index, rows, width) {
      const file = path(index);
      const temp = `${file}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
      let fd: number | undefined;
      try {
        mkdirSync(dir, { recursive: true });
        const bytes = encodeSafetensors(
          { activations: new Tensor('f32', [rows.length / width, width], rows) },
          { width: String(width) },
        );
        fd = openSync(temp, 'wx');
        for (let at = 0; at < bytes.length; )
          at += writeSync(fd, bytes, at, Math.min(bytes.length - at, 1 << 30), at);
        fsyncSync(fd);
        closeSync(fd);
        fd = undefined;
        renameSync(temp, file);
      } catch (error) {
        if (fd !== undefined) closeSync(fd);
        rmSync(temp, { force: true });
        if (SparsekitError.isInstance(error)) throw error;
        throw new IOError(file, `Could not write an activation shard: ${(error as Error).message}`, error);
      }
    },
    read(index) {
      const file = path(index);
      let bytes: Uint8Array;
      try {
        bytes = readFileSync(file);
      } catch (error) {
        throw new IOError(file, `Could not read an activation shard: ${(error as Error).message}`, error);
      }
      const t = decodeSafetensors(bytes).tensors.activations;
      if (t === undefined || t.dtype !== 'f32' || t.shape.length !== 2)
        throw new SafetensorsError('an activation shard holds one f32 tensor "activations" [rows, width]', {
          file,
        });
      return t.data as Float32Array;
    },
    clear() {
      let names: string[] = [];
      try {
        names = readdirSync(dir);
      } catch {
        return;
      }
      for (const name of names) {
        if (name.startsWith(`${prefix}-`) && name.includes('.safetensors'))
          rmSync(join(dir, name), { force: true });
      }
    },
  };
}
