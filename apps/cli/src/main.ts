// The command table, --help, and the mapping of failures to exit codes: 0 ok, 1 failure, 2 usage.
import {
  InvalidArgumentError,
  InvalidFormatError,
  IOError,
  NonFiniteError,
  SafetensorsError,
  ShapeMismatchError,
  SparsekitError,
} from '@sparsekit/core';
import { parseFlags, UsageError } from './args.js';
import type { Command } from './command.js';
import { benchCommand } from './commands/bench.js';
import { convertCommand } from './commands/convert.js';
import { demoCommand } from './commands/demo.js';
import { evalCommand } from './commands/eval.js';
import { generateCommand } from './commands/generate.js';
import { inspectCommand } from './commands/inspect.js';
import { pruneCommand } from './commands/prune.js';
import { CliError } from './model-io.js';
import { type Io, Ui } from './ui.js';

export const COMMANDS: readonly Command[] = [
  demoCommand,
  pruneCommand,
  evalCommand,
  generateCommand,
  benchCommand,
  inspectCommand,
  convertCommand,
];

const HELP = `sparsekit: prune, evaluate, pack, inspect and benchmark sparse language models.

Usage: sparsekit <command> [flags]

Commands:
${COMMANDS.map((c) => `  ${c.name.padEnd(10)} ${c.summary}`).join('\n')}

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
  const write = (message: string, hint?: string) => {
    io.stderr.write(`error: ${message}\n${hint === undefined ? '' : `hint: ${hint}\n`}`);
    if (ui.json)
      io.stdout.write(`${JSON.stringify({ error: { message, ...(hint === undefined ? {} : { hint }) } })}\n`);
  };
  if (error instanceof UsageError) {
    write(
      error.message,
      `run "sparsekit ${error.command ?? ''}${error.command === undefined ? '' : ' '}--help" for usage`,
    );
    return 2;
  }
  if (error instanceof CliError) {
    write(error.message, error.hint);
    return 1;
  }
  if (error instanceof SparsekitError) {
    write(error.message, hintFor(error));
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

/** The hint printed under an error, from its class, fields and cause (exported for tests). */
export function hintFor(error: SparsekitError): string | undefined {
  // Chosen from the error's class and fields (which format, which file), not from its wording.
  if (error instanceof SafetensorsError)
    return 'the weights file is damaged or not safetensors: re-download the model or save it again';
  if (error instanceof InvalidFormatError) {
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
        if (!error.reason.startsWith('stored matrix'))
          return 'the weights do not follow that N:M pattern: prune to it first (sparsekit prune --pattern N:M)';
    }
    if (error.reason.startsWith('stored matrix'))
      return 'a packed layer of the weights file is damaged: save the model again';
  }
  if (error instanceof InvalidFormatError) return 'the data does not fit the format named above';
  if (error instanceof ShapeMismatchError)
    return 'a shape does not match what config.json describes: use the config.json saved with these weights';
  if (error instanceof NonFiniteError)
    return 'the weights or activations hold NaN or Inf: check the checkpoint';
  if (error instanceof IOError) {
    // The system's reason, from the error's cause (its errno code), not from the message.
    const code = (error.cause as { code?: unknown } | undefined)?.code;
    if (code === 'ENOSPC' || code === 'EDQUOT')
      return 'the disk (or quota) is full: free some space or write elsewhere';
    if (code === 'EACCES' || code === 'EPERM')
      return 'permission denied: check the ownership and mode of the path';
    if (code === 'EROFS') return 'the file system is read-only: write elsewhere';
    if (code === 'ELOOP') return 'a symbolic link loops: fix or remove it';
    return 'check that the path exists and is readable';
  }
  if (error.code === 'UNSUPPORTED_MODEL')
    return 'supported model types: gpt2, opt, llama (see the models README)';
  if (error.code === 'MISSING_TENSOR') return 'the checkpoint is incomplete: re-download or save it again';
  if (error.code === 'TOKENIZER_TIMEOUT')
    return "the tokenizer.json is pathologically slow on this text (a hostile or broken pattern): restore it from the model's source";
  if (error instanceof InvalidArgumentError) return 'change the value named above and run again';
  return undefined;
}
