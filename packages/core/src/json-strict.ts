// Strictness JSON.parse lacks: duplicate keys (JSON.parse keeps the last silently) and, where a
// format allows only integers, numbers written with a fraction or an exponent ("4.0", "4e0").

/** What `strictJsonIssue` looks for. */
export interface StrictJsonOptions {
  /** Every number must be written as an integer (safetensors headers). */
  integers?: boolean;
}

/**
 * The first violation in JSON `text` (assumed otherwise valid: parse it with JSON.parse too), as a
 * sentence, or undefined. Keys are compared after unescaping, so `"a"` and `"\u0061"` are duplicates.
 */
export function strictJsonIssue(text: string, options: StrictJsonOptions = {}): string | undefined {
  const stack: Array<Set<string> | undefined> = [];
  let i = 0;
  let expectKey = false;
  while (i < text.length) {
    const c = text[i]!;
    if (c === '"') {
      let j = i + 1;
      while (j < text.length && text[j] !== '"') j += text[j] === '\\' ? 2 : 1;
      const raw = text.slice(i, j + 1);
      i = j + 1;
      const keys = stack.at(-1);
      if (expectKey && keys !== undefined) {
        let key: string;
        try {
          key = JSON.parse(raw) as string;
        } catch {
          return `the key ${raw} is not a valid string`;
        }
        if (keys.has(key)) return `the key ${raw} appears twice in one object`;
        keys.add(key);
        expectKey = false;
      }
      continue;
    }
    if (c === '{') {
      stack.push(new Set());
      expectKey = true;
    } else if (c === '[') stack.push(undefined);
    else if (c === '}' || c === ']') stack.pop();
    else if (c === ',') expectKey = stack.at(-1) !== undefined;
    else if (c === '-' || (c >= '0' && c <= '9')) {
      let j = i + 1;
      while (j < text.length && /[0-9eE.+-]/.test(text[j]!)) j++;
      const number = text.slice(i, j);
      if (options.integers === true && /[.eE]/.test(number))
        return `the number ${number} is not written as an integer`;
      i = j;
      continue;
    }
    i++;
  }
  return undefined;
}

/** Lone UTF-16 surrogates (not valid Unicode text: a name holding one cannot round-trip as UTF-8). */
export function hasLoneSurrogate(text: string): boolean {
  return /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/.test(text);
}
