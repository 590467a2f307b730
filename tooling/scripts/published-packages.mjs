// The workspace packages, those of them that are published (packages/* and apps/* without
// `"private": true`), and `pnpm pack`, shared by check-packages.mjs and pick-and-choose.mjs.
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join, relative, resolve, sep } from 'node:path';

export const root = resolve(new URL('../..', import.meta.url).pathname);

/** Every workspace package: `{ name, dir, pkg }` for packages/*, apps/* and tooling/*. */
export function workspacePackages() {
  const out = [];
  for (const group of ['packages', 'apps', 'tooling']) {
    for (const name of readdirSync(join(root, group)).sort()) {
      const file = join(root, group, name, 'package.json');
      if (!existsSync(file)) continue;
      const pkg = JSON.parse(readFileSync(file, 'utf8'));
      out.push({ name: pkg.name, dir: join(root, group, name), pkg });
    }
  }
  return out;
}

/** The packages npm receives: those of packages/* and apps/* without `"private": true`. */
export function publishedPackages() {
  return workspacePackages().filter(
    ({ dir, pkg }) => pkg.private !== true && !relative(root, dir).startsWith(`tooling${sep}`),
  );
}

/**
 * `pnpm pack` of the package in `dir` into `destination` (pnpm turns `workspace:` ranges into
 * versions, as `pnpm publish` does); returns the tarball's path.
 */
export function pack(dir, destination) {
  const output = execFileSync('pnpm', ['pack', '--json', '--pack-destination', destination], {
    cwd: dir,
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const { filename } = JSON.parse(output);
  if (typeof filename !== 'string') throw new Error(`pnpm pack in ${dir} printed no filename`);
  return resolve(destination, filename);
}
