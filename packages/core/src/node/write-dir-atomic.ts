// Writing a whole folder atomically: a temporary sibling, fsync, rename into place, under a lock.
import { randomBytes } from 'node:crypto';
import {
  closeSync,
  fsyncSync,
  linkSync,
  lstatSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  realpathSync,
  renameSync,
  rmSync,
  type Stats,
  statSync,
  unlinkSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { hostname } from 'node:os';
import { basename, dirname, join, relative, resolve, sep } from 'node:path';
import { IOError, SparsekitError } from '../errors.js';

/** Another live process is writing the same folder. */
export class DirLockedError extends SparsekitError {
  static override readonly code = 'core/dir-locked';
  static override readonly hint =
    'another sparsekit process is writing this folder: wait for it, or choose another folder';
  readonly path: string;
  readonly pid: number;

  constructor(path: string, pid: number) {
    super(DirLockedError.code, `${path} is being written by process ${pid} (lock file ${lockPath(path)})`);
    this.path = path;
    this.pid = pid;
  }
}

/** The target may not be written: it holds files (without `replace`), or it holds a protected path. */
export class TargetRefusedError extends SparsekitError {
  static override readonly code = 'core/target-refused';
  readonly path: string;
  readonly reason: 'not-empty' | 'not-a-folder' | 'holds-protected';

  constructor(path: string, reason: TargetRefusedError['reason'], detail: string, hint: string) {
    super(TargetRefusedError.code, `Refusing to write ${path}: ${detail}`, { hint });
    this.path = path;
    this.reason = reason;
  }
}

/** The steps of a folder write, in order (reported to `onStep`, which tests use to kill the process). */
export const WRITE_DIR_STEPS = [
  'locked',
  'recovered',
  'temp-created',
  'written',
  'synced',
  'old-moved',
  'renamed',
  'old-removed',
] as const;
export type WriteDirStep = (typeof WRITE_DIR_STEPS)[number];

export interface WriteDirOptions {
  /** Replace a target that already holds files (the CLI's `--force`); default false. */
  replace?: boolean;
  /**
   * Paths that must survive: the target may be none of them and hold none of them (the input
   * model's folder, so `--out` one level above it cannot delete it).
   */
  protect?: readonly string[];
  /** Called after each step; for progress and for tests that kill the process part way. */
  onStep?: (step: WriteDirStep) => void;
  /**
   * Swap two paths in one atomic step (Linux renameat2 with RENAME_EXCHANGE, e.g. from
   * `@sparsekit/kernels-native`'s `pathExchange()`), returning false where the file system cannot.
   * With it, a replaced target is exchanged with the new folder at once, so no instant exists at
   * which the target is missing; without it (or when it returns false), two renames.
   */
  exchange?: (a: string, b: string) => boolean;
}

/** The lock file of a target folder: `.NAME.lock` beside it. */
export function lockPath(target: string): string {
  return join(dirname(resolve(target)), `.${basename(resolve(target))}.lock`);
}

/**
 * Write the folder `target` whole, or not at all. `write` fills a temporary sibling folder (created
 * with the umask's mode, like any new folder); its files and the folder are fsynced, and it is renamed
 * into place. Properties:
 * - a lock file per target (`.NAME.lock`, holding the writer's pid, linked into place whole so no
 *   contender reads it half-written): a second writer fails at once with `DirLockedError`; the lock
 *   of a dead process is taken over;
 * - a replaced target is moved aside only once the new folder is complete: in one atomic exchange
 *   when `exchange` is given and the file system has it, else by two renames that follow each other
 *   directly; if the process dies between those, the next write (or `recoverDir`) moves the old
 *   folder back, so the target is never lost;
 * - temporary and moved-aside folders of dead processes are removed by the next write;
 * - a failure, Ctrl-C or SIGTERM part way removes the temporary folder and leaves the target as it was;
 * - the target must not be, or hold, a path in `protect`, and one that holds files is replaced only
 *   with `replace: true`.
 */
export async function writeDirAtomic(
  target: string,
  write: (dir: string) => Promise<void>,
  options: WriteDirOptions = {},
): Promise<void> {
  const out = resolve(target);
  checkTarget(out, options);
  const step = options.onStep ?? (() => undefined);
  const parent = dirname(out);
  ioCall(out, 'Could not create the parent folder', () => mkdirSync(parent, { recursive: true }));
  const release = acquireLock(out);
  const tmp = join(parent, `.${basename(out)}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`);
  let tmpMade = false;
  const cleanup = () => {
    if (tmpMade) rmSync(tmp, { recursive: true, force: true });
    release();
  };
  const onSignal = (signal: NodeJS.Signals) => {
    cleanup();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    process.kill(process.pid, signal); // the default action, now that nothing is left behind
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    step('locked');
    recoverDir(out, { locked: true });
    checkTarget(out, options); // again, now that no one else writes it
    step('recovered');
    ioCall(out, 'Could not create a temporary folder', () => mkdirSync(tmp, { mode: 0o777 }));
    tmpMade = true;
    step('temp-created');
    await write(tmp);
    step('written');
    ioCall(out, 'Could not flush the new folder to disk', () => syncTree(tmp));
    step('synced');
    // A folder that appeared while writing (not possible under the lock, checked anyway) is not
    // replaced unless allowed.
    checkTarget(out, options);
    if (exists(out) && options.exchange !== undefined && exchanged(options.exchange, tmp, out)) {
      // The temporary path now holds the old folder; a writer killed here leaves only that
      // temporary, which the next write removes.
      syncDir(parent);
      step('renamed');
      rmSync(tmp, { recursive: true, force: true });
      tmpMade = false;
      step('old-removed');
    } else if (exists(out)) {
      const old = join(parent, `.${basename(out)}.old-${process.pid}-${randomBytes(4).toString('hex')}`);
      ioCall(out, 'Could not move the old folder aside', () => renameSync(out, old));
      step('old-moved');
      try {
        renameSync(tmp, out);
      } catch (error) {
        renameSync(old, out);
        throw new IOError(out, 'Could not move the new folder into place', error);
      }
      tmpMade = false;
      syncDir(parent);
      step('renamed');
      rmSync(old, { recursive: true, force: true });
      step('old-removed');
    } else {
      ioCall(out, 'Could not move the new folder into place', () => renameSync(tmp, out));
      tmpMade = false;
      syncDir(parent);
      step('renamed');
    }
  } catch (error) {
    cleanup();
    throw error;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
  release();
}

/** Exchange `a` and `b` with `exchange`; false when it cannot (a typed IOError on a failure). */
function exchanged(exchange: (a: string, b: string) => boolean, a: string, b: string): boolean {
  return ioCall(b, 'Could not exchange the new folder with the old one', () => exchange(a, b));
}

/**
 * Repair what a killed writer left beside `target`: a moved-aside old folder is moved back when the
 * target is missing (else removed), and temporary folders and locks of dead processes are removed.
 * Returns what it did. Without `locked`, it takes the target's lock itself.
 */
export function recoverDir(
  target: string,
  options: { locked?: boolean } = {},
): { restored: boolean; removed: string[] } {
  const out = resolve(target);
  const parent = dirname(out);
  const release = options.locked === true ? () => undefined : acquireLock(out);
  try {
    const removed: string[] = [];
    let restored = false;
    let entries: string[];
    try {
      entries = readdirSync(parent);
    } catch {
      return { restored, removed };
    }
    const prefix = `.${basename(out)}.`;
    const leftovers = entries
      .map((name) => ({ name, ...parseLeftover(name, prefix) }))
      .filter((e) => e.kind !== undefined && !alive(e.pid!));
    // A writer killed between its two renames left its old folder aside and its new one as a
    // temporary: that old folder goes back. One killed after both renames left only the old folder.
    for (const e of leftovers.filter((l) => l.kind === 'old')) {
      const path = join(parent, e.name);
      const swapCut = leftovers.some((l) => l.kind === 'tmp' && l.pid === e.pid);
      if (!restored && swapCut && !exists(out)) {
        renameSync(path, out);
        restored = true;
      } else {
        rmSync(path, { recursive: true, force: true });
        removed.push(path);
      }
    }
    for (const e of leftovers.filter((l) => l.kind === 'tmp' || l.kind === 'lock')) {
      const path = join(parent, e.name);
      rmSync(path, { recursive: true, force: true });
      removed.push(path);
    }
    return { restored, removed };
  } finally {
    release();
  }
}

function parseLeftover(name: string, prefix: string): { kind?: 'tmp' | 'old' | 'lock'; pid?: number } {
  if (!name.startsWith(prefix)) return {};
  const rest = name.slice(prefix.length);
  const m = /^(tmp|old)-(\d+)-[0-9a-f]{8}$/.exec(rest);
  if (m !== null) return { kind: m[1] as 'tmp' | 'old', pid: Number(m[2]) };
  // Drafts and moved-aside copies of the lock file, left by a process killed while taking it.
  const l = /^lock\.(?:new|stale)-(\d+)-[0-9a-f]{8}$/.exec(rest);
  return l === null ? {} : { kind: 'lock', pid: Number(l[1]) };
}

/**
 * The checks `writeDirAtomic` makes of its target, for callers that want to fail before long work:
 * not a file, not holding files (unless `replace`), not one of `protect` or a folder above one.
 */
export function checkDirTarget(
  target: string,
  options: Pick<WriteDirOptions, 'replace' | 'protect'> = {},
): void {
  checkTarget(resolve(target), options);
}

function checkTarget(out: string, options: WriteDirOptions): void {
  for (const p of options.protect ?? []) {
    const guarded = real(resolve(p));
    const t = real(out);
    const rel = relative(t, guarded); // '' or a path down from the target: the target holds it
    if (rel === '' || !(rel === '..' || rel.startsWith(`..${sep}`)))
      throw new TargetRefusedError(
        out,
        'holds-protected',
        rel === '' ? `it is ${p}` : `it holds ${p}, which would be deleted`,
        'write to a new folder beside the input, not to it or a folder above it',
      );
  }
  let stat: Stats;
  try {
    stat = statSync(out);
  } catch {
    return;
  }
  if (!stat.isDirectory())
    throw new TargetRefusedError(out, 'not-a-folder', 'it is a file, not a folder', 'choose a folder name');
  if (options.replace !== true && readdirSync(out).length > 0)
    throw new TargetRefusedError(
      out,
      'not-empty',
      'it is not empty',
      'choose a new folder, or replace it (the CLI: --force)',
    );
}

/** The real path of `p`, or of its nearest existing parent joined with the rest. */
function real(p: string): string {
  try {
    return realpathSync(p);
  } catch {
    const up = dirname(p);
    return up === p ? p : join(real(up), basename(p));
  }
}

/** Take the target's lock; returns its release. A lock left by a dead process is taken over. */
function acquireLock(out: string): () => void {
  const path = lockPath(out);
  for (let attempt = 0; attempt < 5; attempt++) {
    if (createLock(path)) {
      let held = true;
      return () => {
        if (!held) return;
        held = false;
        rmSync(path, { force: true });
      };
    }
    const pid = lockOwner(path);
    if (pid !== undefined && alive(pid)) throw new DirLockedError(out, pid);
    // Stale: move it aside (only one contender's rename succeeds), then try again. A contender that
    // judged the same stale lock a moment later may have moved a live one instead: it puts it back.
    const stale = `${path}.stale-${process.pid}-${randomBytes(4).toString('hex')}`;
    try {
      renameSync(path, stale);
    } catch {
      continue; // another process took it over first; the next attempt sees its lock
    }
    const moved = lockOwner(stale);
    if (moved !== undefined && moved !== pid && alive(moved)) {
      try {
        linkSync(stale, path);
      } catch {
        // A third writer took the name meanwhile; the final check before the rename still refuses
        // to replace a folder that another writer finished (without `replace`).
      }
      unlinkSync(stale);
      throw new DirLockedError(out, moved);
    }
    unlinkSync(stale);
  }
  throw new IOError(path, 'Could not take the lock file (it keeps changing hands)');
}

/**
 * Create the lock file whole, or report that one exists: its content is written to a private file
 * first and hard-linked into place (link fails if the name exists), so no reader ever sees a
 * half-written lock. File systems without hard links get an exclusive create and write instead.
 */
function createLock(path: string): boolean {
  const body = JSON.stringify({ pid: process.pid, host: hostname(), started: new Date().toISOString() });
  const draft = `${path}.new-${process.pid}-${randomBytes(4).toString('hex')}`;
  ioCall(path, 'Could not create the lock file', () => writeFileSync(draft, body, { mode: 0o644 }));
  try {
    linkSync(draft, path);
    return true;
  } catch (error) {
    const code = (error as { code?: string }).code;
    if (code === 'EEXIST') return false;
    if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'EOPNOTSUPP')
      throw new IOError(path, 'Could not create the lock file', error);
  } finally {
    rmSync(draft, { force: true });
  }
  try {
    const fd = openSync(path, 'wx', 0o644);
    writeSync(fd, body);
    closeSync(fd);
    return true;
  } catch (error) {
    if ((error as { code?: string }).code === 'EEXIST') return false;
    throw new IOError(path, 'Could not create the lock file', error);
  }
}

function lockOwner(path: string): number | undefined {
  try {
    const pid = (JSON.parse(readFileSync(path, 'utf8')) as { pid?: unknown }).pid;
    return typeof pid === 'number' && Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined; // unreadable: treated as stale (locks are linked into place whole)
  }
}

function alive(pid: number): boolean {
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as { code?: string }).code === 'EPERM';
  }
}

function exists(p: string): boolean {
  try {
    lstatSync(p);
    return true;
  } catch {
    return false;
  }
}

/** fsync every file and folder under `dir`, then `dir` itself. */
function syncTree(dir: string): void {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) syncTree(path);
    else if (entry.isFile()) syncFile(path);
  }
  syncDir(dir);
}

function syncFile(path: string): void {
  const fd = openSync(path, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

function syncDir(dir: string): void {
  try {
    syncFile(dir);
  } catch {
    // Some file systems refuse fsync on a folder; the rename is still atomic.
  }
}

function ioCall<T>(path: string, what: string, f: () => T): T {
  try {
    return f();
  } catch (error) {
    if (SparsekitError.isInstance(error)) throw error;
    throw new IOError(path, what, error);
  }
}
