import { mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeDirAtomic } from '@sparsekit/core/node';
import { describe, expect, it } from 'vitest';
import { nativeAvailability, pathExchange } from './load.js';

const availability = nativeAvailability();

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
    const swapped = (() => {
      const x = join(parent, 'x');
      const y = join(parent, 'y');
      mkdirSync(x);
      mkdirSync(y);
      return pathExchange()!(x, y);
    })();
    expect(steps.includes('old-moved')).toBe(!swapped);
  });
});
