/**
 * Multi-step arithmetic with exact answers. Every intermediate total stays in [0, ∞) so the word
 * form always makes sense. Two surface styles of the same maths:
 *   compact: `Q: 3+5-2=? A:` → ` 6`            (short, for byte-level tiny models)
 *   words:   `Tom has 3 apples. He buys 5 more and gives away 2. How many apples does Tom have?\nAnswer:` → ` 6`
 */

import { z } from 'zod';
import type { Rng } from '../../rng.js';
import { buildProblem, type SyntheticProblem } from './problem.js';

/** Options of the arithmetic task: the number of operations and operand size set the difficulty. */
export const ArithmeticOptionsSchema = z
  .strictObject({
    style: z.enum(['compact', 'words']).default('compact'),
    /** Fewest operations (+ or −) after the starting number. */
    minSteps: z.number().int().min(1).max(3).default(1),
    /** Most operations; each problem draws its count uniformly in [minSteps, maxSteps]. */
    maxSteps: z.number().int().min(1).max(3).default(2),
    /** Operands are drawn from [0, maxOperand] (the start) and [1, maxOperand] (the operations). */
    maxOperand: z.number().int().min(1).max(1_000_000).default(9),
  })
  .refine((o) => o.minSteps <= o.maxSteps, { error: 'minSteps must be ≤ maxSteps' });

/** Resolved arithmetic options. */
export type ArithmeticOptions = z.infer<typeof ArithmeticOptionsSchema>;

const NAMES = [
  ['Tom', 'He'],
  ['Anna', 'She'],
  ['Ben', 'He'],
  ['Mia', 'She'],
  ['Sam', 'He'],
  ['Lea', 'She'],
] as const;
const ITEMS = ['apples', 'pears', 'coins', 'cards', 'books', 'shells'] as const;
const ADD_VERBS = ['buys {n} more', 'finds {n} more', 'gets {n} more'] as const;
const SUB_VERBS = ['gives away {n}', 'loses {n}', 'sells {n}'] as const;

/** One operation applied to the running total. */
interface Step {
  readonly op: '+' | '-';
  readonly n: number;
}

/** Draw one arithmetic problem from `rng` (consumes a data-dependent number of draws). */
export function arithmeticProblem(rng: Rng, options: ArithmeticOptions): SyntheticProblem {
  const { minSteps, maxSteps, maxOperand } = options;
  const start = rng.nextInt(maxOperand + 1);
  const count = minSteps + rng.nextInt(maxSteps - minSteps + 1);
  const steps: Step[] = [];
  let total = start;
  for (let i = 0; i < count; i++) {
    // Subtract only what is there, so totals never go negative.
    const op = total > 0 && rng.nextInt(2) === 1 ? '-' : '+';
    const n = 1 + rng.nextInt(op === '-' ? Math.min(total, maxOperand) : maxOperand);
    total += op === '+' ? n : -n;
    steps.push({ op, n });
  }
  if (options.style === 'compact') {
    return buildProblem(`Q: ${start}${steps.map((s) => `${s.op}${s.n}`).join('')}=? A:`, String(total));
  }
  const [name, pronoun] = NAMES[rng.nextInt(NAMES.length)]!;
  const item = ITEMS[rng.nextInt(ITEMS.length)]!;
  const clauses = steps.map((s) => {
    const verbs = s.op === '+' ? ADD_VERBS : SUB_VERBS;
    return verbs[rng.nextInt(verbs.length)]!.replace('{n}', String(s.n));
  });
  const actions = clauses.length === 1 ? clauses[0]! : `${clauses.slice(0, -1).join(', ')} and ${clauses[clauses.length - 1]!}`;
  const prompt = `${name} has ${start} ${item}. ${pronoun} ${actions}. How many ${item} does ${name} have?\nAnswer:`;
  return buildProblem(prompt, String(total));
}
