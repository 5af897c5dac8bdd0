/**
 * Disjoint train / held-out sets of a synthetic task. Problems are drawn from one seeded stream and
 * de-duplicated by prompt; the first `evalCount` distinct ones are held out and the next
 * `trainCount` distinct ones train, so no held-out prompt appears in training (problems are i.i.d.,
 * so taking the first ones biases nothing).
 */

import { DataError } from '../../errors.js';
import { deriveSeed, Rng } from '../../rng.js';
import type { SyntheticProblem } from './problem.js';
import { drawProblem, type SyntheticTask } from './task.js';

/** How many problems each side gets. */
export interface SplitSizes {
  readonly trainCount: number;
  readonly evalCount: number;
}

/** Train and held-out problems with disjoint prompts. */
export interface TrainEvalSplit {
  readonly train: readonly SyntheticProblem[];
  readonly eval: readonly SyntheticProblem[];
}

/** Deterministic disjoint split; DataError if the task has too few distinct problems for the sizes asked. */
export function splitTrainEval(seed: number | bigint, task: SyntheticTask, sizes: SplitSizes): TrainEvalSplit {
  const { trainCount, evalCount } = sizes;
  const wanted = trainCount + evalCount;
  const rng = new Rng(deriveSeed(seed, `split:${task.kind}`));
  const seen = new Set<string>();
  const distinct: SyntheticProblem[] = [];
  // Generous budget: sampling with replacement needs ~n·ln(n) draws when the space is only just big enough.
  const maxDraws = 50 * wanted + 1000;
  for (let draws = 0; distinct.length < wanted; draws++) {
    if (draws >= maxDraws) {
      throw new DataError(`synthetic ${task.kind}: only ${distinct.length} distinct problems after ${draws} draws, ${wanted} requested; widen the task`);
    }
    const p = drawProblem(rng, task);
    if (seen.has(p.prompt)) continue;
    seen.add(p.prompt);
    distinct.push(p);
  }
  return { eval: distinct.slice(0, evalCount), train: distinct.slice(evalCount) };
}
