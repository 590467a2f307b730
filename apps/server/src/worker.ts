// A worker process, forked by the pool: it runs one job at a time through the `sparsekit` command's
// own entry point (the same code as the command line), with its progress and notes appended to the
// job's log and sent to the pool, and its --json result sent back. It exits when the server goes
// (the IPC channel closes), and a cancel is a signal to this process.
import { appendFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { main } from 'sparsekit';
import type { JobId, ToPool, ToWorker } from './protocol.js';
import { runSweep } from './sweep.js';

/** Most bytes of --json output kept (results larger than this are an error). */
const MAX_STDOUT = 8 << 20;

function send(message: ToPool): void {
  process.send?.(message);
}

/** Run `argv` through the CLI: its exit code and its stdout (the --json result). */
export async function runCommand(
  id: JobId,
  argv: readonly string[],
  log: string,
): Promise<{ code: number; stdout: string }> {
  let stdout = '';
  const out = new Writable({
    write(chunk, _encoding, done) {
      stdout += String(chunk);
      done(stdout.length > MAX_STDOUT ? new Error('the result is larger than 8 MiB') : null);
    },
  });
  let pending = '';
  const err = new Writable({
    write(chunk, _encoding, done) {
      const s = String(chunk);
      appendFileSync(log, s);
      pending += s;
      const lines = pending.split('\n');
      pending = lines.pop() ?? '';
      for (const line of lines) if (line.trim() !== '') send({ type: 'log', id, line });
      done();
    },
  });
  appendFileSync(log, `$ sparsekit ${argv.join(' ')}\n`);
  const code = await main(argv, { stdout: out, stderr: err });
  if (pending.trim() !== '') send({ type: 'log', id, line: pending });
  return { code, stdout };
}

/** The result as a one-row comparison report (charts), beside it; a failure here is only logged. */
async function reportOf(id: JobId, stdout: string, report: { label: string; dir: string }, log: string) {
  const file = join(report.dir, 'result.json');
  writeFileSync(file, stdout);
  const r = await runCommand(
    id,
    ['report', `--input=${report.label}=${file}`, `--out=${join(report.dir, 'report')}`, '--json'],
    log,
  );
  if (r.code !== 0) appendFileSync(log, `(the report could not be made: exit code ${r.code})\n`);
}

process.on('message', (message: ToWorker) => {
  if (message.type !== 'run') return;
  const { id, argv, log } = message;
  const work =
    message.sweep === undefined
      ? runCommand(id, argv, log)
      : runSweep(
          message.sweep,
          (args) => runCommand(id, args, log),
          (line) => send({ type: 'log', id, line }),
        );
  work
    .then(async ({ code, stdout }) => {
      if (code === 0 && message.report !== undefined) await reportOf(id, stdout, message.report, log);
      send({ type: 'done', id, code, stdout });
    })
    .catch((error: Error) => send({ type: 'done', id, code: 1, stdout: '', error: error.message }));
});
process.on('disconnect', () => process.exit(0));
send({ type: 'ready' });
