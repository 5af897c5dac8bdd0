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

/** Held-out metrics of one evaluation. */
export const EvalResultSchema = z.object({
  loss: z.number().optional().describe('Held-out loss (token-weighted mean).'),
  exactMatch: z.number().min(0).max(1).optional().describe('Fraction of held-out problems answered exactly (greedy).'),
  examples: count.optional().describe('Held-out examples used.'),
  step: count.optional().describe('Optimizer step the evaluation ran after.'),
});

/** Evaluations reported by rank 0: before training, the last periodic one, and after training. */
export const EvaluationSchema = z.object({
  before: EvalResultSchema.optional().describe('Before the first step (the base model).'),
  last: EvalResultSchema.optional().describe('The latest periodic evaluation (spec.training.evalEvery).'),
  after: EvalResultSchema.optional().describe('After the last step (the fine-tuned model).'),
});

/** Rounded values for kubectl's columns (the numbers themselves stay in full precision beside them). */
export const DisplaySchema = z.object({
  loss: z.string().max(32).optional().describe('Training loss of the last step, 4 decimals.'),
  samplesPerSecond: z.string().max(32).optional().describe('Global throughput, 1 decimal.'),
  kept: z.string().max(32).optional().describe('Kept ratio of the last step as a percentage.'),
  exactMatch: z.string().max(64).optional().describe('Held-out exact match, before → after (or the latest).'),
  evalLoss: z.string().max(64).optional().describe('Held-out loss, before → after (or the latest).'),
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
  reason: z
    .string()
    .max(256)
    .optional()
    .describe("Why the job is in its phase when that needs attention: the workers' start problem (ImagePullBackOff, Unschedulable, …) or the failure reason."),
  evaluation: EvaluationSchema.optional().describe('Held-out evaluation results reported by rank 0.'),
  display: DisplaySchema.optional().describe('Rounded values for kubectl get.'),
});

/** A status. */
export type GmtFineTuneStatus = z.infer<typeof GmtFineTuneStatusSchema>;

/** Round for display: 4 decimals for losses, 1 for rates, a percentage with 1 decimal for ratios. */
export const formatForDisplay = {
  loss: (x: number): string => (Number.isFinite(x) ? x.toFixed(4) : String(x)),
  rate: (x: number): string => x.toFixed(1),
  percent: (x: number): string => `${(100 * x).toFixed(1)}%`,
} as const;

/** status.display from the numbers of a status. */
export function computeDisplay(s: GmtFineTuneStatus): z.infer<typeof DisplaySchema> {
  const d: z.infer<typeof DisplaySchema> = {};
  if (s.loss !== undefined) d.loss = formatForDisplay.loss(s.loss);
  if (s.samplesPerSecond !== undefined) d.samplesPerSecond = formatForDisplay.rate(s.samplesPerSecond);
  if (s.keptRatio !== undefined) d.kept = formatForDisplay.percent(s.keptRatio);
  const e = s.evaluation;
  const first = e?.before,
    latest = e?.after ?? e?.last;
  const pair = (f: (x: number) => string, a: number | undefined, b: number | undefined): string | undefined =>
    a !== undefined && b !== undefined ? `${f(a)} → ${f(b)}` : b !== undefined ? f(b) : a !== undefined ? f(a) : undefined;
  const em = pair(formatForDisplay.percent, first?.exactMatch, latest?.exactMatch);
  if (em !== undefined) d.exactMatch = em;
  const el = pair(formatForDisplay.loss, first?.loss, latest?.loss);
  if (el !== undefined) d.evalLoss = el;
  return d;
}

/** The status.progress text for kubectl: `12/20`, or undefined before the first step report. */
export function computeProgress(step: number | undefined, totalSteps: number | undefined): string | undefined {
  if (step === undefined || totalSteps === undefined) return undefined;
  return `${step}/${totalSteps}`;
}
