/**
 * A generated task instance. `prompt` + `completion` is the training text; `answer` is the exact
 * reference for evaluation (the completion without its leading space).
 */

/** One synthetic problem with its exact answer. */
export interface SyntheticProblem {
  readonly prompt: string;
  readonly completion: string;
  readonly answer: string;
}

/** Build a problem whose completion is the answer after one space (how greedy answers are read back). */
export function buildProblem(prompt: string, answer: string): SyntheticProblem {
  return { prompt, completion: ` ${answer}`, answer };
}
