// Build the native addon with node-gyp. It never fails an install: when the build cannot run, one
// line says why and Sparsekit uses its wasm backend. SPARSEKIT_REQUIRE_NATIVE=1 makes a failed build
// an error (CI); SPARSEKIT_NATIVE=0 skips the build. With --if-missing (the install script) an
// existing build is kept, and so is the package's prebuilt binary for this platform when it loads
// here (a binary built against a newer C library than this machine's does not: it is then built
// from source).
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const required = process.env.SPARSEKIT_REQUIRE_NATIVE === '1';
const built = join(root, 'build', 'Release', 'sparsekit_kernels.node');
const prebuilt = join(root, 'prebuilds', `${process.platform}-${process.arch}`);

function giveUp(reason) {
  console.log(`@sparsekit/kernels-native: not built (${reason}); the wasm backend runs instead.`);
  process.exit(required ? 1 : 0);
}

if (process.env.SPARSEKIT_NATIVE === '0') giveUp('SPARSEKIT_NATIVE=0');
if (process.argv.includes('--if-missing')) {
  if (existsSync(built)) process.exit(0);
  if (existsSync(prebuilt)) {
    const probe = spawnSync(
      process.execPath,
      [
        '-e',
        `require(require.resolve('node-gyp-build', { paths: [${JSON.stringify(root)}] }))(${JSON.stringify(root)}).features()`,
      ],
      { encoding: 'utf8' },
    );
    if (probe.status === 0) process.exit(0);
    console.log(
      `@sparsekit/kernels-native: the prebuilt binary does not load here (${(probe.stderr.split('\n').find((l) => /Error/.test(l)) ?? 'unknown error').trim()}); building from source`,
    );
  }
}

const require = createRequire(import.meta.url);
let gyp = process.env.npm_config_node_gyp;
if (gyp === undefined || !existsSync(gyp)) {
  try {
    gyp = require.resolve('node-gyp/bin/node-gyp.js');
  } catch {
    gyp = undefined;
  }
}
if (gyp === undefined) giveUp('node-gyp not found');
let addonApi = true;
try {
  require.resolve('node-addon-api');
} catch {
  addonApi = false;
}
if (!addonApi) giveUp('node-addon-api not installed');
// Build against the running Node's own headers when they are installed next to it (no download).
const args = [gyp, 'rebuild'];
const nodeDir = process.env.npm_config_nodedir ?? dirname(dirname(process.execPath));
if (existsSync(join(nodeDir, 'include', 'node', 'node_api.h'))) args.push(`--nodedir=${nodeDir}`);
const run = spawnSync(process.execPath, args, { cwd: root, encoding: 'utf8' });
if (run.error !== undefined) giveUp(run.error.message);
if (run.status !== 0) {
  const lines = `${run.stderr}\n${run.stdout}`.split('\n').filter((l) => /error/i.test(l));
  giveUp(lines[0]?.trim() ?? `node-gyp exited with ${run.status}`);
}
console.log('@sparsekit/kernels-native: built build/Release/sparsekit_kernels.node');
