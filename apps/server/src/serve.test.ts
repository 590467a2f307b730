// `sparsekit serve` (the CLI) finds this package from the repository and runs it with its flags.
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { dataFolder, NO_SQLITE, serverAddress } from './server.test-util.js';

const REPO = fileURLToPath(new URL('../../..', import.meta.url));
const CLI = fileURLToPath(new URL('../../cli/dist/cli.js', import.meta.url));

describe.skipIf(NO_SQLITE)('sparsekit serve', () => {
  it('starts the server with the flags given, serves /health, and stops on SIGTERM with exit code 0', async () => {
    const { dataDir } = dataFolder('serve-');
    const child = spawn(
      process.execPath,
      [CLI, 'serve', '--data', dataDir, '--port', '0', '--workers', '0'],
      {
        cwd: REPO,
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    const { url, line } = await serverAddress(child);
    expect(line).toContain(`(data ${dataDir};`);
    expect((await (await fetch(`${url}/health`)).json()) as unknown).toEqual({
      ok: true,
      mode: 'sqlite',
      workers: 0,
    });
    expect((await fetch(`${url}/jobs`)).status).toBe(401);
    child.kill('SIGTERM');
    const code = await new Promise((d) => child.on('exit', d));
    expect(code).toBe(0);
  });
});
