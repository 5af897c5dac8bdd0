/**
 * Every label, annotation, condition type, reason and field manager the operator writes,
 * defined once (STYLE: operator/api). String-literal maps, `as const`, instead of enums.
 */

/** Server-side apply field manager of the operator (children and status). */
export const FIELD_MANAGER = 'gmt-operator';

/** Labels on every child object (pods, Service, config); selectors use the same keys. */
export const LABELS = {
  /** Name of the owning GmtFineTune. */
  job: 'gmt.dev/job',
  /** Rank 0..N−1 of a worker pod. */
  rank: 'gmt.dev/rank',
  /** Gang attempt 0, 1, … the pod belongs to (docs/architecture.md §3: subjects are per attempt). */
  attempt: 'gmt.dev/attempt',
  /** Role of a child: `worker`, `service`, `config`. */
  role: 'gmt.dev/role',
  /** Standard: the component that manages the object. */
  managedBy: 'app.kubernetes.io/managed-by',
  /** Standard: the application name. */
  name: 'app.kubernetes.io/name',
} as const;

/** Values of LABELS.role. */
export const ROLES = { worker: 'worker', service: 'service', config: 'config' } as const;
/** Value of LABELS.managedBy (the same name as FIELD_MANAGER). */
export const MANAGED_BY = 'gmt-operator';
/** Value of LABELS.name. */
export const APP_NAME = 'gmt-trainer';

/** Annotations the operator writes. */
export const ANNOTATIONS = {
  /** Hash of the trainer config the pods were built from (a changed spec shows as a new hash). */
  configHash: 'gmt.dev/config-hash',
  /** World size of the attempt the pod belongs to. */
  worldSize: 'gmt.dev/world-size',
  /** Why the previous attempt was restarted (a RESTART_CAUSES value). */
  restartCause: 'gmt.dev/restart-cause',
} as const;

/** Condition types in status.conditions (metav1.Condition). */
export const CONDITION_TYPES = {
  /** The children of the current attempt were created. */
  created: 'Created',
  /** All workers of the current attempt run. */
  running: 'Running',
  /** The gang is being restarted from the last checkpoint. */
  restarting: 'Restarting',
  /** spec.runPolicy.suspend is true and no worker runs. */
  suspended: 'Suspended',
  /** Terminal: training finished. */
  succeeded: 'Succeeded',
  /** Terminal: failed and not retried any more. */
  failed: 'Failed',
  /** No step progress within spec.runPolicy.progressDeadlineSeconds. */
  stalled: 'Stalled',
} as const;

/** A condition type. */
export type ConditionType = (typeof CONDITION_TYPES)[keyof typeof CONDITION_TYPES];

/** Condition reasons (CamelCase, as metav1.Condition requires). */
export const REASONS = {
  childrenCreated: 'ChildrenCreated',
  childCreationFailed: 'ChildCreationFailed',
  workersPending: 'WorkersPending',
  workersRunning: 'WorkersRunning',
  unschedulable: 'Unschedulable',
  retryableFailure: 'RetryableFailure',
  nonRetryableFailure: 'NonRetryableFailure',
  podFailed: 'PodFailed',
  preempted: 'Preempted',
  noStepProgress: 'NoStepProgress',
  progressResumed: 'ProgressResumed',
  backoffLimitExceeded: 'BackoffLimitExceeded',
  deadlineExceeded: 'DeadlineExceeded',
  suspended: 'JobSuspended',
  resumed: 'JobResumed',
  trainingCompleted: 'TrainingCompleted',
  invalidSpec: 'InvalidSpec',
  /** The workers could not start within spec.runPolicy.startupDeadlineSeconds (the pods' own reason is in the message and status.reason). */
  startupDeadlineExceeded: 'StartupDeadlineExceeded',
  /** A Warning event: a worker pod cannot start (image pull, container config, scheduling). */
  workersCannotStart: 'WorkersCannotStart',
} as const;

/**
 * Pod waiting/scheduling reasons that mean "this pod will not start by itself" (kubelet and
 * scheduler reasons): surfaced in status.reason at once, and failing the job after
 * spec.runPolicy.startupDeadlineSeconds.
 */
export const START_FAILURE_REASONS: ReadonlySet<string> = new Set([
  'ErrImagePull',
  'ImagePullBackOff',
  'InvalidImageName',
  'ErrImageNeverPull',
  'CreateContainerConfigError',
  'CreateContainerError',
  'Unschedulable',
]);

/** A condition reason. */
export type Reason = (typeof REASONS)[keyof typeof REASONS];

/** Phases in status.phase: a one-word summary of the conditions. */
export const PHASES = {
  pending: 'Pending',
  running: 'Running',
  restarting: 'Restarting',
  suspended: 'Suspended',
  succeeded: 'Succeeded',
  failed: 'Failed',
} as const;

/** A phase. */
export type Phase = (typeof PHASES)[keyof typeof PHASES];

/** Causes counted separately in status.restarts (keys of that object, besides `total`). */
export const RESTART_CAUSES = {
  /** A worker exited with a retryable exit code (peer lost, collective aborted, NATS lost). */
  retryable: 'retryable',
  /** No step progress within the progress deadline. */
  stalled: 'stalled',
  /** A worker pod was preempted or evicted, or its node went away. */
  preempted: 'preempted',
  /** Any other pod failure (OOM-killed, unknown exit code, deleted). */
  other: 'other',
} as const;

/** A restart cause. */
export type RestartCause = (typeof RESTART_CAUSES)[keyof typeof RESTART_CAUSES];
