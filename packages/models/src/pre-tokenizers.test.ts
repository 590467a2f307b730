import { describe, expect, it } from 'vitest';
import { digitPieces, whitespacePieces, whitespaceSplitPieces } from './pre-tokenizers.js';

describe("Hugging Face's Unicode pre-tokenizers", () => {
  it('Whitespace keeps words of any script whole (\\w = Alphabetic, M, Nd, Pc, Join_Control)', () => {
    expect(whitespacePieces('Ça va?')).toEqual(['Ça', 'va', '?']);
    expect(whitespacePieces('naïve café, Привет мир!')).toEqual(['naïve', 'café', ',', 'Привет', 'мир', '!']);
    expect(whitespacePieces('हिन्दी और ٣٤ snake_case')).toEqual(['हिन्दी', 'और', '٣٤', 'snake_case']);
    expect(whitespacePieces('東京タワー')).toEqual(['東京タワー']);
    // Join_Control (ZWNJ/ZWJ) and Other_Alphabetic symbols (Ⓐ) are word characters; ½ (No) is not.
    expect(whitespacePieces('می\u200cخواهم Ⓐb 1½')).toEqual(['می\u200cخواهم', 'Ⓐb', '1', '½']);
    expect(whitespacePieces('Hey man!')).toEqual(['Hey', 'man', '!']);
    expect(whitespacePieces('\n')).toEqual([]);
  });

  it('WhitespaceSplit splits on White_Space (NEL included, U+FEFF not)', () => {
    expect(whitespaceSplitPieces('Hey, man, Good?')).toEqual(['Hey,', 'man,', 'Good?']);
    expect(whitespaceSplitPieces('a\u0085b\u3000c\uFEFFd')).toEqual(['a', 'b', 'c\uFEFFd']);
  });

  it('Digits splits numeric characters of any script, in runs or one by one', () => {
    expect(digitPieces('Hey 123 friend!', false)).toEqual(['Hey ', '123', ' friend!']);
    expect(digitPieces('x٣٤5y', false)).toEqual(['x', '٣٤5', 'y']);
    expect(digitPieces('x٣٤5y', true)).toEqual(['x', '٣', '٤', '5', 'y']);
  });
});
