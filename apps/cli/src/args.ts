// Flags -> typed values, with usage errors (exit code 2) that say which flag and what it accepts.
import { parseArgs } from 'node:util';

/** A mistake in how the command was called: exit code 2, with the command's --help pointed at. */
export class UsageError extends Error {
  constructor(
    message: string,
    readonly command?: string,
  ) {
    super(message);
    this.name = 'UsageError';
  }
}

export type FlagSpec = Record<string, { type: 'string' | 'boolean'; short?: string; multiple?: boolean }>;

export type Flags = Record<string, string | boolean | string[] | undefined>;

/** Parse `argv` against `spec` (plus --help and --json); unknown flags and stray words are usage errors. */
export function parseFlags(
  command: string,
  argv: readonly string[],
  spec: FlagSpec,
  positionals = 0,
): {
  flags: Flags;
  positionals: string[];
} {
  try {
    const parsed = parseArgs({
      args: [...argv],
      options: { ...spec, help: { type: 'boolean', short: 'h' }, json: { type: 'boolean' } },
      allowPositionals: true,
      strict: true,
    });
    if (parsed.positionals.length > positionals && !parsed.values.help) {
      throw new UsageError(`unexpected argument "${parsed.positionals[positionals]}"`, command);
    }
    return { flags: parsed.values as Flags, positionals: parsed.positionals };
  } catch (error) {
    if (error instanceof UsageError) throw error;
    // node:util's messages name the flag: "Unknown option '--x'", "Option '--model <value>' argument missing".
    throw new UsageError((error as Error).message.replace(/\. To specify a positional.*$/s, ''), command);
  }
}

export function stringFlag(flags: Flags, name: string): string | undefined {
  const v = flags[name];
  return typeof v === 'string' ? v : undefined;
}

export function requireFlag(command: string, flags: Flags, name: string, hint: string): string {
  const v = stringFlag(flags, name);
  if (v === undefined) throw new UsageError(`--${name} is required (${hint})`, command);
  return v;
}

export function numberFlag(
  command: string,
  flags: Flags,
  name: string,
  fallback: number,
  check: { min?: number; max?: number; integer?: boolean; below?: number } = {},
): number {
  const raw = stringFlag(flags, name);
  if (raw === undefined) return fallback;
  const v = Number(raw);
  const bad =
    raw.trim() === '' ||
    !Number.isFinite(v) ||
    (check.integer === true && !Number.isInteger(v)) ||
    (check.min !== undefined && v < check.min) ||
    (check.max !== undefined && v > check.max) ||
    (check.below !== undefined && v >= check.below);
  if (bad) {
    const range = [
      check.integer ? 'an integer' : 'a number',
      check.min === undefined ? '' : `>= ${check.min}`,
      check.max === undefined ? '' : `<= ${check.max}`,
      check.below === undefined ? '' : `< ${check.below}`,
    ]
      .filter((s) => s !== '')
      .join(' ');
    throw new UsageError(`--${name} must be ${range}, got "${raw}"`, command);
  }
  return v;
}

/** "2:4" -> { n: 2, m: 4 } (N kept of every M). */
export function patternFlag(command: string, raw: string): { n: number; m: number } {
  const match = /^(\d+):(\d+)$/.exec(raw.trim());
  if (match === null) throw new UsageError(`--pattern must look like N:M (e.g. 2:4), got "${raw}"`, command);
  const [n, m] = [Number(match[1]), Number(match[2])];
  if (n < 1 || n >= m)
    throw new UsageError(`--pattern ${raw}: N must be in [1, M) (N kept of every M)`, command);
  return { n, m };
}

export function choiceFlag<T extends string>(
  command: string,
  flags: Flags,
  name: string,
  choices: readonly T[],
  fallback: T,
): T {
  const raw = stringFlag(flags, name);
  if (raw === undefined) return fallback;
  if (!(choices as readonly string[]).includes(raw)) {
    throw new UsageError(`--${name} must be one of ${choices.join(', ')}; got "${raw}"`, command);
  }
  return raw as T;
}

/** The action of a command with subcommands (its first positional), or a usage error naming them. */
export function actionOf<T extends string>(
  command: string,
  positionals: readonly string[],
  actions: readonly T[],
): T {
  const action = positionals[0];
  if (!(actions as readonly (string | undefined)[]).includes(action))
    throw new UsageError(
      action === undefined
        ? `say what to do: ${actions.join(', ')}`
        : `unknown action "${action}"; use ${actions.join(', ')}`,
      command,
    );
  return action as T;
}
