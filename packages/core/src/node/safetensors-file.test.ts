import { mkdtemp, open, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { IOError, SafetensorsError } from '../errors.js';
import { Tensor } from '../tensor.js';
import { readSafetensors, SafetensorsFile, writeSafetensors } from './safetensors-file.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'sparsekit-safetensors-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('safetensors files', () => {
  it('writes atomically and reads back every tensor and the metadata', async () => {
    const path = join(dir, 'model.safetensors');
    const w = Tensor.f32([1, 2, 3, 4], [2, 2]);
    await writeSafetensors(path, { w, b: Tensor.fromNumbers('bf16', [1.5]) }, { format: 'pt' });
    expect((await readdir(dir)).filter((f) => f.includes('.tmp-'))).toEqual([]);
    const { tensors, metadata } = await readSafetensors(path);
    expect(metadata).toEqual({ format: 'pt' });
    expect(tensors.w!.toArray()).toEqual([1, 2, 3, 4]);
    expect(tensors.b!.toArray()).toEqual([1.5]);
  });

  it('leaves the previous file untouched when a write fails', async () => {
    const path = join(dir, 'keep.safetensors');
    await writeSafetensors(path, { a: Tensor.f32([1]) });
    const before = await readFile(path);
    await expect(writeSafetensors(path, { __metadata__: Tensor.f32([2]) })).rejects.toThrow(/reserved/);
    expect(await readFile(path)).toEqual(before);
    expect((await readdir(dir)).filter((f) => f.includes('.tmp-'))).toEqual([]);
  });

  it('reads one tensor of a file over 2 GB without reading the rest', async () => {
    // A sparse file: 2^31 + 64 bytes of u8 data that never touch the disk, then a small f32 tensor.
    const bigBytes = 2 ** 31 + 64;
    const header = JSON.stringify({
      big: { dtype: 'U8', shape: [bigBytes], data_offsets: [0, bigBytes] },
      small: { dtype: 'F32', shape: [2], data_offsets: [bigBytes, bigBytes + 8] },
    });
    const path = join(dir, 'big.safetensors');
    const prefix = Buffer.alloc(8);
    prefix.writeBigUInt64LE(BigInt(header.length));
    const file = await open(path, 'w');
    await file.write(Buffer.concat([prefix, Buffer.from(header)]), 0, 8 + header.length, 0);
    await file.write(new Uint8Array(new Float32Array([3.5, -1]).buffer), 0, 8, 8 + header.length + bigBytes);
    await file.close();
    expect((await stat(path)).size).toBeGreaterThan(2 ** 31);

    const st = await SafetensorsFile.open(path);
    try {
      expect(st.names()).toEqual(['big', 'small']);
      expect(st.entry('big').shape).toEqual([bigBytes]);
      expect((await st.read('small')).toArray()).toEqual([3.5, -1]);
      await expect(st.read('nope')).rejects.toThrow(SafetensorsError);
    } finally {
      await st.close();
    }
  });

  it('reports a missing file and a corrupt file with typed errors', async () => {
    await expect(SafetensorsFile.open(join(dir, 'missing.safetensors'))).rejects.toThrow(IOError);
    const corrupt = join(dir, 'corrupt.safetensors');
    await writeFile(corrupt, Buffer.from('garbage!garbage'));
    const error = await SafetensorsFile.open(corrupt).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(SafetensorsError);
    expect((error as SafetensorsError).file).toBe(corrupt);
  });
});
