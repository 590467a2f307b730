import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import {
  InvalidArgumentError,
  InvalidFormatError,
  IOError,
  SafetensorsError,
  ShapeMismatchError,
  SparsekitError,
} from './errors.js';

describe('errors', () => {
  it('carry a namespaced code and a hint (the class default, or the one given)', () => {
    const shape = new ShapeMismatchError([2, 3], [3, 2], 'weight');
    expect(shape.code).toBe('core/shape-mismatch');
    expect(shape.hint).toBe(ShapeMismatchError.hint);
    expect(shape.name).toBe('ShapeMismatchError');
    const format = new InvalidFormatError('csr', 'indptr decreases', 3, { hint: 'rebuild it', tensor: 'w' });
    expect(format).toMatchObject({
      code: 'core/invalid-format',
      hint: 'rebuild it',
      tensor: 'w',
      position: 3,
    });
    const base = new SparsekitError('pruners/example', 'x');
    expect(base.code).toBe('pruners/example');
    expect(base.hint).toBeUndefined();
  });

  it('IOError picks its hint from the system error code of its cause', () => {
    const full = new IOError('/x', 'cannot write', Object.assign(new Error('no space'), { code: 'ENOSPC' }));
    expect(full.errno).toBe('ENOSPC');
    expect(full.hint).toMatch(/disk .* is full/);
    expect(new IOError('/x', 'cannot read').hint).toMatch(/exists/);
  });

  it('isInstance checks the class and its parents, not siblings', () => {
    const e = new InvalidArgumentError('sparsity', 2, 'in [0, 1)');
    expect(InvalidArgumentError.isInstance(e)).toBe(true);
    expect(SparsekitError.isInstance(e)).toBe(true);
    expect(InvalidFormatError.isInstance(e)).toBe(false);
    expect(SafetensorsError.isInstance(new Error('x'))).toBe(false);
    expect(SparsekitError.isInstance(undefined)).toBe(false);
    expect(SparsekitError.isInstance('core/io')).toBe(false);
  });

  it('isInstance recognises errors of a second copy of the package, where instanceof fails', async () => {
    // A second copy of this module (as two installed versions of @sparsekit/core would be).
    const source = readFileSync(fileURLToPath(new URL('./errors.ts', import.meta.url)), 'utf8');
    const js = (await import('typescript')).transpileModule(source, {
      compilerOptions: { module: 99, target: 99 },
    }).outputText;
    const copy = (await import(`data:text/javascript;base64,${Buffer.from(js).toString('base64')}`)) as {
      ShapeMismatchError: typeof ShapeMismatchError;
    };
    const foreign = new copy.ShapeMismatchError([1], [2]);
    expect(foreign instanceof ShapeMismatchError).toBe(false);
    expect(ShapeMismatchError.isInstance(foreign)).toBe(true);
    expect(SparsekitError.isInstance(foreign)).toBe(true);
    expect(InvalidFormatError.isInstance(foreign)).toBe(false);
  });
});
