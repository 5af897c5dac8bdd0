// Public API of the GmtFineTune controller.
export {
  buildConfigMap,
  buildOwnerReference,
  buildService,
  buildWorkerEnv,
  buildWorkerPod,
  computeConfigHash,
  computeNatsUrl,
  computePodTrainerConfig,
  buildNatsCredsSecret,
  usesManagedNatsCredentials,
  NATS_CREDS_KEYS,
  CONFIG_KEY,
  CONTAINER_NAME,
  DEFAULT_BUILD_OPTIONS,
  type BuildOptions,
  type ConfigMapObject,
  type PodObject,
  type SecretObject,
  type ServiceObject,
} from './children.js';
export { findCondition, isTrue, setCondition, type ConditionInput } from './conditions.js';
export { CHILD_SELECTOR, computeJobId, configMapName, natsCredsSecretName, podHostname, podName, serviceName } from './names.js';
export { KEYS_SECRET_KEYS, NATS_RESOLVER_DIR, NatsIdentities, NatsIdentityError, SERVER_SECRET_KEYS, type NatsIdentitiesOptions } from './nats-identities.js';
export { ChildViewSchema, PodViewSchema, type ChildView, type PodView } from './pod-view.js';
export {
  classifyPod,
  computeGangOutcome,
  EXIT_CODE_POLICY,
  exitPolicy,
  PREEMPTION_REASONS,
  type ExitPolicy,
  type GangOutcome,
  type PodOutcome,
} from './policy.js';
export { foldProgress, type ProgressSnapshot } from './progress-snapshot.js';
export { ProgressTracker, type ProgressTrackerOptions } from './progress.js';
export { CONTROLLER_NAME, GmtFineTuneReconciler, StatusConflictError, type ReconcilerDeps, type Store } from './reconciler.js';
export {
  canonicalJson,
  computeStatus,
  formatTime,
  markCreateFailed,
  podAttempt,
  podRank,
  RESTART_REASON,
  type Decision,
  type EventSpec,
  type Observation,
  type PodDeletion,
} from './status.js';
export { CONTROLLER, startOperator, type Logger, type Operator, type OperatorOptions } from './operator.js';
