/**
 * GmtFineTune status (docs/architecture.md §5): phase, standard metav1.Condition list, restart counters by
 * cause, training progress folded in from the trainer's NATS progress messages, worker counts.
 * Written only by the operator through the status subresource.
 */
import { z } from 'zod';
import { CONDITION_TYPES, PHASES, RESTART_CAUSES } from './constants.js';
import { TimeSchema } from './k8s-schema.js';

const count = z.number().int().min(0);

/** metav1.Condition, with the same bounds as k8s.io/apimachinery's OpenAPI for it. */
export const ConditionSchema = z.object({
  type: z
    .string()
    .min(1)
    .max(316)
    .regex(/^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/)?(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$/)
    .describe(`Condition type: ${Object.values(CONDITION_TYPES).join(', ')}.`),
  status: z.enum(['True', 'False', 'Unknown']).describe('True, False or Unknown.'),
  observedGeneration: count.optional().describe('metadata.generation the condition was computed from.'),
  lastTransitionTime: TimeSchema.describe('When status last changed.'),
  reason: z
    .string()
    .min(1)
    .max(1024)
    .regex(/^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$/)
    .describe('CamelCase reason for the last transition.'),
  message: z.string().max(32_768).describe('Human-readable detail.'),
});

/** A condition. */
export type Condition = z.infer<typeof ConditionSchema>;

/** Gang restarts, in total and by cause (RESTART_CAUSES). */
export const RestartsSchema = z.object({
  total: count.describe('All gang restarts.'),
  [RESTART_CAUSES.retryable]: count.optional().describe('After a retryable trainer exit (peer lost, collective aborted, NATS lost).'),
  [RESTART_CAUSES.stalled]: count.optional().describe('After no step progress within the progress deadline.'),
  [RESTART_CAUSES.preempted]: count.optional().describe('After a worker was preempted or evicted, or its node went away.'),
  [RESTART_CAUSES.other]: count.optional().describe('After any other pod failure.'),
});

/** Worker pod counts of the current attempt. */
export const WorkerCountsSchema = z.object({
  active: count.describe('Pending or running worker pods.'),
  ready: count.optional().describe('Running worker pods.'),
  succeeded: count.describe('Worker pods that exited 0.'),
  failed: count.describe('Worker pods that failed.'),
});

/** The GmtFineTune status. */
export const GmtFineTuneStatusSchema = z.object({
  phase: z
    .enum(Object.values(PHASES) as [string, ...string[]])
    .optional()
    .describe(`Summary of the conditions: ${Object.values(PHASES).join(', ')}.`),
  conditions: z
    .array(ConditionSchema)
    .max(32)
    .optional()
    .meta({ 'x-kubernetes-list-type': 'map', 'x-kubernetes-list-map-keys': ['type'] })
    .describe('Standard conditions, one per type.'),
  observedGeneration: count.optional().describe('metadata.generation the status was computed from.'),
  attempt: count.optional().describe('Current gang attempt (0 first; each restart adds one).'),
  restarts: RestartsSchema.optional().describe('Gang restarts by cause.'),
  step: count.optional().describe('Last optimizer step reported by rank 0.'),
  totalSteps: count.optional().describe('Steps of the whole run.'),
  progress: z.string().max(64).optional().describe('step/totalSteps, for kubectl.'),
  epoch: count.optional().describe('Data epoch of the last step.'),
  loss: z.number().optional().describe('Training loss of the last step.'),
  samplesPerSecond: z.number().min(0).optional().describe('Global training throughput.'),
  tokensPerSecond: z.number().min(0).optional().describe('Global token throughput.'),
  keptRatio: z.number().min(0).max(1).optional().describe('Fraction of parameter entries updated in the last step.'),
  backend: z.string().max(64).optional().describe('Kernel backend rank 0 trains on: tensorflow/gpu, tensorflow/cpu, wasm or cpu.'),
  startTime: TimeSchema.optional().describe('When the first attempt started running.'),
  completionTime: TimeSchema.optional().describe('When the job succeeded or failed.'),
  lastProgressTime: TimeSchema.optional().describe('When the step last advanced (hang detection).'),
  lastCheckpoint: z.string().max(4096).optional().describe('Path of the latest checkpoint written by rank 0.'),
  workers: WorkerCountsSchema.optional().describe('Worker pods of the current attempt.'),
});

/** A status. */
export type GmtFineTuneStatus = z.infer<typeof GmtFineTuneStatusSchema>;

/** The status.progress text for kubectl: `12/20`, or undefined before the first step report. */
export function computeProgress(step: number | undefined, totalSteps: number | undefined): string | undefined {
  if (step === undefined || totalSteps === undefined) return undefined;
  return `${step}/${totalSteps}`;
}
