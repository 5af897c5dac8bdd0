/**
 * Learning-rate schedules, as pure functions of the optimizer step. The cosine schedule equals
 * Hugging Face's get_cosine_schedule_with_warmup (linear warm-up from 0, then half a cosine to 0);
 * warm-up steps = ceil(warmupRatio · totalSteps) as in transformers' TrainingArguments.
 */

/** Schedule shape after warm-up. */
export type ScheduleKind = 'cosine' | 'linear' | 'constant';

/** Everything lrAt needs. */
export interface ScheduleParams {
  readonly lr: number;
  readonly kind: ScheduleKind;
  readonly warmupSteps: number;
  readonly totalSteps: number;
  /** Floor as a fraction of lr after warm-up (0 = decay to zero, as Hugging Face). */
  readonly minLrRatio: number;
}

/** Warm-up steps for a ratio of the run. */
export function warmupStepsFor(totalSteps: number, warmupRatio: number): number {
  return Math.ceil(warmupRatio * totalSteps);
}

/** The learning rate used by optimizer step `step` (0-based). */
export function lrAt(step: number, p: ScheduleParams): number {
  if (step < p.warmupSteps) return (p.lr * step) / Math.max(1, p.warmupSteps);
  const progress = (step - p.warmupSteps) / Math.max(1, p.totalSteps - p.warmupSteps);
  let factor: number;
  switch (p.kind) {
    case 'constant':
      factor = 1;
      break;
    case 'linear':
      factor = Math.max(0, 1 - progress);
      break;
    case 'cosine':
      factor = Math.max(0, 0.5 * (1 + Math.cos(Math.PI * progress)));
      break;
  }
  return p.lr * (p.minLrRatio + (1 - p.minLrRatio) * factor);
}
