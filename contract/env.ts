/**
 * Environment variables of the trainer↔operator contract (docs/architecture.md §4): the operator sets them
 * on every worker pod (operator/src/controller/children.ts), the local launcher on every rank
 * process (trainer/src/launcher.ts), and the trainer reads them (trainer/src/config/load.ts).
 */
import type { ConfigKey } from './config.js';

/** Variable names, keyed by what they carry. */
export const ENV = {
  /** Job id; namespaces the job's NATS subjects. */
  jobId: 'GMT_JOB_ID',
  /** This process's rank. */
  rank: 'GMT_RANK',
  /** Number of ranks. */
  worldSize: 'GMT_WORLD_SIZE',
  /** Gang attempt (restarts increment it). */
  attempt: 'GMT_ATTEMPT',
  /** NATS server URL. */
  natsUrl: 'NATS_URL',
  /** Path of a NATS .creds file. */
  natsCreds: 'NATS_CREDS',
  /** Path of the JSON config file (the spec's trainer config). */
  config: 'GMT_CONFIG',
  /** Where rank 0 writes checkpoints. */
  checkpointDir: 'GMT_CHECKPOINT_DIR',
  /** Prometheus /metrics port (0 = off). */
  metricsPort: 'GMT_METRICS_PORT',
  /** TensorFlow.js backend. */
  backend: 'GMT_BACKEND',
  /** Native TensorFlow kernel threads (0 = every core the pod is given). */
  threads: 'GMT_THREADS',
} as const;

/** Variables that set a trainer config key directly, and that key (the config file has its own variable). */
export const ENV_KEYS: Readonly<Record<string, ConfigKey>> = {
  [ENV.jobId]: 'jobId',
  [ENV.rank]: 'rank',
  [ENV.worldSize]: 'worldSize',
  [ENV.attempt]: 'attempt',
  [ENV.natsUrl]: 'natsUrl',
  [ENV.natsCreds]: 'natsCreds',
  [ENV.checkpointDir]: 'checkpointDir',
  [ENV.metricsPort]: 'metricsPort',
  [ENV.backend]: 'backend',
  [ENV.threads]: 'threads',
};
