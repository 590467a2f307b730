// Shared by the server's tests: a data folder with a copy of tiny-lm under its root, a server on it,
// and tar archives (good and hostile) built in memory.
import type { ChildProcess } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import tar from 'tar-stream';

export const TINY_LM = fileURLToPath(new URL('../../../packages/models/tiny-lm', import.meta.url));

// better-sqlite3 is an optional dependency: without it the server's tests are skipped, and with
// SPARSEKIT_REQUIRE_SQLITE=1 (CI) that is an error.
const loaded = await import('better-sqlite3').catch((error: Error) => error);
if (loaded instanceof Error && process.env.SPARSEKIT_REQUIRE_SQLITE === '1') throw loaded;
export const NO_SQLITE = loaded instanceof Error;

/** A fresh data folder whose root holds `models/tiny` (a copy of tiny-lm without its tasks). */
export function dataFolder(prefix = 'server-'): { dataDir: string; root: string } {
  const base = mkdtempSync(join(tmpdir(), prefix));
  const root = join(base, 'root');
  mkdirSync(join(root, 'models'), { recursive: true });
  for (const f of ['config.json', 'model.safetensors', 'tokenizer.json', 'calibration.txt', 'test.txt'])
    cpSync(join(TINY_LM, f), join(root, 'models', 'tiny', f));
  return { dataDir: join(base, 'data'), root };
}

export type Entry = {
  name: string;
  data?: Buffer;
  type?: 'file' | 'directory' | 'symlink' | 'link';
  linkname?: string;
};

/** A tar archive of `entries`. */
export async function tarOf(entries: readonly Entry[]): Promise<Buffer> {
  const pack = tar.pack();
  const chunks: Buffer[] = [];
  pack.on('data', (c) => {
    chunks.push(c as Buffer);
  });
  const ended = new Promise<void>((done) => pack.on('end', () => done()));
  for (const e of entries) {
    const type = e.type ?? 'file';
    await new Promise<void>((done, fail) =>
      pack.entry(
        { name: e.name, type, ...(e.linkname === undefined ? {} : { linkname: e.linkname }) },
        type === 'file' ? (e.data ?? Buffer.alloc(0)) : Buffer.alloc(0),
        (err) => (err ? fail(err) : done()),
      ),
    );
  }
  pack.finalize();
  await ended;
  return Buffer.concat(chunks);
}

/** The archive with its first header rewritten to declare `size` bytes (checksum fixed). */
export function declaring(archive: Buffer, size: number): Buffer {
  const out = Buffer.from(archive);
  out.write(`${size.toString(8).padStart(11, '0')}\0`, 124, 12, 'ascii');
  out.fill(' ', 148, 156);
  let sum = 0;
  for (let i = 0; i < 512; i++) sum += out[i]!;
  out.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 8, 'ascii');
  return out;
}

/** The base URL a `sparsekit-server` child prints once it listens (rejects if it exits first). */
export function serverAddress(child: ChildProcess): Promise<{ url: string; line: string }> {
  return new Promise((resolve, reject) => {
    let err = '';
    child.stderr!.on('data', (d: Buffer) => {
      err += String(d);
      const m = /sparsekit-server: (http:\/\/\S+)[^\n]*/.exec(err);
      if (m !== null) resolve({ url: m[1]!, line: m[0] });
    });
    child.on('exit', (code) => reject(new Error(`the server exited with ${code}: ${err}`)));
  });
}
