import { closeSync, ftruncateSync, openSync, readFileSync, writeSync } from 'node:fs';

/**
 * Copy the safetensors file `from` to `to` with one more tensor, `name`: `bytes` of U8 stored as a
 * file hole (the copy takes the disk space of `from` alone, however large `bytes` is).
 */
export function safetensorsWithHole(from: string, to: string, bytes: number, name = 'unused.padding'): void {
  const file = readFileSync(from);
  const n = Number(file.readBigUInt64LE(0));
  const header = JSON.parse(file.subarray(8, 8 + n).toString('utf8')) as Record<string, unknown>;
  const data = file.subarray(8 + n);
  header[name] = { dtype: 'U8', shape: [bytes], data_offsets: [data.length, data.length + bytes] };
  const json = Buffer.from(JSON.stringify(header));
  const padded = Buffer.concat([json, Buffer.alloc((8 - (json.length % 8)) % 8, 0x20)]);
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(BigInt(padded.length));
  const fd = openSync(to, 'w');
  try {
    writeSync(fd, Buffer.concat([prefix, padded, data]));
    ftruncateSync(fd, 8 + padded.length + data.length + bytes);
  } finally {
    closeSync(fd);
  }
}
