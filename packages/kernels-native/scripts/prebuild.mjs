// The prebuilt binary shipped in the npm package (run by `prepack`): a fresh build, copied to
// prebuilds/<platform>-<arch>/sparsekit_kernels.napi.node, where node-gyp-build finds it when there
// is no local build. Node-API builds run on every Node version with that ABI; the kernels choose
// AVX2 or portable code at load, so one x64 binary serves every x86-64 CPU.
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, renameSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const build = spawnSync(process.execPath, [join(root, 'scripts', 'build-native.mjs')], {
  // Its lines go to stderr: stdout belongs to the packer (`pnpm pack --json` prints JSON there).
  stdio: ['ignore', 2, 2],
  env: { ...process.env, SPARSEKIT_REQUIRE_NATIVE: '1' },
});
if (build.status !== 0) process.exit(build.status ?? 1);
const dir = join(root, 'prebuilds', `${process.platform}-${process.arch}`);
mkdirSync(dir, { recursive: true });
const target = join(dir, 'sparsekit_kernels.napi.node');
copyFileSync(join(root, 'build', 'Release', 'sparsekit_kernels.node'), `${target}.tmp`);
// Debug symbols are not needed to run (and are most of the file).
spawnSync('strip', ['--strip-unneeded', `${target}.tmp`], { stdio: 'ignore' });
renameSync(`${target}.tmp`, target);
console.error(`@sparsekit/kernels-native: prebuilt ${target}`);
