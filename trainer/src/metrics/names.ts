// Every trainer metric and label name, defined once (dashboards use only names that exist,
// and a test checks that: docs/architecture.md §4). Units follow Prometheus naming: `_seconds`, `_bytes`, `_total`.

/** Prefix shared by every trainer metric (the operator uses its own). */
export const METRIC_PREFIX = 'gmt_trainer_';

/** Metric names exported by the trainer, keyed by a short code name. */
export const METRIC = {
  /** Histogram: wall time of one optimizer step (all micro-batches and collectives). */
  stepDurationSeconds: 'gmt_trainer_step_duration_seconds',
  /** Counter: optimizer steps applied. */
  stepsTotal: 'gmt_trainer_steps_total',
  /** Counter {reason}: optimizer steps skipped (e.g. a non-finite gradient). */
  skippedStepsTotal: 'gmt_trainer_skipped_steps_total',
  /** Counter: training samples consumed by applied steps (this rank). */
  samplesTotal: 'gmt_trainer_samples_total',
  /** Counter: training tokens consumed by applied steps (this rank). */
  tokensTotal: 'gmt_trainer_tokens_total',
  /** Gauge: samples per second over the last step. */
  samplesPerSecond: 'gmt_trainer_samples_per_second',
  /** Gauge: tokens per second over the last step. */
  tokensPerSecond: 'gmt_trainer_tokens_per_second',
  /** Gauge: training loss of the last step. */
  loss: 'gmt_trainer_loss',
  /** Gauge: fraction of parameter entries updated in the last step (1 for sft). */
  keptRatio: 'gmt_trainer_kept_ratio',
  /** Gauge: saliency threshold T_k of the last step (global scope; unset when undefined). */
  maskThreshold: 'gmt_trainer_mask_threshold',
  /** Gauge: model FLOPs utilisation of the last step, in [0, 1]. */
  mfu: 'gmt_trainer_mfu',
  /** Gauge: learning rate used by the last step. */
  learningRate: 'gmt_trainer_learning_rate',
  /** Gauge: global L2 norm of the accumulated gradient before clipping. */
  gradNorm: 'gmt_trainer_grad_norm',
  /** Gauge: current optimizer step (after the last applied or skipped step). */
  step: 'gmt_trainer_step',
  /** Gauge: total optimizer steps of the run. */
  totalSteps: 'gmt_trainer_total_steps',
  /** Gauge: loss of the last evaluation. */
  evalLoss: 'gmt_trainer_eval_loss',
  /** Gauge: exact-match accuracy of the last evaluation, in [0, 1]. */
  evalExactMatch: 'gmt_trainer_eval_exact_match',
  /** Histogram: wall time of writing one checkpoint. */
  checkpointDurationSeconds: 'gmt_trainer_checkpoint_duration_seconds',
  /** Gauge: step of the last checkpoint written. */
  lastCheckpointStep: 'gmt_trainer_last_checkpoint_step',
  /** Gauge {backend,method,model,version}: always 1; carries the run's identity as labels. */
  info: 'gmt_trainer_info',
  /** Histogram {phase}: wall time of one phase of a step (see PHASES). */
  phaseDurationSeconds: 'gmt_trainer_phase_duration_seconds',
  /** Counter {phase,direction}: payload bytes moved by collectives (see DIRECTIONS). */
  collectiveBytesTotal: 'gmt_trainer_collective_bytes_total',
  /** Counter {reason}: collective messages rejected (wrong job/attempt/step, bad checksum, …). */
  rejectedMessagesTotal: 'gmt_trainer_rejected_messages_total',
} as const;

/** One trainer metric name. */
export type MetricName = (typeof METRIC)[keyof typeof METRIC];

/** Every trainer metric name, for tests that check dashboards reference only existing names. */
export const METRIC_NAMES: readonly MetricName[] = Object.freeze(Object.values(METRIC));

/** Label names used by trainer metrics. */
export const LABEL = {
  /** Constant on every series: the GmtFineTune job id (GMT_JOB_ID). */
  job: 'job',
  /** Constant on every series: this worker's rank (GMT_RANK). */
  rank: 'rank',
  /** Why a step was skipped or a message rejected. */
  reason: 'reason',
  /** Step phase, one of PHASES. */
  phase: 'phase',
  /** Collective traffic direction, one of DIRECTIONS. */
  direction: 'direction',
  /** Info label: TensorFlow.js backend (cpu, wasm, tensorflow, …). */
  backend: 'backend',
  /** Info label: training method (gmt, sft, random, hft, oneoff). */
  method: 'method',
  /** Info label: model name. */
  model: 'model',
  /** Info label: trainer version. */
  version: 'version',
} as const;

/** One trainer label name. */
export type LabelName = (typeof LABEL)[keyof typeof LABEL];

/** Every trainer label name. */
export const LABEL_NAMES: readonly LabelName[] = Object.freeze(Object.values(LABEL));

/** Phases of one optimizer step, in order (docs/architecture.md §3), plus checkpoint and eval. */
export const PHASES = ['compute', 'reduce_scatter', 'threshold', 'all_gather', 'optimizer', 'checkpoint', 'eval'] as const;

/** One step phase. */
export type Phase = (typeof PHASES)[number];

/** Directions of collective traffic as seen from this rank. */
export const DIRECTIONS = ['sent', 'received'] as const;

/** One collective traffic direction. */
export type Direction = (typeof DIRECTIONS)[number];

/** Reasons for a skipped step (the update reports NaN/Inf in the gradient or the loss). */
export const SKIP_REASONS = ['non_finite_gradient', 'non_finite_loss'] as const;

/** One skip reason (a label value, so never free text). */
export type SkipReason = (typeof SKIP_REASONS)[number];

/** Known reasons for a rejected collective message (docs/architecture.md §3 "rules"). */
export const REJECT_REASONS = ['wrong_job', 'wrong_attempt', 'wrong_step', 'wrong_phase', 'bad_checksum', 'duplicate_chunk', 'malformed'] as const;

/** One known reject reason. */
export type RejectReason = (typeof REJECT_REASONS)[number];

/** Step duration buckets in seconds: 10 ms (tiny CPU models) to ~20 min (large models on CPU). */
export const STEP_DURATION_BUCKETS: readonly number[] = Object.freeze([0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1200]);

/** Phase duration buckets in seconds: 100 µs to 10 min. */
export const PHASE_DURATION_BUCKETS: readonly number[] = Object.freeze([
  0.0001, 0.0005, 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 600,
]);

/** Checkpoint write duration buckets in seconds: 10 ms to 30 min. */
export const CHECKPOINT_DURATION_BUCKETS: readonly number[] = Object.freeze([0.01, 0.05, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800]);
