/**
 * The tokenizer contract shared by data loading, generation and evaluation. Text is always plain:
 * special tokens (eos, pad) are never produced by `encode`, only appended by the data pipeline.
 */

/** Names accepted by createTokenizer and stored in configs and checkpoints. */
export const TOKENIZER_NAMES = ['byte', 'gpt2'] as const;

/** A tokenizer name: `byte` (UTF-8 bytes, tiny vocab) or `gpt2` (GPT-2 BPE, 50257 tokens). */
export type TokenizerName = (typeof TOKENIZER_NAMES)[number];

/** Maps text to token ids and back; ids are in [0, vocabSize). */
export interface Tokenizer {
  /** The name createTokenizer knows it by. */
  readonly name: TokenizerName;
  /** Number of distinct ids, specials included (the model's embedding rows). */
  readonly vocabSize: number;
  /** End-of-sequence id: ends every completion / assistant turn and doubles as BOS. */
  readonly eosId: number;
  /** Padding id used to fill batches; padded positions never carry loss. */
  readonly padId: number;
  /** Plain-text encoding; special-token spellings in `text` are encoded as ordinary text. */
  encode(text: string): number[];
  /** Inverse of encode; special ids are rendered by name (e.g. `<|endoftext|>`); throws RangeError on ids outside the vocab. */
  decode(ids: readonly number[]): string;
}

/** Throws RangeError unless every id is an integer in [0, vocabSize). */
export function checkIds(ids: readonly number[], vocabSize: number, who: string): void {
  for (const id of ids) {
    if (!Number.isInteger(id) || id < 0 || id >= vocabSize) {
      throw new RangeError(`${who}.decode: id ${id} outside [0, ${vocabSize})`);
    }
  }
}
