// One Markdown table writer for every benchmark's printed and saved tables.

/** A Markdown table (header, then rows of cells; cells are written as given). */
export function markdownTable(header: readonly string[], rows: ReadonlyArray<readonly string[]>): string {
  const line = (cells: readonly string[]) => `| ${cells.join(' | ')} |`;
  return [line(header), line(header.map(() => '---')), ...rows.map(line)].join('\n');
}

/** `x` as a ratio with two decimals ("3.41x"), or "-" when it is not finite. */
export function ratio(x: number): string {
  return Number.isFinite(x) ? `${x.toFixed(2)}x` : '-';
}
