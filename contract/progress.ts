/**
 * The trainer's progress message (docs/architecture.md §4): rank 0 publishes one JSON object per second on
 * `gmt.<jobId>.progress` (trainer/src/train/run.ts); the operator's progress tracker and the local
 * launcher parse it with this one schema.
 */
import { z } from 'zod';

const num = z.number().nullish();

/** One held-out evaluation. */
const EvalSchema = z
  .looseObject({
    loss: num, // held-out loss (token-weighted mean)
    exactMatch: num, // fraction of held-out problems answered exactly (greedy)
    examples: z.number().int().min(0).nullish(), // held-out examples used
    step: z.number().int().min(0).nullish(), // optimizer step the evaluation ran after
  })
  .nullish();

/** One progress message; unknown fields are ignored, nulls mean "not known". */
export const ProgressMessageSchema = z.looseObject({
  attempt: z.number().int().min(0), // gang attempt of the publishing rank
  step: z.number().int().min(0), // optimizer steps done
  totalSteps: z.number().int().min(0).nullish(), // optimizer steps of the run
  epoch: z.number().int().min(0).nullish(), // data epoch of the cursor
  loss: num, // training loss of the last step
  samplesPerSecond: num, // over the last step, this rank
  tokensPerSecond: num, // over the last step, this rank
  keptRatio: num, // fraction of entries the last step updated
  lastCheckpoint: z.string().nullish(), // path of the last checkpoint written
  phase: z.string().nullish(), // 'training' or 'finished'
  backend: z.string().max(64).nullish(), // kernel backend label: tensorflow/gpu, tensorflow/cpu, wasm or cpu
  evalLoss: num, // final evaluation loss (phase 'finished')
  exactMatch: num, // final exact-match accuracy (phase 'finished')
  evaluation: z.looseObject({ before: EvalSchema, last: EvalSchema, after: EvalSchema }).nullish(), // every evaluation so far: before training, the last periodic one, after
});

/** A parsed progress message. */
export type ProgressMessage = z.infer<typeof ProgressMessageSchema>;

/** Root token of every NATS subject of the project. */
export const SUBJECT_ROOT = 'gmt';

/** The progress subject of one job (rank 0 publishes, the launcher subscribes). */
export function progressSubject(jobId: string): string {
  return `${SUBJECT_ROOT}.${jobId}.progress`;
}

/** Wildcard subject of every job's progress (the operator subscribes). */
export const PROGRESS_SUBJECT = `${SUBJECT_ROOT}.*.progress`;

/** The job id token of a progress subject ('' when it is not one). */
export function jobIdOfProgressSubject(subject: string): string {
  return subject.split('.')[1] ?? '';
}
