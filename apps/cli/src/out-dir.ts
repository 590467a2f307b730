// Output folders: checked before any work starts, and written whole or not at all.
import {
  accessSync,
  constants,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  renameSync,
  rmSync,
  statSync,
} from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { type Flags, requireFlag, UsageError } from './args.js';
import { CliError, samePath } from './model-io.js';

/**
 * The `--out` folder of a command, checked before anything is loaded: a name, not the model folder,
 * not a file, empty or absent (a folder with files in it is replaced only with `--force`), and
 * inside a folder that can be written.
 */
export function outDirFlag(command: string, flags: Flags, model: string, what: string): string {
  const raw = requireFlag(command, flags, 'out', what);
  if (raw.trim() === '') throw new UsageError('--out must name a folder', command);
  const out = resolve(raw);
  if (samePath(out, model))
    throw new UsageError('--out must differ from --model (the original would be overwritten)', command);
  if (existsSync(out)) {
    if (!statSync(out).isDirectory()) throw new UsageError(`--out ${out} is a file, not a folder`, command);
    if (readdirSync(out).length > 0 && flags.force !== true)
      throw new UsageError(
        `--out ${out} is not empty: choose a new folder, or pass --force to replace it`,
        command,
      );
  }
  let parent = dirname(out);
  while (!existsSync(parent)) parent = dirname(parent);
  // The temporary folder is made beside `out`: the nearest existing folder above it must be writable.
  try {
    accessSync(parent, constants.W_OK);
  } catch {
    throw new CliError(`cannot write ${out}: permission denied`, 'choose an --out folder you can write to');
  }
  return out;
}

/**
 * Write a folder whole: `write` fills a temporary sibling folder, which then takes the place of
 * `out` (replacing what was there). A failure, Ctrl-C or SIGTERM part way removes the temporary
 * folder and leaves `out` as it was.
 */
export async function writeDir(out: string, write: (dir: string) => Promise<void>): Promise<void> {
  mkdirSync(dirname(out), { recursive: true });
  const tmp = mkdtempSync(join(dirname(out), `.${basename(out)}.tmp-`));
  const cleanup = () => rmSync(tmp, { recursive: true, force: true });
  const onSignal = (signal: NodeJS.Signals) => {
    cleanup();
    process.exit(signal === 'SIGINT' ? 130 : 143);
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    await write(tmp);
    if (existsSync(out)) {
      const old = `${tmp}-old`;
      renameSync(out, old);
      try {
        renameSync(tmp, out);
      } catch (error) {
        renameSync(old, out);
        throw error;
      }
      rmSync(old, { recursive: true, force: true });
    } else renameSync(tmp, out);
  } catch (error) {
    cleanup();
    throw error;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}
