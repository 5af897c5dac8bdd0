// What the runtime reports, as narrow interfaces. operator/src/metrics implements them on a
// prom-client registry; the runtime itself never imports prom-client, so tests can pass recorders.

/** Work queue observations (controller-runtime's workqueue_* series). */
export interface WorkQueueMetrics {
  /** A key was added (counted even when de-duplicated, as client-go does). */
  added(): void;
  /** Keys waiting to be handed out now. */
  depth(n: number): void;
  /** Seconds a key waited between being queued and being handed out. */
  queueLatency(seconds: number): void;
  /** Seconds between handing a key out and its `done`. */
  workDuration(seconds: number): void;
  /** A key was re-added through the rate limiter. */
  retried(): void;
}

/** How a reconcile ended, with controller-runtime's `result` label values. */
export type ReconcileResult = 'success' | 'error' | 'requeue' | 'requeue_after';

/** Controller observations (controller_runtime_reconcile_* series). */
export interface ControllerMetrics {
  /** One reconcile finished with `result` after `seconds`. */
  reconciled(result: ReconcileResult, seconds: number): void;
}

/** Leader election observations (leader_election_master_status). */
export interface LeaderElectionMetrics {
  /** This process leads (true) or does not (false). */
  leading(isLeader: boolean): void;
}

/** Discards work queue observations. */
export const noopWorkQueueMetrics: WorkQueueMetrics = {
  added: () => {},
  depth: () => {},
  queueLatency: () => {},
  workDuration: () => {},
  retried: () => {},
};

/** Discards controller observations. */
export const noopControllerMetrics: ControllerMetrics = { reconciled: () => {} };

/** Discards leader election observations. */
export const noopLeaderElectionMetrics: LeaderElectionMetrics = { leading: () => {} };
