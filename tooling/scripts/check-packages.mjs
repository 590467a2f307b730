#!/usr/bin/env node
// Lints every published package as npm would receive it (needs each package's built dist):
// - publint (strict: warnings count as errors) on the files `pnpm pack` would publish: exports,
//   types, bin, files, module format;
// - @arethetypeswrong/cli on the `pnpm pack` tarball: do the `exports` resolve to types and
//   JavaScript that agree, for TypeScript's node16 and bundler resolutions;
// - every package the built JavaScript imports by name (statically or with a literal `import()`)
//   is declared in dependencies, optionalDependencies or peerDependencies (optional peers for the
//   ones loaded only when installed, such as TensorFlow.js).
// Exits 1 naming each package and problem. Usage: node tooling/scripts/check-packages.mjs [name...]
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { publint } from 'publint';
import { formatMessage } from 'publint/utils';
import { pack, publishedPackages, root } from './published-packages.mjs';

// The packages are pure ESM (DESIGN.md): no `require` condition and no `main`/`types` fallbacks,
// so TypeScript's `node10` resolution (no `exports` support) finds nothing and a `require` from
// CommonJS under node16 meets ESM. attw's `esm-only` profile leaves out exactly those two
// resolutions (node10, node16-cjs); every other rule stays on for node16-from-ESM and bundler.
const ATTW_FLAGS = [
  '--profile',
  'esm-only',
  // Types ship inside each package; never look for @types/<name> on the registry.
  '--no-definitely-typed',
  '--no-color',
  '--no-emoji',
];

const wanted = process.argv.slice(2);
const packages = publishedPackages().filter(({ name }) => wanted.length === 0 || wanted.includes(name));
if (wanted.length > 0 && packages.length !== wanted.length) {
  console.error(
    `unknown package among ${wanted.join(', ')}; published: ${publishedPackages().map((p) => p.name)}`,
  );
  process.exit(1);
}

function* javascriptFiles(dir) {
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) yield* javascriptFiles(path);
    else if (/\.m?js$/.test(name)) yield path;
  }
}

/** Bare imports of the built JavaScript in `dist` that the package.json does not declare. */
function undeclaredImports(dir, pkg) {
  const declared = new Set([
    pkg.name,
    ...Object.keys(pkg.dependencies ?? {}),
    ...Object.keys(pkg.optionalDependencies ?? {}),
    ...Object.keys(pkg.peerDependencies ?? {}),
  ]);
  const importRe =
    /(?:^|[\s;])(?:import|export)\s[^'"]*?from\s*['"]([^'"]+)['"]|(?:^|[\s;])import\s*['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)/g;
  const out = [];
  let files;
  try {
    files = [...javascriptFiles(join(dir, 'dist'))];
  } catch {
    return [`${relative(root, dir)}/dist is missing: build first (pnpm build)`];
  }
  for (const file of files) {
    for (const m of readFileSync(file, 'utf8').matchAll(importRe)) {
      const spec = m[1] ?? m[2] ?? m[3];
      if (spec.startsWith('.') || spec.startsWith('node:') || builtinModules.includes(spec.split('/')[0]))
        continue;
      const parts = spec.split('/');
      const name = spec.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0];
      if (!declared.has(name))
        out.push(`${relative(dir, file)} imports '${spec}', which package.json does not declare`);
    }
  }
  return out;
}

const attw = join(root, 'node_modules', '.bin', 'attw');
const work = mkdtempSync(join(tmpdir(), 'sparsekit-check-packages-'));
const problems = [];
try {
  for (const { name, dir, pkg } of packages) {
    const started = performance.now();
    const { messages, pkg: packed } = await publint({ pkgDir: dir, pack: 'pnpm', strict: true });
    for (const message of messages) {
      const text = `${name}: publint ${message.type}: ${formatMessage(message, packed, { color: false })}`;
      if (message.type === 'suggestion') console.log(text);
      else problems.push(text);
    }

    for (const problem of undeclaredImports(dir, pkg)) problems.push(`${name}: ${problem}`);

    // A package with nothing to import (the CLI: `bin` only, no `exports`) has no types to check.
    const importable = pkg.exports !== undefined || pkg.main !== undefined || pkg.types !== undefined;
    let attwNote = 'attw skipped (bin only, nothing to import)';
    if (importable) {
      const tarball = pack(dir, work);
      const run = spawnSync(attw, [tarball, ...ATTW_FLAGS, '--format', 'json'], { encoding: 'utf8' });
      let analysis;
      try {
        analysis = JSON.parse(run.stdout).analysis;
      } catch {
        analysis = undefined;
      }
      // attw passes a package without any declarations ("does not contain types"): ours must ship them.
      if (analysis !== undefined && analysis.types === false)
        problems.push(
          `${name}: attw: the package contains no type declarations (check \`files\` and \`exports\`)`,
        );
      if (run.status !== 0 || analysis === undefined) {
        const readable = spawnSync(attw, [tarball, ...ATTW_FLAGS, '--format', 'ascii'], { encoding: 'utf8' });
        const output =
          `${readable.stdout ?? ''}${readable.stderr ?? ''}${readable.error?.message ?? ''}`.trim();
        problems.push(`${name}: attw (--profile esm-only) found problems:\n${output}`);
      }
      attwNote = 'attw';
    }
    const seconds = ((performance.now() - started) / 1000).toFixed(1);
    console.log(`${name}: publint, imports, ${attwNote} (${seconds} s)`);
  }
} finally {
  rmSync(work, { recursive: true, force: true });
}

if (problems.length > 0) {
  console.error(`\n${problems.length} package problem(s):`);
  for (const problem of problems) console.error(`- ${problem}`);
  process.exit(1);
}
console.log(`${packages.length} published packages: publint, attw and declared imports clean`);
