#!/usr/bin/env node
// The dependency rules of DESIGN.md, checked on every import of the source files:
// - core imports no package; sparse-formats only core;
// - algorithm packages, kernels-gpu, kernels-native, models and eval-harness import only core and sparse-formats;
// - apps import packages through their public entry points only (the `exports` of each package);
// - the server may import the CLI's entry point (`sparsekit`); the CLI and packages import no app;
// - nothing reaches into another package by a relative path.
// Tests (*.test.ts, *.test-util.ts) and benchmarks may also use tooling and packages above them.
// Exits 1 naming every offending import.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative, resolve, sep } from 'node:path';

const root = resolve(new URL('../..', import.meta.url).pathname);
const BASE = ['@sparsekit/core', '@sparsekit/sparse-formats'];
const allowed = {
  core: [],
  'sparse-formats': ['@sparsekit/core'],
  'kernels-gpu': BASE,
  'kernels-native': BASE,
  models: BASE,
  pruners: BASE,
  'eval-harness': BASE,
  'activation-sparsity': BASE,
  'sparse-attention': BASE,
  'moe-router': BASE,
  sae: BASE,
};

/** Public entry points: `@sparsekit/<name>` plus each subpath of its package.json `exports`. */
function entryPoints() {
  const out = new Set();
  for (const dir of ['packages', 'apps', 'tooling']) {
    for (const name of readdirSync(join(root, dir))) {
      let pkg;
      try {
        pkg = JSON.parse(readFileSync(join(root, dir, name, 'package.json'), 'utf8'));
      } catch {
        continue;
      }
      for (const key of Object.keys(pkg.exports ?? { '.': null }))
        out.add(key === '.' ? pkg.name : `${pkg.name}/${key.slice(2)}`);
    }
  }
  return out;
}

function* sources(dir) {
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (name === 'node_modules' || name === 'dist' || name === 'build' || name.startsWith('.')) continue;
    if (statSync(path).isDirectory()) yield* sources(path);
    else if (/\.(ts|mts|js|mjs)$/.test(name) && !name.endsWith('.d.ts')) yield path;
  }
}

const entries = entryPoints();
const problems = [];
const importRe =
  /(?:^|\s)(?:import|export)\s[^'"]*?from\s+['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)/g;
for (const [group, names] of [
  ['packages', readdirSync(join(root, 'packages'))],
  ['apps', readdirSync(join(root, 'apps'))],
]) {
  for (const name of names) {
    const base = join(root, group, name);
    for (const dir of ['src', 'bench']) {
      let files;
      try {
        files = [...sources(join(base, dir))];
      } catch {
        continue;
      }
      for (const file of files) {
        const text = readFileSync(file, 'utf8');
        const testish = dir === 'bench' || /\.test(-util)?\.ts$/.test(file) || /\.test-util\.ts$/.test(file);
        for (const m of text.matchAll(importRe)) {
          const spec = m[1] ?? m[2];
          const where = `${relative(root, file)}: import '${spec}'`;
          if (spec.startsWith('.')) {
            const target = resolve(file, '..', spec);
            if (!target.startsWith(base + sep)) problems.push(`${where} reaches outside ${group}/${name}`);
            continue;
          }
          if (spec === 'sparsekit' || spec.startsWith('sparsekit/')) {
            // The CLI's entry point is the one app others may build on (the server's workers run
            // its commands); the CLI and the packages import no app.
            if (group === 'packages' || name === 'cli')
              problems.push(`${where}: ${group}/${name} may not import an app`);
            continue;
          }
          if (!spec.startsWith('@sparsekit/')) continue;
          if (!entries.has(spec)) {
            problems.push(`${where} is not a public entry point (see that package's "exports")`);
            continue;
          }
          if (testish || group === 'apps') continue;
          const pkg = spec.split('/').slice(0, 2).join('/');
          const rules = allowed[name];
          if (rules === undefined)
            problems.push(`${where}: packages/${name} has no dependency rule in check-boundaries.mjs`);
          else if (pkg !== `@sparsekit/${name}` && !rules.includes(pkg))
            problems.push(
              `${where} breaks the layering: ${name} may import only ${rules.length === 0 ? 'no package' : rules.join(', ')}`,
            );
        }
      }
    }
  }
}
if (problems.length > 0) {
  console.error(`dependency boundaries: ${problems.length} offending import(s)`);
  for (const p of problems) console.error(`  ${p}`);
  process.exit(1);
}
console.log('dependency boundaries: every import follows the layering');
