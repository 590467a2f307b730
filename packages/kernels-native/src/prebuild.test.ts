import { execFileSync } from 'node:child_process';
import {
  copyFileSync,
  cpSync,
  mkdirSync,
  mkdtempSync,
  realpathSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { nativeAvailability } from './load.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(import.meta.url);
const work = mkdtempSync(join(tmpdir(), 'kernels-native-prebuild-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

/** A copy of the package as npm unpacks it: scripts and a prebuilt binary, no local build. */
function unpacked(name: string, binary: (target: string) => void): string {
  const dir = join(work, name);
  cpSync(join(root, 'scripts'), join(dir, 'scripts'), { recursive: true });
  copyFileSync(join(root, 'package.json'), join(dir, 'package.json'));
  mkdirSync(join(dir, 'node_modules'), { recursive: true });
  // Only the loader: without node-gyp a source build gives up at once.
  symlinkSync(
    realpathSync(dirname(require.resolve('node-gyp-build/package.json'))),
    join(dir, 'node_modules', 'node-gyp-build'),
  );
  const target = join(dir, 'prebuilds', `${process.platform}-${process.arch}`, 'sparsekit_kernels.napi.node');
  mkdirSync(dirname(target), { recursive: true });
  binary(target);
  return dir;
}

const install = (dir: string) =>
  execFileSync(process.execPath, [join(dir, 'scripts', 'build-native.mjs'), '--if-missing'], {
    encoding: 'utf8',
    env: { ...process.env, SPARSEKIT_REQUIRE_NATIVE: '0', npm_config_node_gyp: '' },
  });

describe.skipIf(!nativeAvailability().available)('the prebuilt binary', () => {
  it('is what node-gyp-build loads where there is no local build, and the install keeps it', () => {
    const dir = unpacked('good', (t) =>
      copyFileSync(join(root, 'build', 'Release', 'sparsekit_kernels.node'), t),
    );
    expect(install(dir)).toBe('');
    const load = require('node-gyp-build') as (d: string) => { features(): { kernels: string } };
    expect(['avx512', 'avx2', 'portable']).toContain(load(dir).features().kernels);
  });

  it('one that does not load here is built from source instead (here that build cannot run: one line says so)', () => {
    const dir = unpacked('damaged', (t) => writeFileSync(t, 'not an ELF file'));
    const out = install(dir);
    expect(out).toMatch(/the prebuilt binary does not load here \(.+\); building from source/);
    expect(out).toMatch(/not built \(.+\); the wasm backend runs instead/);
  });
});
