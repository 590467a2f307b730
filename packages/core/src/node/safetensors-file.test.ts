import { mkdtemp, open, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { bytesReadByProcess } from '@sparsekit/test-utils';
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

    const before = bytesReadByProcess();
    const st = await SafetensorsFile.open(path);
    try {
      expect(st.names()).toEqual(['big', 'small']);
      expect(st.entry('big').shape).toEqual([bigBytes]);
      expect((await st.read('small')).toArray()).toEqual([3.5, -1]);
      expect(st.readSync('small').toArray()).toEqual([3.5, -1]);
      await expect(st.read('nope')).rejects.toThrow(SafetensorsError);
      expect(() => st.readSync('nope')).toThrow(SafetensorsError);
    } finally {
      await st.close();
    }
    // The header and 2 x 8 bytes, not the 2 GiB before them (the counter is Linux's).
    const after = bytesReadByProcess();
    if (before !== undefined && after !== undefined) expect(after - before).toBeLessThan(2 ** 20);
  });

  /** A file whose header declares `entries` (name -> [dtype, shape, bytes]) back to back, `size` bytes long. */
  async function declared(name: string, entries: Record<string, [string, number[], number]>, size?: number) {
    const header: Record<string, unknown> = {};
    let offset = 0;
    for (const [tensor, [dtype, shape, bytes]] of Object.entries(entries)) {
      header[tensor] = { dtype, shape, data_offsets: [offset, offset + bytes] };
      offset += bytes;
    }
    const json = JSON.stringify(header);
    const prefix = Buffer.alloc(8);
    prefix.writeBigUInt64LE(BigInt(json.length));
    const path = join(dir, name);
    const file = await open(path, 'w');
    await file.write(Buffer.concat([prefix, Buffer.from(json)]));
    if (size !== undefined) await file.truncate(size);
    await file.close();
    return { path, dataOffset: 8 + json.length, dataBytes: offset };
  }

  it('refuses a tensor declared larger than the file, before allocating anything', async () => {
    const { path } = await declared('short.safetensors', { huge: ['F32', [25e9], 100e9] }, 4096);
    const error = await SafetensorsFile.open(path).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(SafetensorsError);
    expect((error as SafetensorsError).tensor).toBe('huge');
    expect((error as SafetensorsError).reason).toMatch(/run past the \d+-byte data buffer/);
  });

  it.skipIf(process.platform === 'win32')(
    'refuses a 100 GB tensor that the (sparse) file does hold with a SafetensorsError, not a RangeError',
    async () => {
      const layout = {
        small: ['F32', [2], 8] as [string, number[], number],
        huge: ['U8', [100e9], 100e9] as [string, number[], number],
      };
      const probe = await declared('huge.safetensors', layout);
      await declared('huge.safetensors', layout, probe.dataOffset + probe.dataBytes);
      const st = await SafetensorsFile.open(probe.path);
      try {
        expect(st.readSync('small').toArray()).toEqual([0, 0]);
        for (const read of [() => st.readSync('huge'), () => st.read('huge')]) {
          const error = await Promise.resolve()
            .then(read)
            .catch((e: unknown) => e);
          expect(error).toBeInstanceOf(SafetensorsError);
          expect((error as SafetensorsError).reason).toMatch(
            /100000000000 bytes, more than the \d+ bytes one array/,
          );
        }
      } finally {
        await st.close();
      }
    },
  );

  it('reports a missing file and a corrupt file with typed errors', async () => {
    await expect(SafetensorsFile.open(join(dir, 'missing.safetensors'))).rejects.toThrow(IOError);
    const corrupt = join(dir, 'corrupt.safetensors');
    await writeFile(corrupt, Buffer.from('garbage!garbage'));
    const error = await SafetensorsFile.open(corrupt).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(SafetensorsError);
    expect((error as SafetensorsError).file).toBe(corrupt);
  });
});
