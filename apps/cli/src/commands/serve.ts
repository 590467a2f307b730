// `sparsekit serve`: starts the server (the @sparsekit/server package, found from the current folder)
// in a child process with the same flags. The server builds on this CLI's commands, so the CLI does
// not import it: it runs its `sparsekit-server` entry point, with an argument array, never a shell.
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import type { Command } from '../command.js';
import { CliError } from '../model-io.js';

const PASSED = [
  'data',
  'root',
  'host',
  'port',
  'workers',
  'upload-limit',
  'rate-limit',
  'cors',
  'redis',
] as const;

/** The server's entry point, resolved from `from` (default: the current folder). */
export function serverEntry(from = process.cwd()): string {
  let manifest: string;
  try {
    manifest = createRequire(join(from, 'noop.js')).resolve('@sparsekit/server/package.json');
  } catch {
    throw new CliError(
      `the server is not installed where ${from} can find it (@sparsekit/server)`,
      'install @sparsekit/server beside sparsekit (in this repository: pnpm install, or run pnpm server)',
    );
  }
  const bin = (JSON.parse(readFileSync(manifest, 'utf8')) as { bin?: Record<string, string> }).bin?.[
    'sparsekit-server'
  ];
  if (bin === undefined) throw new CliError(`${manifest} names no sparsekit-server entry point`);
  return join(dirname(manifest), bin);
}

export const serveCommand: Command = {
  name: 'serve',
  summary: 'the HTTP server: jobs over an API and a dashboard (runs @sparsekit/server)',
  help: `Usage: sparsekit serve [--data DIR] [--root DIR] [--host H] [--port N] [--workers N]
                       [--upload-limit BYTES] [--rate-limit BURST/PER_SECOND] [--cors ORIGINS] [--redis URL]

Starts @sparsekit/server's sparsekit-server with these flags (see its README): the API and the
dashboard on http://127.0.0.1:8787 by default, jobs in DIR/jobs.sqlite and worker processes, or
with --redis on BullMQ workers. Tokens: sparsekit-server token create NAME (or pnpm server token
create NAME in this repository). Stops on Ctrl-C.

Examples:
  sparsekit serve --data ./sparsekit-data --workers 2
  sparsekit serve --redis redis://localhost:6379 --data /shared/sparsekit`,
  flags: Object.fromEntries(PASSED.map((f) => [f, { type: 'string' as const }])),
  async run({ flags, ui }) {
    const entry = serverEntry();
    const args = PASSED.flatMap((f) => (typeof flags[f] === 'string' ? [`--${f}=${flags[f]}`] : []));
    const child = spawn(process.execPath, [entry, 'serve', ...args], { stdio: 'inherit' });
    const forward = (signal: NodeJS.Signals) => child.kill(signal);
    process.on('SIGINT', forward);
    process.on('SIGTERM', forward);
    const code = await new Promise<number>((resolve) =>
      child.on('exit', (c, s) => resolve(c ?? (s === null ? 1 : 0))),
    );
    process.off('SIGINT', forward);
    process.off('SIGTERM', forward);
    if (code !== 0) throw new CliError(`the server exited with code ${code}`);
    ui.say('the server stopped');
    return { exitCode: code };
  },
};
