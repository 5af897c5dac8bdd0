/**
 * A symbolic, code-like task over short letter strings: `rev abc =` → ` cba` (reverse),
 * `sort dbca =` → ` abcd` (sort letters), `rot abz =` → ` bca` (shift each letter by one within
 * the alphabet). Difficulty: string length and alphabet size.
 */

import { z } from 'zod';
import type { Rng } from '../../rng.js';
import { buildProblem, type SyntheticProblem } from './problem.js';

/** The operations of the symbolic task. */
export const SYMBOLIC_OPS = ['rev', 'sort', 'rot'] as const;

/** One symbolic operation. */
export type SymbolicOp = (typeof SYMBOLIC_OPS)[number];

/** Options of the symbolic task. */
export const SymbolicOptionsSchema = z
  .strictObject({
    ops: z
      .array(z.enum(SYMBOLIC_OPS))
      .min(1)
      .default([...SYMBOLIC_OPS]),
    minLength: z.number().int().min(1).max(32).default(2),
    maxLength: z.number().int().min(1).max(32).default(5),
    /** Letters used: the first `alphabet` letters of a..z. */
    alphabet: z.number().int().min(2).max(26).default(8),
  })
  .refine((o) => o.minLength <= o.maxLength, { error: 'minLength must be ≤ maxLength' });

/** Resolved symbolic options. */
export type SymbolicOptions = z.infer<typeof SymbolicOptionsSchema>;

/** The result of applying `op` to `word` over an alphabet of `alphabet` letters (the reference semantics). */
export function applySymbolicOp(op: SymbolicOp, word: string, alphabet: number): string {
  const letters = Array.from(word);
  switch (op) {
    case 'rev':
      return letters.reverse().join('');
    case 'sort':
      return letters.sort().join('');
    case 'rot':
      return letters.map((c) => String.fromCharCode(97 + ((c.charCodeAt(0) - 97 + 1) % alphabet))).join('');
  }
}

/** Draw one symbolic problem from `rng`. */
export function symbolicProblem(rng: Rng, options: SymbolicOptions): SyntheticProblem {
  const op = options.ops[rng.nextInt(options.ops.length)]!;
  const length = options.minLength + rng.nextInt(options.maxLength - options.minLength + 1);
  let word = '';
  for (let i = 0; i < length; i++) word += String.fromCharCode(97 + rng.nextInt(options.alphabet));
  return buildProblem(`${op} ${word} =`, applySymbolicOp(op, word, options.alphabet));
}
