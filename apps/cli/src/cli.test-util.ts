// Running the CLI as users run it, for the tests: a subprocess of the built bin in a scratch folder.
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll } from 'vitest';

export const CLI = fileURLToPath(new URL('../dist/cli.js', import.meta.url));
/** The scratch folder (the working directory of every run), removed after the file's tests. */
export const work = mkdtempSync(join(tmpdir(), 'sparsekit-cli-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

export function run(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return runWithEnv({}, ...args);
}

/** `run` with variables added to the environment. */
export function runWithEnv(
  env: Record<string, string>,
  ...args: string[]
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const options = { cwd: work, maxBuffer: 1 << 24, env: { ...process.env, ...env } };
    execFile('node', [CLI, ...args], options, (error, stdout, stderr) => {
      resolve({ code: error === null ? 0 : ((error as { code?: number }).code ?? 1), stdout, stderr });
    });
  });
}

export const json = (s: string) => JSON.parse(s);
