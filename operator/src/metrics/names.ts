// Metric names of the operator, defined once (docs/architecture.md §4). The controller and work queue series use
// controller-runtime's names and labels (sigs.k8s.io/controller-runtime/pkg/internal/controller/metrics,
// pkg/metrics/workqueue.go, pkg/metrics/leaderelection.go), so dashboards and alerts written for
// Go operators work unchanged.

/** Metric names. */
export const METRIC = {
  reconcileTotal: 'controller_runtime_reconcile_total',
  reconcileErrorsTotal: 'controller_runtime_reconcile_errors_total',
  reconcileTimeSeconds: 'controller_runtime_reconcile_time_seconds',
  workqueueAddsTotal: 'workqueue_adds_total',
  workqueueDepth: 'workqueue_depth',
  workqueueQueueDurationSeconds: 'workqueue_queue_duration_seconds',
  workqueueWorkDurationSeconds: 'workqueue_work_duration_seconds',
  workqueueRetriesTotal: 'workqueue_retries_total',
  leaderElectionMasterStatus: 'leader_election_master_status',
  // Per-job gauges of this operator (namespace, name[, phase]).
  jobPhase: 'gmt_operator_job_phase',
  jobStep: 'gmt_operator_job_step',
  jobTotalSteps: 'gmt_operator_job_total_steps',
  jobLoss: 'gmt_operator_job_loss',
  jobSamplesPerSecond: 'gmt_operator_job_samples_per_second',
  jobKeptRatio: 'gmt_operator_job_kept_ratio',
  jobAttempt: 'gmt_operator_job_attempt',
  jobRestarts: 'gmt_operator_job_restarts',
} as const;

/** Label names. */
export const LABEL = {
  controller: 'controller',
  result: 'result',
  name: 'name',
  namespace: 'namespace',
  phase: 'phase',
} as const;

/** controller-runtime's reconcile_time_seconds buckets. */
export const RECONCILE_TIME_BUCKETS: readonly number[] = [
  0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.25, 1.5, 1.75, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5, 5, 6, 7, 8,
  9, 10, 15, 20, 25, 30, 40, 50, 60,
];

/** client-go/controller-runtime work queue buckets: ExponentialBuckets(10e-9, 10, 12) = 1e-8 … 1e3 s. */
export const WORKQUEUE_DURATION_BUCKETS: readonly number[] = Array.from({ length: 12 }, (_, i) => Number((1e-8 * 10 ** i).toPrecision(1)));
