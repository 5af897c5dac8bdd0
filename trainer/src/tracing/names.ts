// Span and attribute names of the trainer's traces, defined once (as metric names are in
// metrics/names.ts). Attribute keys are namespaced `gmt.` as the OpenTelemetry attribute naming
// rules ask for names that are not semantic conventions.
import type { Phase } from '../metrics/names.js';

/** Span names opened by the trainer. */
export const SPAN = {
  /** One optimizer step (root of the step's trace). */
  trainStep: 'gmt.train.step',
  /** One evaluation pass. */
  evaluate: 'gmt.train.eval',
  /** One checkpoint write. */
  checkpoint: 'gmt.train.checkpoint',
} as const;

/** Name of the child span of a step for `phase`, e.g. gmt.train.phase.reduce_scatter. */
export function phaseSpanName(phase: Phase): `gmt.train.phase.${Phase}` {
  return `gmt.train.phase.${phase}`;
}

/** Span attribute keys. */
export const ATTR = {
  /** Optimizer step number. */
  step: 'gmt.step',
  /** Total optimizer steps of the run. */
  totalSteps: 'gmt.total_steps',
  /** Training loss of the step. */
  loss: 'gmt.loss',
  /** Fraction of entries updated by the step. */
  keptRatio: 'gmt.kept_ratio',
  /** Saliency threshold T_k of the step. */
  maskThreshold: 'gmt.mask_threshold',
  /** Learning rate of the step. */
  learningRate: 'gmt.learning_rate',
  /** Gradient norm before clipping. */
  gradNorm: 'gmt.grad_norm',
  /** Samples in the step on this rank. */
  samples: 'gmt.samples',
  /** Tokens in the step on this rank. */
  tokens: 'gmt.tokens',
  /** Phase of the step (metrics/names.ts PHASES). */
  phase: 'gmt.phase',
  /** Why the step was skipped. */
  skipReason: 'gmt.skip_reason',
  /** Bytes moved by a collective phase. */
  bytes: 'gmt.bytes',
} as const;

/** Resource attribute keys describing the process (set once at startTracing). */
export const RESOURCE_ATTR = {
  /** GmtFineTune job id. */
  jobId: 'gmt.job_id',
  /** Worker rank. */
  rank: 'gmt.rank',
  /** Number of ranks. */
  worldSize: 'gmt.world_size',
  /** Gang attempt (restarts increment it). */
  attempt: 'gmt.attempt',
  /** Training method. */
  method: 'gmt.method',
} as const;
