import type { FlagSpec, Flags } from './args.js';
import type { Ui } from './ui.js';

export interface CommandContext {
  flags: Flags;
  positionals: string[];
  ui: Ui;
}

/** One subcommand: its flags, its --help text (with examples), and what it does. */
export interface Command {
  name: string;
  summary: string;
  /** Usage, flags and examples, printed by --help. */
  help: string;
  flags: FlagSpec;
  positionals?: number;
  /** Prints human output through `ui`; returns the result printed by --json. */
  run(context: CommandContext): Promise<unknown>;
}
