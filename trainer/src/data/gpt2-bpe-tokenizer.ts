/**
 * GPT-2 byte-level BPE (Radford et al. 2019) via js-tiktoken, with the GPT-2 ranks shipped inside
 * the npm package (no download at run time). vocabSize 50257; `<|endoftext|>` = 50256 is both eos
 * and pad, as in GPT-2 fine-tuning practice (pad positions are masked out of the loss anyway).
 */

import { Tiktoken } from 'js-tiktoken/lite';
import gpt2Ranks from 'js-tiktoken/ranks/gpt2';
import { checkIds, type Tokenizer } from './tokenizer.js';

const GPT2_EOS = 50256;

// Building the rank table takes ~150 ms and tens of MB, so one instance serves the process.
let shared: Tiktoken | undefined;
function sharedEncoder(): Tiktoken {
  shared ??= new Tiktoken(gpt2Ranks);
  return shared;
}

/** GPT-2 BPE; encode treats `<|endoftext|>` in the text as ordinary characters. */
export class Gpt2BpeTokenizer implements Tokenizer {
  readonly name = 'gpt2';
  readonly vocabSize = 50257;
  readonly eosId = GPT2_EOS;
  readonly padId = GPT2_EOS;
  private readonly enc = sharedEncoder();

  /** BPE ids of `text`; no special tokens are recognised (allowed = disallowed = none). */
  encode(text: string): number[] {
    return this.enc.encode(text, [], []);
  }

  /** Text of `ids`; a multi-byte character split across a cut decodes to U+FFFD. */
  decode(ids: readonly number[]): string {
    checkIds(ids, this.vocabSize, 'Gpt2BpeTokenizer');
    return this.enc.decode([...ids]);
  }
}
