/**
 * The trainer's progress message (ARCHITECTURE §4; trainer/src/train/run.ts publishes it) as the
 * operator parses it, and the snapshot the progress tracker keeps per job.
 */
import { z } from 'zod';

const num = z.number().nullish();
const EvalSchema = z.looseObject({ loss: num, exactMatch: num, examples: z.number().int().min(0).nullish(), step: z.number().int().min(0).nullish() }).nullish();

/** One message on gmt.<jobId>.progress; unknown fields are ignored, nulls mean "not known". */
export const ProgressMessageSchema = z.looseObject({
  attempt: z.number().int().min(0),
  step: z.number().int().min(0),
  totalSteps: z.number().int().min(0).nullish(),
  epoch: z.number().int().min(0).nullish(),
  loss: num,
  samplesPerSecond: num,
  tokensPerSecond: num,
  keptRatio: num,
  lastCheckpoint: z.string().nullish(),
  phase: z.string().nullish(),
  evaluation: z.looseObject({ before: EvalSchema, last: EvalSchema, after: EvalSchema }).nullish(),
});

/** A parsed progress message. */
export type ProgressMessage = z.infer<typeof ProgressMessageSchema>;

/** The latest message of a job plus when its step last changed (for hang detection). */
export interface ProgressSnapshot {
  readonly message: ProgressMessage;
  /** Epoch ms of the message. */
  readonly receivedAt: number;
  /** Epoch ms when `step` (or `attempt`) last took a new value. */
  readonly stepChangedAt: number;
}

/** The snapshot after `msg` arrived at `now`. */
export function foldProgress(prev: ProgressSnapshot | undefined, msg: ProgressMessage, now: number): ProgressSnapshot {
  const moved = prev === undefined || prev.message.step !== msg.step || prev.message.attempt !== msg.attempt;
  return { message: msg, receivedAt: now, stepChangedAt: moved ? now : prev.stepChangedAt };
}
