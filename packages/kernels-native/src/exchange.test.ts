import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { WRITE_DIR_STEPS, writeDirAtomic } from '@sparsekit/core/node';
import { describe, expect, it } from 'vitest';
import { nativeAvailability, pathExchange } from './load.js';

const availability = nativeAvailability();

/** Whether the file system under `parent` exchanges (renameat2 RENAME_EXCHANGE). */
function exchangesIn(parent: string): boolean {
  const x = mkdtempSync(join(parent, 'x-'));
  const y = mkdtempSync(join(parent, 'y-'));
  return pathExchange()!(x, y);
}

describe.skipIf(!availability.available)('pathExchange (renameat2 RENAME_EXCHANGE)', () => {
  it('swaps two folders in one step, or says it cannot; a missing path is an error', () => {
    const exchange = pathExchange()!;
    const parent = mkdtempSync(join(tmpdir(), 'exchange-'));
    const a = join(parent, 'a');
    const b = join(parent, 'b');
    mkdirSync(a);
    mkdirSync(b);
    writeFileSync(join(a, 'f'), 'A');
    writeFileSync(join(b, 'f'), 'B');
    const swapped = exchange(a, b);
    expect(readFileSync(join(a, 'f'), 'utf8')).toBe(swapped ? 'B' : 'A');
    expect(readFileSync(join(b, 'f'), 'utf8')).toBe(swapped ? 'A' : 'B');
    if (process.platform === 'linux') expect(typeof swapped).toBe('boolean');
    expect(() => exchange(join(parent, 'missing'), b)).toThrow(/renameat2/);
  });

  it('gives writeDirAtomic an atomic replacement: new contents, nothing left beside the target', async () => {
    const parent = mkdtempSync(join(tmpdir(), 'exchange-'));
    const out = join(parent, 'out');
    await writeDirAtomic(out, (dir) => writeFile(join(dir, 'v'), 'old'));
    const steps: string[] = [];
    await writeDirAtomic(out, (dir) => writeFile(join(dir, 'v'), 'new'), {
      replace: true,
      exchange: pathExchange()!,
      onStep: (s) => steps.push(s),
    });
    expect(readFileSync(join(out, 'v'), 'utf8')).toBe('new');
    expect(readdirSync(parent).filter((n) => n.startsWith('.'))).toEqual([]);
    // Where the file system exchanges, the target never went missing (no 'old-moved' step).
    expect(steps.includes('old-moved')).toBe(!exchangesIn(mkdtempSync(join(tmpdir(), 'exchange-'))));
  });

  it.skipIf(!availability.available || !exchangesIn(tmpdir()))(
    'killed (SIGKILL) after every step of an exchanging replacement: the target is never missing',
    async () => {
      const core = fileURLToPath(new URL('../node_modules/@sparsekit/core/dist/node.js', import.meta.url));
      const native = fileURLToPath(new URL('../dist/index.js', import.meta.url));
      const script = `
      import { writeDirAtomic } from ${JSON.stringify(core)};
      import { pathExchange } from ${JSON.stringify(native)};
      import { writeFile } from 'node:fs/promises';
      import { join } from 'node:path';
      const [target, killAt] = process.argv.slice(1);
      await writeDirAtomic(target, (dir) => writeFile(join(dir, 'v'), 'new'), {
        replace: true,
        exchange: pathExchange(),
        onStep: (s) => { if (s === killAt) process.kill(process.pid, 'SIGKILL'); },
      });`;
      for (const step of WRITE_DIR_STEPS) {
        const parent = mkdtempSync(join(tmpdir(), 'exchange-kill-'));
        const out = join(parent, 'out');
        await writeDirAtomic(out, (dir) => writeFile(join(dir, 'v'), 'old'));
        const run = spawnSync(process.execPath, ['--input-type=module', '-e', script, out, step]);
        const killed = run.signal === 'SIGKILL';
        // Every step but 'old-moved' (which an exchange never passes) kills the writer.
        expect(killed, step).toBe(step !== 'old-moved');
        // Without any repair, the target holds a whole folder: the old one before the exchange, the new one after.
        const seen = readFileSync(join(out, 'v'), 'utf8');
        expect(seen, step).toBe(['renamed', 'old-removed', 'old-moved'].includes(step) ? 'new' : 'old');
        // The next write cleans up what the dead writer left.
        await writeDirAtomic(out, (dir) => writeFile(join(dir, 'v'), 'next'), {
          replace: true,
          exchange: pathExchange()!,
        });
        expect(readFileSync(join(out, 'v'), 'utf8'), step).toBe('next');
        expect(
          readdirSync(parent).filter((n) => n.startsWith('.')),
          step,
        ).toEqual([]);
      }
    },
    60_000,
  );
});
