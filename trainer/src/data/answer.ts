/**
 * Reading answers back from greedy generation and scoring them. Generation of an answer stops at
 * the first eos id or the first newline, whichever comes first (completions are single-line and
 * end with eos in training); the text before it, whitespace-normalised, is the answer.
 */

import type { Tokenizer } from './tokenizer.js';

/** Trim and collapse every whitespace run to one space. */
export function normalizeAnswer(text: string): string {
  return text.trim().replace(/\s+/g, ' ');
}

/** Equality after normalizeAnswer on both sides. */
export function exactMatch(prediction: string, reference: string): boolean {
  return normalizeAnswer(prediction) === normalizeAnswer(reference);
}

/** True once `generated` (ids after the prompt) holds an eos or its text holds a newline: greedy decoding may stop. */
export function generationDone(tokenizer: Tokenizer, generated: readonly number[]): boolean {
  return generated.includes(tokenizer.eosId) || tokenizer.decode(generated).includes('\n');
}

/** The answer in `generated` (ids after the prompt): text before the first eos, cut at the first newline, normalised. */
export function extractAnswer(tokenizer: Tokenizer, generated: readonly number[]): string {
  const eos = generated.indexOf(tokenizer.eosId);
  const text = tokenizer.decode(eos < 0 ? generated : generated.slice(0, eos));
  const newline = text.indexOf('\n');
  return normalizeAnswer(newline < 0 ? text : text.slice(0, newline));
}
