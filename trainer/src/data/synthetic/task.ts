/**
 * The synthetic task registry: a tagged spec (`{kind, options}`) parsed from config, and problem
 * generation that is a pure function of (seed, task, index).
 */

import { z } from 'zod';
import { ConfigError } from '../../errors.js';
import { deriveSeed, Rng } from '../../rng.js';
import { ArithmeticOptionsSchema, arithmeticProblem } from './arithmetic.js';
import type { SyntheticProblem } from './problem.js';
import { SymbolicOptionsSchema, symbolicProblem } from './symbolic.js';

/** A synthetic task and its options (defaults filled in by parsing). */
export const SyntheticTaskSchema = z.discriminatedUnion('kind', [
  z.strictObject({ kind: z.literal('arithmetic'), options: ArithmeticOptionsSchema.prefault({}) }),
  z.strictObject({ kind: z.literal('symbolic'), options: SymbolicOptionsSchema.prefault({}) }),
]);

/** A resolved synthetic task. */
export type SyntheticTask = z.infer<typeof SyntheticTaskSchema>;
/** A synthetic task as written in config (options optional). */
export type SyntheticTaskInput = z.input<typeof SyntheticTaskSchema>;

/** Parse a task spec; ConfigError naming the offending field. */
export function parseSyntheticTask(input: unknown): SyntheticTask {
  const parsed = SyntheticTaskSchema.safeParse(input);
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0];
  throw new ConfigError(`synthetic task: ${issue === undefined ? 'invalid' : `${issue.path.join('.') || '(root)'}: ${issue.message}`}`);
}

/** Draw one problem of `task` from `rng`. */
export function drawProblem(rng: Rng, task: SyntheticTask): SyntheticProblem {
  switch (task.kind) {
    case 'arithmetic':
      return arithmeticProblem(rng, task.options);
    case 'symbolic':
      return symbolicProblem(rng, task.options);
  }
}

/** Problems 0..count−1 of `task`; problem i is drawn from Rng(deriveSeed(seed, 'synthetic:<kind>', i)). */
export function generateProblems(seed: number | bigint, task: SyntheticTask, count: number): SyntheticProblem[] {
  const out: SyntheticProblem[] = [];
  for (let i = 0; i < count; i++) out.push(drawProblem(new Rng(deriveSeed(seed, `synthetic:${task.kind}`, i)), task));
  return out;
}
