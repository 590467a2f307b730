// Prompt templates as lm-eval writes them: Jinja (through @huggingface/jinja, a small Jinja
// implementation that runs no code), with lm-eval's rules for what a doc_to_* field means: a
// feature name, a template, a literal list or number.
import { Template } from '@huggingface/jinja';
import { InvalidFormatError } from '@sparsekit/core';

export type Doc = Record<string, unknown>;

/** `list.index(x)` is a Python method lm-eval's templates call; the Jinja used here has none. */
const INDEX_CALL = /([A-Za-z_][\w.]*)\.index\(([^()]*)\)/g;

const compiled = new Map<string, Template>();

function compile(source: string, what: string): Template {
  let t = compiled.get(source);
  if (t === undefined) {
    try {
      t = new Template(source.replace(INDEX_CALL, '__index($1, $2)'));
    } catch (error) {
      throw new InvalidFormatError(
        'task config',
        `${what}: not a template this harness reads (${(error as Error).message})`,
      );
    }
    compiled.set(source, t);
  }
  return t;
}

/** A template value as plain JavaScript (the library hands functions its own value objects). */
function plain(v: unknown): unknown {
  const inner = v !== null && typeof v === 'object' && 'value' in v ? (v as { value: unknown }).value : v;
  return Array.isArray(inner) ? inner.map(plain) : inner;
}

function indexOf(list: unknown, value: unknown): number {
  const items = plain(list);
  const wanted = plain(value);
  if (!Array.isArray(items)) throw new Error(`.index() needs a list, got ${typeof items}`);
  const i = items.indexOf(wanted);
  if (i < 0) throw new Error(`${JSON.stringify(value)} is not in the list`);
  return i;
}

/**
 * Render a Jinja template against a document. Trailing newlines are kept (lm-eval renders with
 * keep_trailing_newline), by rendering the source with a sentinel after it.
 */
export function render(source: string, doc: Doc, what = 'template'): string {
  try {
    const out = compile(`${source}\u0000`, what).render({ ...doc, __index: indexOf });
    return out.endsWith('\u0000') ? out.slice(0, -1) : out;
  } catch (error) {
    if (error instanceof InvalidFormatError) throw error;
    throw new InvalidFormatError('task document', `${what}: ${(error as Error).message}`);
  }
}

/**
 * A Python literal as lm-eval's `ast.literal_eval` reads a rendered doc_to_choice / doc_to_target:
 * numbers, strings ('...' or "..."), lists, True / False / None. Throws on anything else.
 */
export function literal(text: string): unknown {
  let i = 0;
  const s = text.trim();
  const fail = (why: string): never => {
    throw new InvalidFormatError('task document', `not a literal (${why}): ${s.slice(0, 80)}`);
  };
  const space = () => {
    while (i < s.length && /\s/.test(s[i]!)) i++;
  };
  const value = (): unknown => {
    space();
    const c = s[i];
    if (c === '[' || c === '(') {
      const close = c === '[' ? ']' : ')';
      i++;
      const out: unknown[] = [];
      space();
      while (s[i] !== close) {
        out.push(value());
        space();
        if (s[i] === ',') {
          i++;
          space();
        } else if (s[i] !== close) fail('expected , or a closing bracket');
      }
      i++;
      return out;
    }
    if (c === "'" || c === '"') {
      i++;
      let out = '';
      while (i < s.length && s[i] !== c) {
        if (s[i] === '\\') {
          const e = s[i + 1];
          out += e === 'n' ? '\n' : e === 't' ? '\t' : (e ?? '');
          i += 2;
        } else out += s[i++];
      }
      if (s[i] !== c) fail('unterminated string');
      i++;
      return out;
    }
    const m = /^(-?\d+(\.\d+)?([eE][-+]?\d+)?|True|False|None|true|false|null)/.exec(s.slice(i));
    if (m === null) return fail('unexpected character');
    i += m[0].length;
    if (m[0] === 'True' || m[0] === 'true') return true;
    if (m[0] === 'False' || m[0] === 'false') return false;
    if (m[0] === 'None' || m[0] === 'null') return null;
    return Number(m[0]);
  };
  const v = value();
  space();
  if (i !== s.length) fail('trailing text');
  return v;
}

const isTemplate = (s: string) => s.includes('{{') || s.includes('{%');

/** doc_to_text: a feature name, or a template (rendered). */
export function docToText(spec: unknown, doc: Doc, what = 'doc_to_text'): string {
  if (typeof spec === 'string') {
    if (!isTemplate(spec) && spec in doc) return String(doc[spec]);
    return render(spec, doc, what);
  }
  if (typeof spec === 'number') return String(spec);
  throw new InvalidFormatError('task config', `${what} must be a feature name or a template`);
}

/** doc_to_choice: a list, a feature holding a list, or a template rendering a list literal. */
export function docToChoice(spec: unknown, doc: Doc): string[] {
  let v: unknown = spec;
  if (typeof spec === 'string') {
    if (!isTemplate(spec) && spec in doc) v = doc[spec];
    else v = literal(render(spec, doc, 'doc_to_choice'));
  }
  if (!Array.isArray(v) || v.length === 0)
    throw new InvalidFormatError('task document', 'doc_to_choice must give a non-empty list of choices');
  return v.map((c) => String(c));
}

/**
 * doc_to_target: an int (a choice index), a feature, or a template; a rendering that is all digits
 * is a choice index when the task has choices (as lm-eval reads it), else the target text.
 */
export function docToTarget(spec: unknown, doc: Doc, hasChoices: boolean): string | number {
  let v: unknown = spec;
  if (typeof spec === 'string') {
    if (!isTemplate(spec) && spec in doc) v = doc[spec];
    else {
      const text = render(spec, doc, 'doc_to_target');
      v = hasChoices && /^\s*\d+\s*$/.test(text) ? Number(text) : text;
    }
  }
  if (typeof v === 'number' && Number.isInteger(v)) return v;
  if (typeof v === 'string') return hasChoices && /^\d+$/.test(v) ? Number(v) : v;
  if (Array.isArray(v) && v.length > 0) return docToTarget(v[0], doc, hasChoices);
  throw new InvalidFormatError(
    'task document',
    `doc_to_target gave ${JSON.stringify(v)}: need a choice index or text`,
  );
}
