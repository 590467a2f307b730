import { spawn } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  renameSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import {
  DirLockedError,
  lockPath,
  recoverDir,
  TargetRefusedError,
  WRITE_DIR_STEPS,
  type WriteDirStep,
  writeDirAtomic,
} from './write-dir-atomic.js';

const BUILT = fileURLToPath(new URL('../../dist/node.js', import.meta.url));

function scratch(): string {
  return mkdtempSync(join(tmpdir(), 'write-dir-'));
}

/** A model-like folder: a small file and a larger one, both with the version's text. */
async function fill(dir: string, version: string): Promise<void> {
  await writeFile(join(dir, 'config.json'), version);
  await writeFile(join(dir, 'weights.bin'), version.repeat(200_000));
}

function version(dir: string): string {
  const v = readFileSync(join(dir, 'config.json'), 'utf8');
  expect(readFileSync(join(dir, 'weights.bin'), 'utf8')).toBe(v.repeat(200_000)); // whole, not torn
  return v;
}

/** Entries beside the target that a write leaves behind (temporary, old or lock). */
function leftovers(parent: string): string[] {
  return readdirSync(parent).filter((n) => n.startsWith('.'));
}

/** Run a write of version `next` in a child process that kills itself (SIGKILL) after `killAt`. */
function childWrite(
  target: string,
  next: string,
  options: { killAt?: WriteDirStep; holdMs?: number; keep?: boolean; startAt?: number } = {},
): Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string }> {
  const script = `
    import { writeDirAtomic } from ${JSON.stringify(BUILT)};
    import { writeFile } from 'node:fs/promises';
    import { join } from 'node:path';
    const [target, next, killAt, holdMs, keep, startAt] = process.argv.slice(1);
    while (Date.now() < Number(startAt)) {} // contenders start together
    try {
      await writeDirAtomic(target, async (dir) => {
        await writeFile(join(dir, 'config.json'), next);
        await writeFile(join(dir, 'weights.bin'), next.repeat(200000));
        if (Number(holdMs) > 0) await new Promise((r) => setTimeout(r, Number(holdMs)));
      }, { replace: keep !== 'keep', onStep: (s) => { if (s === killAt) process.kill(process.pid, 'SIGKILL'); } });
      console.log('wrote');
    } catch (e) { console.log(e.code ?? e.message); process.exitCode = 3; }`;
  return new Promise((done, fail) => {
    const child = spawn(
      process.execPath,
      [
        '--input-type=module',
        '-e',
        script,
        target,
        next,
        options.killAt ?? '',
        String(options.holdMs ?? 0),
        options.keep === true ? 'keep' : '',
        String(options.startAt ?? 0),
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    let stdout = '';
    child.stdout.on('data', (d) => {
      stdout += d;
    });
    child.on('error', fail);
    child.on('exit', (code, signal) => done({ code, signal, stdout: stdout.trim() }));
  });
}

describe('writeDirAtomic', () => {
  it('writes a new folder whole, with the mode a plain mkdir gives', async () => {
    const parent = scratch();
    const out = join(parent, 'model');
    await writeDirAtomic(out, (dir) => fill(dir, 'v1'));
    expect(version(out)).toBe('v1');
    mkdirSync(join(parent, 'plain'));
    expect(statSync(out).mode & 0o777).toBe(statSync(join(parent, 'plain')).mode & 0o777);
    expect(leftovers(parent)).toEqual([]);
  });

  it('refuses a non-empty target without replace, a file, and a folder holding a protected path', async () => {
    const parent = scratch();
    const out = join(parent, 'out');
    await writeDirAtomic(out, (dir) => fill(dir, 'v1'));
    await expect(writeDirAtomic(out, (dir) => fill(dir, 'v2'))).rejects.toMatchObject({
      code: 'core/target-refused',
      reason: 'not-empty',
    });
    writeFileSync(join(parent, 'file'), 'x');
    await expect(writeDirAtomic(join(parent, 'file'), async () => undefined)).rejects.toMatchObject({
      reason: 'not-a-folder',
    });
    // --out one level above the input model must not delete it; --out = the model either.
    const model = join(out, 'sub', 'model');
    for (const target of [parent, out, model]) {
      const error = await writeDirAtomic(target, async () => undefined, {
        replace: true,
        protect: [model],
      }).catch((e: unknown) => e);
      expect(TargetRefusedError.isInstance(error)).toBe(true);
      expect(error).toMatchObject({ reason: 'holds-protected' });
    }
    expect(version(out)).toBe('v1');
    // A sibling of the protected folder is fine.
    await writeDirAtomic(join(parent, 'beside'), (dir) => fill(dir, 'v3'), { protect: [out] });
    expect(version(join(parent, 'beside'))).toBe('v3');
  });

  it('a failing write leaves the target as it was and no temporary folder', async () => {
    const parent = scratch();
    const out = join(parent, 'out');
    await writeDirAtomic(out, (dir) => fill(dir, 'v1'));
    await expect(
      writeDirAtomic(
        out,
        async (dir) => {
          await fill(dir, 'v2');
          throw new Error('disk on fire');
        },
        { replace: true },
      ),
    ).rejects.toThrow('disk on fire');
    expect(version(out)).toBe('v1');
    expect(leftovers(parent)).toEqual([]);
  });

  it('a second writer to the same folder fails at once while the first holds the lock', async () => {
    const parent = scratch();
    const out = join(parent, 'out');
    // The first writer holds the lock until `finish`, whenever its own writing is done (a loaded
    // machine may still be writing when the second writer is refused).
    let finish: () => void = () => undefined;
    const held = new Promise<void>((r) => (finish = r));
    const first = writeDirAtomic(out, (dir) => fill(dir, 'v1').then(() => held));
    await new Promise((r) => setTimeout(r, 20));
    expect(existsSync(lockPath(out))).toBe(true);
    const error = await writeDirAtomic(out, (dir) => fill(dir, 'v2'), { replace: true }).catch(
      (e: unknown) => e,
    );
    expect(DirLockedError.isInstance(error)).toBe(true);
    expect(error).toMatchObject({ pid: process.pid });
    finish();
    await first;
    expect(version(out)).toBe('v1');
    expect(leftovers(parent)).toEqual([]);
  });

  it('two processes writing one folder at once: one writes, the other is refused (no silent loss)', async () => {
    const parent = scratch();
    const out = join(parent, 'out');
    const results = await Promise.all([
      childWrite(out, 'a', { holdMs: 400 }),
      childWrite(out, 'b', { holdMs: 400 }),
    ]);
    const outputs = results.map((r) => r.stdout).sort();
    expect(outputs).toEqual(['core/dir-locked', 'wrote']);
    const winner = results.findIndex((r) => r.stdout === 'wrote');
    expect(version(out)).toBe(winner === 0 ? 'a' : 'b');
    expect(leftovers(parent)).toEqual([]);
  });

  it('eight processes racing for one new folder: exactly one writes, each other is refused', async () => {
    // Contenders read the lock while its owner creates it: the lock must never look half-written
    // (and so stale) to them, or two would write and the second replace the first.
    const parent = scratch();
    const out = join(parent, 'out');
    const names = ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h'];
    const startAt = Date.now() + 1500;
    const results = await Promise.all(names.map((n) => childWrite(out, n, { keep: true, startAt })));
    const wrote = results.filter((r) => r.stdout === 'wrote');
    expect(wrote, results.map((r) => r.stdout).join(' ')).toHaveLength(1);
    for (const r of results.filter((x) => x.stdout !== 'wrote'))
      expect(['core/dir-locked', 'core/target-refused']).toContain(r.stdout);
    expect(version(out)).toBe(names[results.indexOf(wrote[0]!)]);
    expect(leftovers(parent)).toEqual([]);
  });

  it('killed (SIGKILL) after every step of a replacement: the target survives, the next write cleans up', async () => {
    for (const step of WRITE_DIR_STEPS) {
      const parent = scratch();
      const out = join(parent, 'out');
      await writeDirAtomic(out, (dir) => fill(dir, 'old'));
      const killed = await childWrite(out, 'new', { killAt: step });
      expect(killed.signal, step).toBe('SIGKILL');
      if (step === 'old-moved') {
        // Killed between the two renames of the swap: the old folder waits beside the target.
        expect(recoverDir(out).restored, step).toBe(true);
      }
      const seen = version(out);
      expect(seen, step).toBe(['renamed', 'old-removed'].includes(step) ? 'new' : 'old');
      // The next write takes over the dead writer's lock, removes its leftovers and writes.
      const next = await childWrite(out, 'next');
      expect(next.stdout, step).toBe('wrote');
      expect(version(out), step).toBe('next');
      expect(leftovers(parent), step).toEqual([]);
    }
  }, 60_000);

  it('with an exchange (renameat2 RENAME_EXCHANGE), replaces in one step; falls back to two renames when it cannot; a failed exchange loses nothing', async () => {
    // An exchange as the native one behaves, in plain renames (core has no native code).
    const swap = (a: string, b: string) => {
      const via = `${a}.via`;
      renameSync(a, via);
      renameSync(b, a);
      renameSync(via, b);
      return true;
    };
    const parent = scratch();
    const out = join(parent, 'out');
    await writeDirAtomic(out, (dir) => fill(dir, 'old'));
    const steps: WriteDirStep[] = [];
    const calls: string[][] = [];
    await writeDirAtomic(out, (dir) => fill(dir, 'new'), {
      replace: true,
      exchange: (a, b) => {
        calls.push([a, b]);
        return swap(a, b);
      },
      onStep: (step) => steps.push(step),
    });
    expect(version(out)).toBe('new');
    expect(calls).toHaveLength(1);
    expect(calls[0]![1]).toBe(out);
    expect(steps).not.toContain('old-moved');
    expect(steps.slice(-2)).toEqual(['renamed', 'old-removed']);
    expect(leftovers(parent)).toEqual([]);
    // No exchange on this file system: the two renames.
    const fallback: WriteDirStep[] = [];
    await writeDirAtomic(out, (dir) => fill(dir, 'newer'), {
      replace: true,
      exchange: () => false,
      onStep: (step) => fallback.push(step),
    });
    expect(version(out)).toBe('newer');
    expect(fallback).toContain('old-moved');
    // A failing exchange: a typed IOError, the target as it was, nothing left beside it.
    await expect(
      writeDirAtomic(out, (dir) => fill(dir, 'lost'), {
        replace: true,
        exchange: () => {
          throw new Error('renameat2: Input/output error');
        },
      }),
    ).rejects.toMatchObject({ code: 'core/io', message: expect.stringMatching(/exchange/) });
    expect(version(out)).toBe('newer');
    expect(leftovers(parent)).toEqual([]);
  });
});
