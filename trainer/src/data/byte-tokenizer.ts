/**
 * Byte-level tokenizer for tiny models and tests: ids 0..255 are the UTF-8 bytes of the text,
 * 256 is eos and 257 is pad, so vocabSize is 258. Any string round-trips exactly (lone surrogates
 * excepted, which UTF-8 cannot represent: they become U+FFFD, as in every UTF-8 encoder).
 */

import { checkIds, type Tokenizer } from './tokenizer.js';

const BYTE_EOS = 256;
const BYTE_PAD = 257;
const SPECIAL_TEXT: Readonly<Record<number, string>> = { [BYTE_EOS]: '<|endoftext|>', [BYTE_PAD]: '<|pad|>' };

/** UTF-8 bytes plus eos (256) and pad (257). */
export class ByteTokenizer implements Tokenizer {
  readonly name = 'byte';
  readonly vocabSize = 258;
  readonly eosId = BYTE_EOS;
  readonly padId = BYTE_PAD;
  private readonly encoder = new TextEncoder();
  private readonly decoder = new TextDecoder('utf-8');

  /** One id per UTF-8 byte of `text`. */
  encode(text: string): number[] {
    return Array.from(this.encoder.encode(text));
  }

  /** Bytes decoded as UTF-8 (invalid sequences become U+FFFD); eos/pad rendered by name. */
  decode(ids: readonly number[]): string {
    checkIds(ids, this.vocabSize, 'ByteTokenizer');
    let out = '';
    let run: number[] = [];
    for (const id of ids) {
      const special = SPECIAL_TEXT[id];
      if (special === undefined) {
        run.push(id);
        continue;
      }
      out += this.decoder.decode(Uint8Array.from(run)) + special;
      run = [];
    }
    return out + this.decoder.decode(Uint8Array.from(run));
  }
}
