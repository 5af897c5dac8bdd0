/**
 * The chat template. A conversation renders as
 *
 *   <eos> <|system|>\n{content}<eos> <|user|>\n{content}<eos> <|assistant|>\n{content}<eos> ...
 *
 * i.e. a leading eos as BOS, then per turn the literal header text `<|role|>\n`, the content, and the
 * eos id. Headers are ordinary text (no extra vocabulary, so it works with the byte and GPT-2
 * tokenizers alike). Loss is on each assistant turn's content tokens and its closing eos only, so
 * generation stops by emitting eos. Pieces are encoded separately, exactly as at generation time.
 */

import type { ChatMessage, ChatRole } from './records.js';
import type { Segment } from './example.js';
import type { Tokenizer } from './tokenizer.js';

/** The header text that opens a turn of `role`. */
export function chatHeader(role: ChatRole): string {
  return `<|${role}|>\n`;
}

/** Segments of a whole conversation (BOS, then header / content / eos per turn). */
export function renderChatSegments(tokenizer: Tokenizer, messages: readonly ChatMessage[]): Segment[] {
  const segments: Segment[] = [{ ids: [tokenizer.eosId], loss: false }];
  for (const m of messages) {
    const isTarget = m.role === 'assistant';
    segments.push({ ids: tokenizer.encode(chatHeader(m.role)), loss: false });
    segments.push({ ids: [...tokenizer.encode(m.content), tokenizer.eosId], loss: isTarget });
  }
  return segments;
}

/** Ids to feed a model so that it writes the next assistant turn: the history plus an open assistant header. */
export function chatGenerationPrompt(tokenizer: Tokenizer, history: readonly ChatMessage[]): number[] {
  const ids: number[] = [];
  for (const s of renderChatSegments(tokenizer, history)) ids.push(...s.ids);
  ids.push(...tokenizer.encode(chatHeader('assistant')));
  return ids;
}
