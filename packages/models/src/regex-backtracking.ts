// A conservative, syntactic check for regular expressions that can backtrack exponentially.
//
// A JavaScript regex cannot be interrupted once it runs, so a tokenizer.json pattern such as
// `(a|aa)+$` would hold `encode` for minutes on a few dozen characters. Exponential backtracking
// needs a repeated group that can match the same text in more than one way: a variable quantifier
// inside it (`(a+)+`, `(\w+\s?)*`), or alternatives that can start with the same character
// (`(a|aa)+`, `(\s|\S)*`). Both are refused here. The check over-approximates: character sets it
// cannot enumerate (`\p{L}`, `\w`, `.`, negated classes) count as overlapping everything, so a
// harmless pattern of that shape is refused too. The patterns real tokenizers use (GPT-2, cl100k,
// o200k, Llama 3, Qwen2, DeepSeek, BLOOM) repeat only single atoms and pass.
//
// The syntax read is Oniguruma's, the dialect tokenizer.json patterns are written in (nested
// classes, `(?i:...)`, possessive quantifiers, `\x{...}`), which covers the JavaScript syntax too.

/** Deepest group nesting the check reads (a deeper pattern is refused rather than recursed into). */
export const MAX_REGEX_NESTING = 256;

/** Code point ranges [lo, hi]; `undefined` when the set is not known (treated as "any character"). */
type CharSet = Array<[number, number]> | undefined;

type Atom =
  | { kind: 'chars'; set: CharSet }
  | { kind: 'empty' }
  | { kind: 'group'; alternatives: Term[][]; zeroWidth: boolean };

interface Term {
  atom: Atom;
  min: number;
  max: number;
}

class Refusal extends Error {}

const ESCAPE_CODES: Record<string, number> = { n: 10, t: 9, r: 13, f: 12, v: 11, a: 7, e: 27, '0': 0 };
const SET_ESCAPES = new Set(['d', 'D', 'w', 'W', 's', 'S', 'h', 'H', 'N', 'O', 'X', 'R', 'p', 'P']);
const ZERO_WIDTH_ESCAPES = new Set(['b', 'B', 'A', 'z', 'Z', 'G', 'K', 'y', 'Y']);

class Parser {
  private pos = 0;
  private ignoreCase = false;

  constructor(private readonly src: string) {}

  parse(): Term[][] {
    const alternatives = this.alternation(0);
    if (this.pos < this.src.length) throw new Refusal(`an unmatched ')' at index ${this.pos}`);
    return alternatives;
  }

  private peek(offset = 0): string | undefined {
    return this.src[this.pos + offset];
  }

  private alternation(depth: number): Term[][] {
    if (depth > MAX_REGEX_NESTING) throw new Refusal(`groups nested more than ${MAX_REGEX_NESTING} deep`);
    const outerCase = this.ignoreCase;
    const alternatives: Term[][] = [this.sequence(depth)];
    while (this.peek() === '|') {
      this.pos++;
      alternatives.push(this.sequence(depth));
    }
    this.ignoreCase = outerCase; // an inline (?i) ends with its group
    return alternatives;
  }

  private sequence(depth: number): Term[] {
    const terms: Term[] = [];
    for (let c = this.peek(); c !== undefined && c !== '|' && c !== ')'; c = this.peek()) {
      let term: Term = { atom: this.atom(depth), min: 1, max: 1 };
      for (let q = this.quantifier(); q !== undefined; q = this.quantifier()) {
        // `a{2}{3}` or `a**`: the second quantifier repeats the first one's term.
        term =
          term.min === 1 && term.max === 1
            ? { atom: term.atom, ...q }
            : { atom: { kind: 'group', alternatives: [[term]], zeroWidth: false }, ...q };
      }
      terms.push(term);
    }
    return terms;
  }

  private quantifier(): { min: number; max: number } | undefined {
    const c = this.peek();
    let q: { min: number; max: number } | undefined;
    if (c === '*') q = { min: 0, max: Number.POSITIVE_INFINITY };
    else if (c === '+') q = { min: 1, max: Number.POSITIVE_INFINITY };
    else if (c === '?') q = { min: 0, max: 1 };
    if (q !== undefined) this.pos++;
    else if (c === '{') {
      const m = /^\{(\d*)(,?)(\d*)\}/.exec(this.src.slice(this.pos, this.pos + 40));
      if (m === null || (m[1] === '' && m[3] === '')) return undefined; // a literal '{' (Oniguruma)
      const min = m[1] === '' ? 0 : Number(m[1]);
      const max = m[2] === '' ? min : m[3] === '' ? Number.POSITIVE_INFINITY : Number(m[3]);
      q = { min, max };
      this.pos += m[0].length;
    } else return undefined;
    // Lazy (`*?`) and possessive (`*+`, Oniguruma) forms repeat alike for this check.
    if (this.peek() === '?' || this.peek() === '+') this.pos++;
    return q;
  }

  private atom(depth: number): Atom {
    const c = this.src.codePointAt(this.pos)!;
    const ch = String.fromCodePoint(c);
    if (ch === '(') return this.group(depth);
    if (ch === '[') {
      this.pos++;
      return { kind: 'chars', set: this.foldCase(this.characterClass(depth)) };
    }
    if (ch === '\\') return this.escape();
    this.pos += ch.length;
    if (ch === '.') return { kind: 'chars', set: undefined };
    if (ch === '^' || ch === '$') return { kind: 'empty' };
    return { kind: 'chars', set: this.foldCase([[c, c]]) };
  }

  private group(depth: number): Atom {
    const rest = this.src.slice(this.pos, this.pos + 40);
    if (rest.startsWith('(?#')) {
      const end = this.src.indexOf(')', this.pos);
      if (end < 0) throw new Refusal('an unterminated comment group');
      this.pos = end + 1;
      return { kind: 'empty' };
    }
    const flags = /^\(\?([imxWDSPLa-]*)(:|\))/.exec(rest);
    if (flags !== null && flags[1] !== '') {
      const on = flags[1]!.split('-')[0]!;
      const off = flags[1]!.split('-')[1] ?? '';
      const ignoreCase = on.includes('i') ? true : off.includes('i') ? false : this.ignoreCase;
      this.pos += flags[0].length;
      if (flags[2] === ')') {
        this.ignoreCase = ignoreCase; // inline: applies to the rest of the enclosing group
        return { kind: 'empty' };
      }
      const outer = this.ignoreCase;
      this.ignoreCase = ignoreCase;
      const alternatives = this.alternation(depth + 1);
      this.ignoreCase = outer;
      this.close();
      return { kind: 'group', alternatives, zeroWidth: false };
    }
    const prefix = /^\((?:\?(?:<=|<!|=|!|:|>|<[A-Za-z_]\w*>|P<[A-Za-z_]\w*>|'[A-Za-z_]\w*'))?/.exec(rest)![0];
    if (prefix === '(' && rest.startsWith('(?'))
      throw new Refusal(`an unsupported group '${rest.slice(0, 4)}'`);
    this.pos += prefix.length;
    const zeroWidth = /^\(\?(?:<=|<!|=|!)$/.test(prefix);
    const alternatives = this.alternation(depth + 1);
    this.close();
    return { kind: 'group', alternatives, zeroWidth };
  }

  private close(): void {
    if (this.peek() !== ')') throw new Refusal('an unterminated group');
    this.pos++;
  }

  /** After a backslash outside a class. */
  private escape(): Atom {
    const code = this.escapedCode();
    if (code === 'zero-width') return { kind: 'empty' };
    if (code === undefined) return { kind: 'chars', set: undefined };
    return { kind: 'chars', set: this.foldCase([[code, code]]) };
  }

  /** Reads `\...`: a code point, `undefined` for a set (`\d`, `\p{L}`, backreferences), or zero-width. */
  private escapedCode(inClass = false): number | undefined | 'zero-width' {
    const next = this.src[this.pos + 1];
    if (next === undefined) throw new Refusal('a trailing backslash');
    const rest = this.src.slice(this.pos, this.pos + 16);
    if (next === 'g') throw new Refusal('a subexpression call (\\g), which can recurse');
    const braced = /^\\[pPxuo]\{[^}]*\}/.exec(rest) ?? /^\\[pP]\^?[A-Za-z]/.exec(rest);
    if (braced !== null) {
      this.pos += braced[0].length;
      if (next === 'p' || next === 'P') return undefined;
      const digits = braced[0].slice(3, -1);
      return Number.parseInt(digits, next === 'o' ? 8 : 16);
    }
    const hex = /^\\(?:x([0-9A-Fa-f]{1,2})|u([0-9A-Fa-f]{4}))/.exec(rest);
    if (hex !== null) {
      this.pos += hex[0].length;
      return Number.parseInt(hex[1] ?? hex[2]!, 16);
    }
    const control = /^\\c([A-Za-z])/.exec(rest);
    if (control !== null) {
      this.pos += 3;
      return control[1]!.toUpperCase().charCodeAt(0) - 64;
    }
    const name = /^\\k<[^>]*>/.exec(rest);
    if (name !== null) {
      this.pos += name[0].length;
      return undefined; // a backreference matches text not known here
    }
    if (/[1-9]/.test(next)) {
      const digits = /^\\\d+/.exec(rest)![0];
      this.pos += digits.length;
      return undefined; // a backreference, or an octal escape: either way, not a fixed character
    }
    const ch = String.fromCodePoint(this.src.codePointAt(this.pos + 1)!);
    this.pos += 1 + ch.length;
    if (ch in ESCAPE_CODES) return ESCAPE_CODES[ch];
    if (SET_ESCAPES.has(ch)) return undefined;
    if (!inClass && ZERO_WIDTH_ESCAPES.has(ch)) return 'zero-width';
    if (inClass && ch === 'b') return 8; // backspace inside a class
    return ch.codePointAt(0);
  }

  /** After '[': a class (Oniguruma: classes nest, `&&` intersects). A superset is returned. */
  private characterClass(depth: number): CharSet {
    if (depth > MAX_REGEX_NESTING) throw new Refusal(`classes nested more than ${MAX_REGEX_NESTING} deep`);
    let negated = false;
    if (this.peek() === '^') {
      negated = true;
      this.pos++;
    }
    let set: CharSet = [];
    let first = true;
    for (;;) {
      const c = this.peek();
      if (c === undefined) throw new Refusal('an unterminated character class');
      if (c === ']' && !first) {
        this.pos++;
        break;
      }
      first = false;
      let lo: number | undefined;
      if (c === '[' && this.src.startsWith('[:', this.pos)) {
        const end = this.src.indexOf(':]', this.pos + 2);
        if (end < 0) throw new Refusal('an unterminated POSIX bracket');
        this.pos = end + 2;
        set = undefined;
        continue;
      }
      if (c === '[') {
        this.pos++;
        const inner = this.characterClass(depth + 1);
        set = set === undefined || inner === undefined ? undefined : [...set, ...inner];
        continue;
      }
      if (c === '&' && this.peek(1) === '&') {
        this.pos += 2; // an intersection is within the union read so far
        continue;
      }
      if (c === '\\') {
        const code = this.escapedCode(true);
        if (code === undefined || code === 'zero-width') {
          set = undefined;
          continue;
        }
        lo = code;
      } else {
        lo = this.src.codePointAt(this.pos)!;
        this.pos += String.fromCodePoint(lo).length;
      }
      let hi = lo;
      if (this.peek() === '-' && this.peek(1) !== ']' && this.peek(1) !== undefined) {
        this.pos++;
        if (this.peek() === '\\') {
          const code = this.escapedCode(true);
          if (code === undefined || code === 'zero-width') {
            set = undefined;
            continue;
          }
          hi = code;
        } else if (this.peek() === '[') {
          set = undefined; // '-' before a nested class: a literal '-', then the class
          continue;
        } else {
          hi = this.src.codePointAt(this.pos)!;
          this.pos += String.fromCodePoint(hi).length;
        }
      }
      if (set !== undefined) set.push([Math.min(lo, hi), Math.max(lo, hi)]);
    }
    return negated ? undefined : set;
  }

  /** Under (?i), a set with its ASCII letters in both cases; other cased text is not tracked. */
  private foldCase(set: CharSet): CharSet {
    if (!this.ignoreCase || set === undefined) return set;
    const out: Array<[number, number]> = [];
    for (const [lo, hi] of set) {
      if (hi > 0x7f) return undefined;
      out.push([lo, hi]);
      for (const [a, z, shift] of [
        [0x41, 0x5a, 32],
        [0x61, 0x7a, -32],
      ] as const) {
        const l = Math.max(lo, a);
        const h = Math.min(hi, z);
        if (l <= h) out.push([l + shift, h + shift]);
      }
    }
    return out;
  }
}

function overlap(a: CharSet, b: CharSet): boolean {
  if (a === undefined || b === undefined)
    return a !== undefined ? a.length > 0 : b === undefined || b.length > 0;
  return a.some(([al, ah]) => b.some(([bl, bh]) => al <= bh && bl <= ah));
}

function union(a: CharSet, b: CharSet): CharSet {
  return a === undefined || b === undefined ? undefined : [...a, ...b];
}

/** The characters a sequence can start with, and whether it can match the empty string. */
function firstOf(terms: readonly Term[]): { set: CharSet; nullable: boolean } {
  let set: CharSet = [];
  for (const term of terms) {
    if (term.max === 0) continue;
    const f = firstOfAtom(term.atom);
    set = union(set, f.set);
    if (!f.nullable && term.min > 0) return { set, nullable: false };
  }
  return { set, nullable: true };
}

function firstOfAtom(atom: Atom): { set: CharSet; nullable: boolean } {
  if (atom.kind === 'chars') return { set: atom.set, nullable: false };
  if (atom.kind === 'empty' || atom.zeroWidth) return { set: [], nullable: true };
  let set: CharSet = [];
  let nullable = false;
  for (const alternative of atom.alternatives) {
    const f = firstOf(alternative);
    set = union(set, f.set);
    nullable ||= f.nullable;
  }
  return { set, nullable };
}

/** Whether a term anywhere inside these alternatives has a variable count (`*`, `+`, `?`, `{1,3}`). */
function hasVariableQuantifier(alternatives: readonly Term[][]): boolean {
  return alternatives.some((terms) =>
    terms.some(
      (t) =>
        t.min !== t.max ||
        (t.atom.kind === 'group' &&
          t.atom.alternatives.length > 0 &&
          hasVariableQuantifier(t.atom.alternatives)),
    ),
  );
}

function check(alternatives: readonly Term[][]): string | undefined {
  for (const terms of alternatives) {
    for (const term of terms) {
      if (term.atom.kind !== 'group') continue;
      const inner = term.atom.alternatives;
      if (term.max > 1) {
        if (hasVariableQuantifier(inner))
          return 'a repeated group holds a quantifier of its own (nested quantifiers, as in (a+)+)';
        const firsts = inner.map(firstOf);
        if (inner.length > 1 && firsts.some((f) => f.nullable))
          return 'a repeated group has an alternative that can match nothing';
        for (let i = 0; i < firsts.length; i++)
          for (let j = i + 1; j < firsts.length; j++)
            if (overlap(firsts[i]!.set, firsts[j]!.set))
              return 'a repeated group has alternatives that can start with the same character (as in (a|aa)+)';
      }
      const nested = check(inner);
      if (nested !== undefined) return nested;
    }
  }
  return undefined;
}

/**
 * Why `pattern` may backtrack exponentially (a sentence), or undefined when the check finds no such
 * construct. Syntax it cannot read is a reason too: a pattern that is not understood is not trusted.
 */
export function backtrackingIssue(pattern: string): string | undefined {
  try {
    return check(new Parser(pattern).parse());
  } catch (error) {
    if (error instanceof Refusal) return `it holds ${error.message}, which this check does not read`;
    throw error;
  }
}
