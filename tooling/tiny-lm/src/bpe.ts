// Byte-level BPE as GPT-2 defines it (bytes mapped to printable characters, GPT-2's pre-tokenizer
// regex), trained here and written as a Hugging Face tokenizer.json that @huggingface/tokenizers loads.

/** GPT-2's reversible byte -> character map. */
export function byteToUnicode(): string[] {
  const keep: number[] = [];
  for (let b = 33; b <= 126; b++) keep.push(b);
  for (let b = 161; b <= 172; b++) keep.push(b);
  for (let b = 174; b <= 255; b++) keep.push(b);
  const map: string[] = new Array(256);
  let n = 0;
  for (let b = 0; b < 256; b++) {
    if (keep.includes(b)) map[b] = String.fromCharCode(b);
    else map[b] = String.fromCharCode(256 + n++);
  }
  return map;
}

export const GPT2_PATTERN = /'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+/gu;

/** Pre-tokenize and map bytes to characters: the "words" BPE merges within. */
export function preTokenize(text: string, map: readonly string[]): string[] {
  const encoder = new TextEncoder();
  return (text.match(GPT2_PATTERN) ?? []).map((piece) =>
    Array.from(encoder.encode(piece), (b) => map[b]!).join(''),
  );
}

export interface TrainedBpe {
  vocab: Map<string, number>;
  merges: Array<[string, string]>;
}

/** Learn `vocabSize - 256 - specials` merges from word counts (most frequent pair, ties by first seen). */
export function trainBpe(
  texts: Iterable<string>,
  vocabSize: number,
  specials: readonly string[],
): TrainedBpe {
  const map = byteToUnicode();
  const counts = new Map<string, number>();
  for (const text of texts) for (const w of preTokenize(text, map)) counts.set(w, (counts.get(w) ?? 0) + 1);
  const words = [...counts.entries()].map(([w, c]) => ({ symbols: [...w], count: c }));
  const vocab = new Map<string, number>();
  for (const ch of [...map].sort((a, b) => a.codePointAt(0)! - b.codePointAt(0)!)) vocab.set(ch, vocab.size);
  const merges: Array<[string, string]> = [];
  const target = vocabSize - specials.length;
  while (vocab.size < target) {
    const pairs = new Map<string, number>();
    for (const { symbols, count } of words) {
      for (let i = 0; i + 1 < symbols.length; i++) {
        const key = `${symbols[i]}\u0000${symbols[i + 1]}`;
        pairs.set(key, (pairs.get(key) ?? 0) + count);
      }
    }
    let best = '';
    let bestCount = 0;
    for (const [key, c] of pairs) {
      if (c > bestCount) {
        best = key;
        bestCount = c;
      }
    }
    if (bestCount < 2) break;
    const [a, b] = best.split('\u0000') as [string, string];
    const merged = a + b;
    merges.push([a, b]);
    vocab.set(merged, vocab.size);
    for (const w of words) {
      const s = w.symbols;
      for (let i = 0; i + 1 < s.length; i++) {
        if (s[i] === a && s[i + 1] === b) s.splice(i, 2, merged);
      }
    }
  }
  for (const sp of specials) vocab.set(sp, vocab.size);
  return { vocab, merges };
}

/** The tokenizer.json of a trained byte-level BPE (GPT-2 style, no normalizer, specials added). */
export function tokenizerJson(bpe: TrainedBpe, specials: readonly string[]): Record<string, unknown> {
  const byteLevel = { add_prefix_space: false, trim_offsets: true, use_regex: true };
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: specials.map((content) => ({
      id: bpe.vocab.get(content),
      content,
      single_word: false,
      lstrip: false,
      rstrip: false,
      normalized: false,
      special: true,
    })),
    normalizer: null,
    pre_tokenizer: { type: 'ByteLevel', ...byteLevel },
    post_processor: null,
    decoder: { type: 'ByteLevel', ...byteLevel },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: '',
      end_of_word_suffix: '',
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: false,
      vocab: Object.fromEntries(bpe.vocab),
      merges: bpe.merges.map(([a, b]) => `${a} ${b}`),
    },
  };
}
