// Public API of the trainer's metrics.
export {
  CHECKPOINT_DURATION_BUCKETS,
  DIRECTIONS,
  LABEL,
  LABEL_NAMES,
  METRIC,
  METRIC_NAMES,
  METRIC_PREFIX,
  PHASES,
  PHASE_DURATION_BUCKETS,
  REJECT_REASONS,
  SKIP_REASONS,
  STEP_DURATION_BUCKETS,
  type Direction,
  type LabelName,
  type MetricName,
  type Phase,
  type RejectReason,
  type SkipReason,
} from './names.js';
export { TrainerMetrics, type CheckpointObservation, type EvalObservation, type StepObservation, type TrainerMetricsOptions } from './trainer-metrics.js';
export { MetricsServerError, startMetricsServer, type MetricsServer, type MetricsServerOptions } from './server.js';
