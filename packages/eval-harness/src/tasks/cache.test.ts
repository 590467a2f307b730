import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { openRequestCache } from './cache.js';

const dir = mkdtempSync(join(tmpdir(), 'request-cache-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('the request cache on disk', () => {
  it('keeps results across runs for one model, and refuses another model or a damaged file', async () => {
    const path = join(dir, 'cache.json');
    const a = openRequestCache(path, 'model-a');
    expect(a.size).toBe(0);
    a.set('ctx\u0000 cont', { loglikelihood: -1.25, isGreedy: true });
    await a.save();
    const again = openRequestCache(path, 'model-a');
    expect([...again]).toEqual([['ctx\u0000 cont', { loglikelihood: -1.25, isGreedy: true }]]);
    expect(() => openRequestCache(path, 'model-b')).toThrow(/holds the results of another model \(model-a\)/);
    writeFileSync(path, '{"version": 1, "model": "model-a", "entries": [["k", "x"]]}');
    expect(() => openRequestCache(path, 'model-a')).toThrow(/a damaged entry/);
    writeFileSync(path, 'not json');
    expect(() => openRequestCache(path, 'model-a')).toThrow(
      expect.objectContaining({ code: 'core/invalid-format' }),
    );
  });
});
