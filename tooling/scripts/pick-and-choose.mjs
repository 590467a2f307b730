#!/usr/bin/env node
// Pick and choose: a user installs one package and gets what it declares, nothing else.
// For each chosen package: `pnpm pack` it and the workspace packages it depends on, `npm install`
// those tarballs into an empty temporary project (only declared dependencies come along; other
// dependencies from the npm registry, preferring the local cache), then take the first ```ts block
// of the package's README, typecheck it against the installed packages with the repository's
// compiler options, transpile it and run it with Node. Fails if any step does, or the example throws.
// Needs each package's built dist. Usage: node tooling/scripts/pick-and-choose.mjs [--keep] [name...]
// (default: core, sparse-formats, pruners; --keep leaves the temporary projects for a look).
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { tmpdir } from 'node:os';
import { join, relative, sep } from 'node:path';
import ts from 'typescript';
import { pack, publishedPackages, root, workspacePackages } from './published-packages.mjs';

const DEFAULT = ['@sparsekit/core', '@sparsekit/sparse-formats', '@sparsekit/pruners'];
const EXAMPLE_TIMEOUT_MS = 60_000;

const byName = new Map(publishedPackages().map((p) => [p.name, p]));
// Private workspace packages too, to name them if a published package depends on one.
const workspaceNames = new Set(workspacePackages().map((p) => p.name));

const args = process.argv.slice(2);
const keep = args.includes('--keep');
const names = args.filter((arg) => arg !== '--keep');
const chosen = names.length > 0 ? names : DEFAULT;
const failures = [];

/** Runtime dependencies a user's install brings: dependencies, optional ones, required peers. */
function runtimeDependencies(pkg) {
  const peers = Object.keys(pkg.peerDependencies ?? {}).filter(
    (name) => pkg.peerDependenciesMeta?.[name]?.optional !== true,
  );
  return [...Object.keys(pkg.dependencies ?? {}), ...Object.keys(pkg.optionalDependencies ?? {}), ...peers];
}

/** The package and every workspace package it needs at run time, transitively. */
function workspaceClosure(name, seen = new Set()) {
  if (seen.has(name)) return seen;
  const entry = byName.get(name);
  if (entry === undefined) throw new Error(`${name} is not a published package of this workspace`);
  seen.add(name);
  for (const dep of runtimeDependencies(entry.pkg)) {
    if (workspaceNames.has(dep)) workspaceClosure(dep, seen);
  }
  return seen;
}

/** The first ```ts block of a README. */
function readmeExample(dir) {
  const text = readFileSync(join(dir, 'README.md'), 'utf8');
  const match = /^```ts\n([\s\S]*?)^```/m.exec(text);
  return match?.[1];
}

function bareImports(code) {
  const out = new Set();
  const re = /(?:^|\s)(?:import|export)\s[^'"]*?from\s+['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)/g;
  for (const m of code.matchAll(re)) {
    const spec = m[1] ?? m[2];
    if (!spec.startsWith('.') && !spec.startsWith('/')) out.add(spec);
  }
  return out;
}

function packageOf(spec) {
  const parts = spec.split('/');
  return spec.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0];
}

const base = JSON.parse(readFileSync(join(root, 'tooling', 'tsconfig', 'base.json'), 'utf8'));
const { options: compilerOptions, errors: optionErrors } = ts.convertCompilerOptionsFromJson(
  {
    ...base.compilerOptions,
    noEmit: true,
    declaration: false,
    declarationMap: false,
    sourceMap: false,
    typeRoots: [join(root, 'node_modules', '@types')],
  },
  root,
);
if (optionErrors.length > 0) throw new Error(ts.formatDiagnostics(optionErrors, ts.createCompilerHost({})));

function typecheck(file) {
  const program = ts.createProgram([file], compilerOptions);
  const diagnostics = ts.getPreEmitDiagnostics(program);
  return ts.formatDiagnostics(diagnostics, {
    getCanonicalFileName: (f) => f,
    getCurrentDirectory: () => join(file, '..'),
    getNewLine: () => '\n',
  });
}

function npm(args, cwd) {
  return spawnSync('npm', args, {
    cwd,
    encoding: 'utf8',
    env: { ...process.env, npm_config_update_notifier: 'false' },
  });
}

const work = mkdtempSync(join(tmpdir(), 'sparsekit-pick-and-choose-'));
try {
  const tarballs = new Map();
  const tarballDir = join(work, 'tarballs');
  mkdirSync(tarballDir);
  for (const name of chosen) {
    const started = performance.now();
    const fail = (what) => failures.push(`${name}: ${what}`);
    let closure;
    try {
      closure = workspaceClosure(name);
    } catch (error) {
      fail(error.message);
      continue;
    }
    const privateDeps = [...closure].filter((dep) => !byName.has(dep));
    if (privateDeps.length > 0) {
      fail(`depends on private workspace packages ${privateDeps.join(', ')}, which are never published`);
      continue;
    }
    for (const dep of closure)
      if (!tarballs.has(dep)) tarballs.set(dep, pack(byName.get(dep).dir, tarballDir));

    const { dir, pkg } = byName.get(name);
    const example = readmeExample(dir);
    if (example === undefined) {
      fail('its README.md has no ```ts example');
      continue;
    }
    const allowed = new Set([name, ...Object.keys(pkg.dependencies ?? {})]);
    for (const spec of bareImports(example)) {
      const target = packageOf(spec);
      if (spec.startsWith('node:') || builtinModules.includes(target)) continue;
      if (!allowed.has(target))
        fail(`the README example imports '${spec}', which ${name} does not list in its dependencies`);
    }

    const project = join(work, name.replace('@', '').replace('/', '-'));
    mkdirSync(project);
    writeFileSync(
      join(project, 'package.json'),
      `${JSON.stringify({ name: 'pick-and-choose', private: true, type: 'module' }, null, 2)}\n`,
    );
    const files = [...closure].map((dep) => tarballs.get(dep));
    const install = npm(
      ['install', '--prefer-offline', '--no-audit', '--no-fund', '--loglevel=error', ...files],
      project,
    );
    if (install.status !== 0) {
      fail(`npm install of ${[...closure].join(', ')} failed:\n${install.stdout}${install.stderr}`);
      continue;
    }
    // Every workspace package must come from the tarballs (a version a dependent's range does not
    // accept would be fetched from the registry into a nested node_modules).
    const listed = npm(['ls', '--all', '--parseable'], project);
    if (listed.status !== 0) fail(`npm ls finds the installed tree broken:\n${listed.stderr}`);
    const installed = listed.stdout
      .split('\n')
      .filter(Boolean)
      .map((path) => relative(project, path))
      .filter((path) => path !== '');
    for (const path of installed) {
      const nested = path.split(`${sep}node_modules${sep}`).slice(1);
      for (const inner of nested) {
        if (workspaceNames.has(packageOf(inner.split(sep).join('/'))))
          fail(`${path}: a second copy of a workspace package, not from the packed tarballs`);
      }
    }
    for (const path of installed) {
      const top = path.split(sep).slice(1).join('/');
      if (workspaceNames.has(top) && !closure.has(top))
        fail(`${top} was installed, but ${name} should not need it`);
    }

    // .mts: an ES module whatever the surrounding package.json says, for tsc and transpileModule alike.
    const source = join(project, 'example.mts');
    writeFileSync(source, example);
    const typeErrors = typecheck(source);
    if (typeErrors !== '')
      fail(`the README example does not typecheck against the packed packages:\n${typeErrors}`);
    const { outputText } = ts.transpileModule(example, { compilerOptions, fileName: source });
    writeFileSync(join(project, 'example.mjs'), outputText);
    const run = spawnSync(process.execPath, ['example.mjs'], {
      cwd: project,
      encoding: 'utf8',
      timeout: EXAMPLE_TIMEOUT_MS,
    });
    const output = `${run.stdout}${run.stderr}`.trim();
    if (run.status !== 0) {
      const why = run.error !== undefined ? run.error.message : `exit code ${run.status ?? run.signal}`;
      fail(`the README example failed (${why}):\n${output}`);
    }
    const seconds = ((performance.now() - started) / 1000).toFixed(1);
    console.log(
      `${name}: ${installed.length} packages installed (${[...closure].join(', ')} from tarballs), ` +
        `README example ${run.status === 0 ? 'ran' : 'failed'} (${seconds} s)`,
    );
    if (run.status === 0 && output !== '') console.log(output.replace(/^/gm, '  | '));
  }
} finally {
  if (keep) console.log(`kept ${work}`);
  else rmSync(work, { recursive: true, force: true });
}

if (failures.length > 0) {
  console.error(`\n${failures.length} pick-and-choose problem(s):`);
  for (const failure of failures) console.error(`- ${failure}`);
  process.exit(1);
}
console.log(`pick-and-choose: ${chosen.length} packages installed from their tarballs, README examples ran`);
