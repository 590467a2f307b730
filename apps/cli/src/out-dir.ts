// Output folders: checked before any work starts, and written whole or not at all (core/node's
// writeDirAtomic: a temporary sibling, a lock per folder, cleanup of what killed runs left).
import { accessSync, constants, existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { checkDirTarget, TargetRefusedError, writeDirAtomic } from '@sparsekit/core/node';
import { pathExchange } from '@sparsekit/kernels-native';
import { type Flags, requireFlag, UsageError } from './args.js';
import { CliError } from './model-io.js';

/** An `--out` folder, checked, with what `writeDir` needs to write it safely. */
export interface OutDir {
  path: string;
  /** Replace a folder that holds files (`--force`). */
  replace: boolean;
  /** The input model's folder: --out may not be it or hold it. */
  protect: string[];
}

/**
 * The `--out` folder of a command, checked before anything is loaded: a name, not the model folder
 * nor a folder above it, not a file, empty or absent (a folder with files in it is replaced only
 * with `--force`), and inside a folder that can be written.
 */
export function outDirFlag(command: string, flags: Flags, model: string, what: string): OutDir {
  const raw = requireFlag(command, flags, 'out', what);
  if (raw.trim() === '') throw new UsageError('--out must name a folder', command);
  const out: OutDir = { path: resolve(raw), replace: flags.force === true, protect: [model] };
  try {
    checkDirTarget(out.path, out);
  } catch (error) {
    if (!TargetRefusedError.isInstance(error)) throw error;
    const reason = {
      'holds-protected': `--out must differ from --model and may not hold it (the original would be deleted): ${out.path}`,
      'not-a-folder': `--out ${out.path} is a file, not a folder`,
      'not-empty': `--out ${out.path} is not empty: choose a new folder, or pass --force to replace it`,
    }[error.reason];
    throw new UsageError(reason, command);
  }
  let parent = out.path;
  while (!existsSync(parent)) parent = resolve(parent, '..');
  if (parent === out.path) parent = resolve(parent, '..');
  // The temporary folder is made beside `out`: the nearest existing folder above it must be writable.
  try {
    accessSync(parent, constants.W_OK);
  } catch {
    throw new CliError(
      `cannot write ${out.path}: permission denied`,
      'choose an --out folder you can write to',
    );
  }
  return out;
}

/**
 * Write the `--out` folder whole: `write` fills a temporary folder that then takes its place, in one
 * atomic exchange where the native addon and the file system allow (Linux renameat2), else by two
 * renames that a later run repairs if the process dies between them.
 */
export function writeDir(out: OutDir, write: (dir: string) => Promise<void>): Promise<void> {
  const exchange = pathExchange();
  return writeDirAtomic(out.path, write, {
    replace: out.replace,
    protect: out.protect,
    ...(exchange === undefined ? {} : { exchange }),
  });
}
