// Paths a client names (a model folder, a text file) resolve only inside an allow-listed root.
import { existsSync, realpathSync } from 'node:fs';
import { isAbsolute, relative, resolve, sep } from 'node:path';
import { SparsekitError } from '@sparsekit/core';

/** A client-given path that leaves its root (by `..`, an absolute path elsewhere, or a symlink). */
export class PathRefusedError extends SparsekitError {
  static override readonly code = 'server/path-refused';
  static override readonly hint = 'give a path inside the allowed root, without ".." or links that leave it';
  readonly path: string;

  constructor(path: string, reason: string) {
    super(PathRefusedError.code, `Refused path ${JSON.stringify(path)}: ${reason}.`);
    this.path = path;
  }
}

/**
 * `path` (relative to `root`, or absolute) as a real path inside `root`: symlinks are followed
 * before the check, so a link pointing out of the root is refused like `..` is. The path must exist.
 */
export function resolveInside(root: string, path: string): string {
  if (typeof path !== 'string' || path === '' || path.includes('\0'))
    throw new PathRefusedError(String(path), 'not a path');
  const realRoot = realpathSync(root);
  const candidate = isAbsolute(path) ? path : resolve(realRoot, path);
  if (!existsSync(candidate)) throw new PathRefusedError(path, 'it does not exist');
  const real = realpathSync(candidate);
  if (!isInside(realRoot, real)) throw new PathRefusedError(path, `it is outside ${realRoot}`);
  return real;
}

/** Whether `path` is `root` or below it (both resolved). */
export function isInside(root: string, path: string): boolean {
  const r = relative(root, path);
  return r === '' || (!r.startsWith(`..${sep}`) && r !== '..' && !isAbsolute(r));
}
