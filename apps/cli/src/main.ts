// The command table, --help, and the mapping of failures to exit codes: 0 ok, 1 failure, 2 usage.
import { InvalidFormatError, ShapeMismatchError, SparsekitError } from '@sparsekit/core';
import { parseFlags, UsageError } from './args.js';
import type { Command } from './command.js';
import { activationsCommand } from './commands/activations.js';
import { attentionCommand } from './commands/attention.js';
import { benchCommand } from './commands/bench.js';
import { convertCommand } from './commands/convert.js';
import { demoCommand } from './commands/demo.js';
import { evalCommand } from './commands/eval.js';
import { generateCommand } from './commands/generate.js';
import { inspectCommand } from './commands/inspect.js';
import { moeCommand } from './commands/moe/index.js';
import { pruneCommand } from './commands/prune.js';
import { reportCommand } from './commands/report.js';
import { saeCommand } from './commands/sae/index.js';
import { serveCommand } from './commands/serve.js';
import { CliError } from './model-io.js';
import { type Io, Ui } from './ui.js';

export const COMMANDS: readonly Command[] = [
  demoCommand,
  pruneCommand,
  evalCommand,
  reportCommand,
  generateCommand,
  benchCommand,
  inspectCommand,
  convertCommand,
  activationsCommand,
  attentionCommand,
  moeCommand,
  saeCommand,
  serveCommand,
];

const HELP = `sparsekit: prune, evaluate, pack, inspect and benchmark sparse language models.

Usage: sparsekit <command> [flags]

Commands:
${COMMANDS.map((c) => `  ${c.name.padEnd(12)} ${c.summary}`).join('\n')}

Every command takes --help (flags and examples) and --json (machine-readable output on stdout;
progress stays on stderr). Exit codes: 0 ok, 1 failure, 2 usage error.

Examples:
  sparsekit demo
  sparsekit prune --method sparsegpt --pattern 2:4 --pack --out out/tiny-lm-2of4
  sparsekit eval --model out/tiny-lm-2of4`;

/** Run the CLI with `argv` (without node and the script); returns the exit code. */
export async function main(argv: readonly string[], io: Io): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    io.stdout.write(`${HELP}\n`);
    return name === undefined ? 2 : 0;
  }
  const command = COMMANDS.find((c) => c.name === name);
  const json = rest.includes('--json');
  const ui = new Ui(io, json);
  try {
    if (command === undefined) {
      throw new UsageError(`unknown command "${name}"; commands: ${COMMANDS.map((c) => c.name).join(', ')}`);
    }
    const { flags, positionals } = parseFlags(command.name, rest, command.flags, command.positionals ?? 0);
    if (flags.help === true) {
      io.stdout.write(`${command.help}\n`);
      return 0;
    }
    const result = await command.run({ flags, positionals, ui });
    ui.done();
    ui.result(result);
    return 0;
  } catch (error) {
    ui.done();
    return report(error, io, ui);
  }
}

function report(error: unknown, io: Io, ui: Ui): number {
  const write = (message: string, hint?: string, code?: string) => {
    io.stderr.write(`error: ${message}\n${hint === undefined ? '' : `hint: ${hint}\n`}`);
    if (ui.json)
      io.stdout.write(
        `${JSON.stringify({ error: { message, ...(code === undefined ? {} : { code }), ...(hint === undefined ? {} : { hint }) } })}\n`,
      );
  };
  if (error instanceof UsageError) {
    write(
      error.message,
      `run "sparsekit ${error.command ?? ''}${error.command === undefined ? '' : ' '}--help" for usage`,
      'sparsekit/usage',
    );
    return 2;
  }
  if (error instanceof CliError) {
    write(error.message, error.hint);
    return 1;
  }
  // isInstance, not instanceof: errors from a second installed copy of a package count too.
  if (SparsekitError.isInstance(error)) {
    write(error.message, hintFor(error), error.code);
    return 1;
  }
  const e = error as Error;
  write(
    e?.message ?? String(error),
    'this looks like a bug in sparsekit; please report it with the command you ran',
  );
  if (process.env.SPARSEKIT_DEBUG === '1' && e?.stack !== undefined) io.stderr.write(`${e.stack}\n`);
  return 1;
}

/**
 * The hint printed under an error (exported for tests): the error's own hint, or, where the CLI
 * knows better what the user typed, one chosen from its code and fields, never from its wording.
 */
export function hintFor(error: SparsekitError): string | undefined {
  if (InvalidFormatError.isInstance(error) && error.tensor === undefined) {
    switch (error.format) {
      case 'recipe':
        return 'fix the recipe field named above (see "sparsekit prune --help" and the pruners README)';
      case 'checkpoint':
        return 'config.json does not describe these weights: use the config.json saved with them';
      case 'json':
      case 'tokenizer.json':
        return "a JSON file of the model folder is damaged or does not fit: restore it from the model's source";
      case 'file':
        return 'something other than a file sits where the model folder needs one: put the file itself there';
      case 'nm':
        return 'the weights do not follow that N:M pattern: prune to it first (sparsekit prune --pattern N:M)';
    }
  }
  if (ShapeMismatchError.isInstance(error))
    return 'a shape does not match what config.json describes: use the config.json saved with these weights';
  return error.hint;
}
