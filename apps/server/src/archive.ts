// Model folders as tar streams: uploads are unpacked with limits (bytes, files) and every entry
// checked (no absolute paths, no "..", no links or devices), into a temporary folder that replaces
// the target only once the whole archive is in; downloads stream a folder's files as a tar.
import {
  createReadStream,
  createWriteStream,
  mkdirSync,
  readdirSync,
  renameSync,
  rmSync,
  statSync,
} from 'node:fs';
import { dirname, join, relative, sep } from 'node:path';
import { PassThrough, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { SparsekitError } from '@sparsekit/core';
import { writeDirAtomic } from '@sparsekit/core/node';
import tar from 'tar-stream';
import { isInside } from './paths.js';

export interface ArchiveLimits {
  /** Most bytes of file data (declared sizes are checked before any is read). */
  maxBytes: number;
  /** Most entries (files and folders). */
  maxEntries: number;
}

export type ArchiveRefusal = 'too-large' | 'too-many-entries' | 'unsafe-entry' | 'malformed' | 'not-a-model';

/** An upload that is refused: nothing of it is kept, and the target folder is as it was. */
export class ArchiveRefusedError extends SparsekitError {
  static override readonly code = 'server/archive-refused';
  readonly reason: ArchiveRefusal;

  constructor(reason: ArchiveRefusal, detail: string) {
    super(ArchiveRefusedError.code, `Archive refused (${reason}): ${detail}.`, {
      hint:
        reason === 'too-large' || reason === 'too-many-entries'
          ? 'upload a smaller folder, or raise the server limit'
          : 'upload a plain tar of the model folder (files and folders only, relative paths)',
    });
    this.reason = reason;
  }
}

/** An entry's name as a safe relative path ('' for the archive's root folder itself). */
export function entryPath(name: string): string {
  if (name.includes('\0') || name.includes('\\'))
    throw new ArchiveRefusedError('unsafe-entry', `name ${JSON.stringify(name)}`);
  if (name.startsWith('/'))
    throw new ArchiveRefusedError('unsafe-entry', `absolute path ${JSON.stringify(name)}`);
  const parts = name.split('/').filter((p) => p !== '' && p !== '.');
  if (parts.some((p) => p === '..'))
    throw new ArchiveRefusedError('unsafe-entry', `path ${JSON.stringify(name)} climbs out with ".."`);
  return parts.join('/');
}

/**
 * Unpack the tar `source` into `target` atomically. A single top-level folder is unwrapped, so both
 * `tar -C parent -c model` and `tar -C model -c .` give the folder's files at the top.
 */
export async function extractTar(
  source: Readable,
  target: string,
  limits: ArchiveLimits,
  options: { replace?: boolean; verify?: (dir: string) => void } = {},
): Promise<{ files: number; bytes: number }> {
  let files = 0;
  let bytes = 0;
  await writeDirAtomic(
    target,
    async (tmp) => {
      const staging = join(tmp, '.upload');
      mkdirSync(staging);
      const extract = tar.extract();
      let entries = 0;
      const unpack = (async () => {
        for await (const entry of extract) {
          const h = entry.header;
          if (++entries > limits.maxEntries)
            throw new ArchiveRefusedError('too-many-entries', `more than ${limits.maxEntries} entries`);
          const path = entryPath(h.name);
          const dest = join(staging, path);
          if (!isInside(staging, dest)) throw new ArchiveRefusedError('unsafe-entry', h.name);
          if (h.type === 'directory') {
            mkdirSync(dest, { recursive: true });
            entry.resume();
            continue;
          }
          if (h.type !== 'file' && h.type !== 'contiguous-file')
            throw new ArchiveRefusedError(
              'unsafe-entry',
              `${h.name} is a ${h.type}; only files and folders are taken`,
            );
          if (path === '') throw new ArchiveRefusedError('unsafe-entry', `a file entry without a name`);
          const size = h.size ?? 0;
          if (bytes + size > limits.maxBytes)
            throw new ArchiveRefusedError('too-large', `more than ${limits.maxBytes} bytes of files`);
          bytes += size;
          files++;
          mkdirSync(dirname(dest), { recursive: true });
          // 'wx': an entry named twice is refused rather than overwritten.
          await pipeline(entry, createWriteStream(dest, { flags: 'wx' })).catch(
            (error: NodeJS.ErrnoException) => {
              if (error.code === 'EEXIST' || error.code === 'EISDIR' || error.code === 'ENOTDIR')
                throw new ArchiveRefusedError(
                  'unsafe-entry',
                  `${h.name} is named twice or clashes with a folder`,
                );
              throw error;
            },
          );
        }
      })();
      const feed = pipeline(source, extract);
      try {
        await Promise.all([unpack, feed]);
      } catch (error) {
        source.destroy();
        extract.destroy();
        await Promise.allSettled([unpack, feed]);
        if (error instanceof ArchiveRefusedError) throw error;
        throw new ArchiveRefusedError('malformed', (error as Error).message);
      }
      // Unwrap one top-level folder, then move the files up into the folder being written.
      let top = staging;
      const names = readdirSync(staging);
      if (names.length === 1 && statSync(join(staging, names[0]!)).isDirectory())
        top = join(staging, names[0]!);
      for (const name of readdirSync(top)) renameSync(join(top, name), join(tmp, name));
      rmSync(staging, { recursive: true, force: true });
      options.verify?.(tmp); // throws to refuse the folder before it replaces anything
    },
    { replace: options.replace ?? false },
  );
  return { files, bytes };
}

/** Every file below `dir`, relative, sorted. */
function listFiles(dir: string, base = dir): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : 1))) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...listFiles(p, base));
    else if (e.isFile()) out.push(relative(base, p).split(sep).join('/'));
  }
  return out;
}

/** A tar stream of the files below `dir` (links and other special files are left out). */
export function packDir(dir: string, prefix = ''): Readable {
  const pack = tar.pack();
  const out = new PassThrough();
  (async () => {
    for (const name of listFiles(dir)) {
      const path = join(dir, name);
      const { size, mtime } = statSync(path);
      await new Promise<void>((done, fail) => {
        const entry = pack.entry(
          { name: prefix === '' ? name : `${prefix}/${name}`, size, mtime, mode: 0o644 },
          (e) => (e ? fail(e) : done()),
        );
        pipeline(createReadStream(path), entry).catch(fail);
      });
    }
    pack.finalize();
  })().catch((error) => pack.destroy(error));
  pipeline(pack, out).catch((error) => out.destroy(error));
  return out;
}
