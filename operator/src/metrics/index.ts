// Public API of the operator's metrics.
export { LABEL, METRIC, RECONCILE_TIME_BUCKETS, WORKQUEUE_DURATION_BUCKETS } from './names.js';
export { JOB_PHASES, OperatorMetrics, type JobSnapshot, type OperatorMetricsOptions } from './operator-metrics.js';
export {
  OperatorServerError,
  cachesSyncedCheck,
  leaderElectionCheck,
  startOperatorServer,
  type HealthCheck,
  type OperatorServer,
  type OperatorServerOptions,
} from './server.js';
