// Result files, written atomically (a temporary file, then a rename), so a reader never sees half.
import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';

/** Write `text` to `path` atomically; creates the folder. */
export function writeTextAtomic(path: string, text: string): void {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(`${path}.tmp`, text);
  renameSync(`${path}.tmp`, path);
}

/** Write `value` as JSON to `path` atomically; creates the folder. */
export function writeJsonAtomic(path: string, value: unknown): void {
  writeTextAtomic(path, `${JSON.stringify(value, null, 2)}\n`);
}

/** A benchmark target and whether the run met it. */
export interface TargetCheck {
  target: string;
  measured: string;
  met: boolean;
}

/**
 * The end of a benchmark run: print its table (and its target), then write `{ machine, command,
 * ...data, target }` as JSON to `outPath` and the table as Markdown beside it (`.md`), atomically.
 */
export function reportResults(options: {
  outPath: string;
  /** The script as run, e.g. 'node build/bench/decode.js' (its arguments are added). */
  script: string;
  table: string;
  target?: TargetCheck | undefined;
  data: Record<string, unknown>;
  machine: unknown;
}): void {
  const { outPath, table, target } = options;
  console.log(`\n${table}\n`);
  if (target !== undefined)
    console.log(`target: ${target.target}: ${target.measured} (${target.met ? 'met' : 'missed'})`);
  writeJsonAtomic(outPath, {
    machine: options.machine,
    command: `${options.script} ${process.argv.slice(2).join(' ')}`.trim(),
    ...options.data,
    ...(target === undefined ? {} : { target }),
  });
  writeTextAtomic(outPath.replace(/\.json$/, '.md'), `${table}\n`);
}
