/** The one place that maps a tokenizer name to an implementation. */

import { ByteTokenizer } from './byte-tokenizer.js';
import { Gpt2BpeTokenizer } from './gpt2-bpe-tokenizer.js';
import type { Tokenizer, TokenizerName } from './tokenizer.js';

/** A fresh tokenizer for `name` (GPT-2 ranks are shared across instances). */
export function createTokenizer(name: TokenizerName): Tokenizer {
  switch (name) {
    case 'byte':
      return new ByteTokenizer();
    case 'gpt2':
      return new Gpt2BpeTokenizer();
  }
}
