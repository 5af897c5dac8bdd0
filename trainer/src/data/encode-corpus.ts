/**
 * Pretraining token stream: documents joined GPT-2 style, each preceded by the eos id, so the model
 * sees the same "eos then text" start that fine-tuning examples have (eos doubles as BOS).
 */

import type { Tokenizer } from './tokenizer.js';

/** `[eos, doc0…, eos, doc1…, …, eos]` as one flat id stream. */
export function encodeCorpus(tokenizer: Tokenizer, documents: readonly string[]): Int32Array {
  const ids: number[] = [];
  for (const doc of documents) ids.push(tokenizer.eosId, ...tokenizer.encode(doc));
  ids.push(tokenizer.eosId);
  return Int32Array.from(ids);
}
