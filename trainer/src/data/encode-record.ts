/**
 * Turn a parsed record into a training example, and a prompt into the ids a model is fed at
 * generation time; both share one rendering so training and evaluation see the same format.
 * Prompt/completion renders as `<eos> prompt completion <eos>` with loss on completion + eos.
 */

import { renderChatSegments } from './chat-template.js';
import { buildExample, type ExampleResult, type Segment } from './example.js';
import { isChatRecord, type DataRecord } from './records.js';
import type { Tokenizer } from './tokenizer.js';

/** Tokenize `record` into an example of at most `maxSeqLen` tokens (see example.ts for truncation). */
export function encodeRecord(tokenizer: Tokenizer, record: DataRecord, maxSeqLen: number): ExampleResult {
  if (isChatRecord(record)) {
    for (const [i, m] of record.messages.entries()) {
      if (m.role === 'assistant' && tokenizer.encode(m.content).length === 0) {
        return { ok: false, kind: 'invalid', reason: `"messages[${i}].content" has no tokens (assistant turns must not be empty)` };
      }
    }
    return buildExample(renderChatSegments(tokenizer, record.messages), maxSeqLen);
  }
  const completion = tokenizer.encode(record.completion);
  if (completion.length === 0) return { ok: false, kind: 'invalid', reason: '"completion" has no tokens' };
  const segments: Segment[] = [
    { ids: [tokenizer.eosId, ...tokenizer.encode(record.prompt)], loss: false },
    { ids: [...completion, tokenizer.eosId], loss: true },
  ];
  return buildExample(segments, maxSeqLen);
}

/** Ids to feed a model for a prompt/completion prompt: `<eos>` (BOS) followed by the prompt's tokens. */
export function promptIds(tokenizer: Tokenizer, prompt: string): number[] {
  return [tokenizer.eosId, ...tokenizer.encode(prompt)];
}
