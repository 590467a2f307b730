import { randomBytes } from 'node:crypto';
import { readSync } from 'node:fs';
import { type FileHandle, mkdir, open, rename, rm } from 'node:fs/promises';
import { dirname } from 'node:path';
import { IOError, SparsekitError } from '../errors.js';

/**
 * Write a file atomically: `write` fills a temporary file beside `path`, which is flushed to disk and
 * then renamed over `path`. On any failure the temporary file is removed and `path` is left untouched.
 */
export async function writeFileAtomic(
  path: string,
  write: (file: FileHandle) => Promise<void>,
): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  const temp = `${path}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
  let handle: FileHandle | undefined;
  try {
    handle = await open(temp, 'wx');
    await write(handle);
    await handle.sync();
    await handle.close();
    handle = undefined;
    await rename(temp, path);
  } catch (error) {
    await handle?.close().catch(() => undefined);
    await rm(temp, { force: true });
    if (SparsekitError.isInstance(error)) throw error;
    throw new IOError(path, `Could not write ${(error as Error).message}`, error);
  }
}

/** Write all of `bytes` at `position`, in chunks below the 2 GiB limit of one write call. */
export async function writeAllAt(file: FileHandle, bytes: Uint8Array, position: number): Promise<void> {
  const chunk = 1 << 30;
  for (let done = 0; done < bytes.length; ) {
    const piece = bytes.subarray(done, Math.min(bytes.length, done + chunk));
    const { bytesWritten } = await file.write(piece, 0, piece.length, position + done);
    done += bytesWritten;
  }
}

/** Read exactly `length` bytes at `position`, in chunks below the 2 GiB limit of one read call. */
export async function readExactlyAt(
  file: FileHandle,
  length: number,
  position: number,
  path: string,
): Promise<Uint8Array> {
  const out = new Uint8Array(length);
  const chunk = 1 << 30;
  for (let done = 0; done < length; ) {
    const want = Math.min(chunk, length - done);
    const { bytesRead } = await file.read(out, done, want, position + done);
    if (bytesRead === 0) throw new IOError(path, `Unexpected end of file after ${position + done} bytes`);
    done += bytesRead;
  }
  return out;
}

/** `readExactlyAt`, synchronously, on a file descriptor (for readers that cannot await). */
export function readExactlyAtSync(fd: number, length: number, position: number, path: string): Uint8Array {
  const out = new Uint8Array(length);
  const chunk = 1 << 30;
  for (let done = 0; done < length; ) {
    const want = Math.min(chunk, length - done);
    let bytesRead: number;
    try {
      bytesRead = readSync(fd, out, done, want, position + done);
    } catch (error) {
      throw new IOError(
        path,
        `Cannot read the file (${(error as NodeJS.ErrnoException).code ?? 'error'})`,
        error,
      );
    }
    if (bytesRead === 0) throw new IOError(path, `Unexpected end of file after ${position + done} bytes`);
    done += bytesRead;
  }
  return out;
}
