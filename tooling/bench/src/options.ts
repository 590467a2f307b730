// Command-line options of every benchmark and script.

/** The value after `--name` on the command line, or `fallback`. */
export function option(name: string, fallback: string, argv: readonly string[] = process.argv): string {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 && argv[i + 1] !== undefined ? argv[i + 1]! : fallback;
}

/** A numeric option; anything that is not a finite number is refused with the option's name. */
export function numberOption(name: string, fallback: number, argv: readonly string[] = process.argv): number {
  const text = option(name, String(fallback), argv);
  const value = Number(text);
  if (text.trim() === '' || !Number.isFinite(value))
    throw new Error(`--${name} must be a number, got "${text}"`);
  return value;
}

/** Whether `--name` is on the command line. */
export function flag(name: string, argv: readonly string[] = process.argv): boolean {
  return argv.includes(`--${name}`);
}
