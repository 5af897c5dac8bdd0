// The operator's Prometheus registry: implements the runtime's metric hooks with
// controller-runtime-compatible series. A private Registry (never prom-client's global one), so
// tests and several operators in one process never collide.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { ControllerMetrics, LeaderElectionMetrics, ReconcileResult, WorkQueueMetrics } from '../runtime/metrics-hooks.js';
import { LABEL, METRIC, RECONCILE_TIME_BUCKETS, WORKQUEUE_DURATION_BUCKETS } from './names.js';

/** Options of OperatorMetrics. */
export interface OperatorMetricsOptions {
  /** Also collect prom-client's process_* / nodejs_* metrics (default true). */
  readonly defaultMetrics?: boolean;
}

/** Registry plus hook factories for queues, controllers and leader election. */
/** Phases exported by gmt_operator_job_phase (docs/architecture.md §5). */
export const JOB_PHASES = ['Pending', 'Running', 'Restarting', 'Suspended', 'Succeeded', 'Failed'] as const;

/** Numbers of one job's status for the per-job gauges. */
export interface JobSnapshot {
  readonly step?: number | undefined;
  readonly totalSteps?: number | undefined;
  readonly loss?: number | undefined;
  readonly samplesPerSecond?: number | undefined;
  readonly keptRatio?: number | undefined;
  readonly attempt?: number | undefined;
  readonly restarts?: number | undefined;
}

export class OperatorMetrics {
  /** Serve this on /metrics. */
  readonly registry = new Registry();
  readonly #reconcileTotal: Counter<'controller' | 'result'>;
  readonly #reconcileErrors: Counter<'controller'>;
  readonly #reconcileTime: Histogram<'controller'>;
  readonly #adds: Counter<'name'>;
  readonly #depth: Gauge<'name'>;
  readonly #queueDuration: Histogram<'name'>;
  readonly #workDuration: Histogram<'name'>;
  readonly #retries: Counter<'name'>;
  readonly #leader: Gauge<'name'>;
  readonly #jobPhase: Gauge<'namespace' | 'name' | 'phase'>;
  readonly #jobGauges: ReadonlyArray<readonly [keyof JobSnapshot, Gauge<'namespace' | 'name'>]>;

  constructor(opts: OperatorMetricsOptions = {}) {
    const registers = [this.registry];
    this.#reconcileTotal = new Counter({
      name: METRIC.reconcileTotal,
      help: 'Total number of reconciliations per controller',
      labelNames: [LABEL.controller, LABEL.result],
      registers,
    });
    this.#reconcileErrors = new Counter({
      name: METRIC.reconcileErrorsTotal,
      help: 'Total number of reconciliation errors per controller',
      labelNames: [LABEL.controller],
      registers,
    });
    this.#reconcileTime = new Histogram({
      name: METRIC.reconcileTimeSeconds,
      help: 'Length of time per reconciliation per controller',
      labelNames: [LABEL.controller],
      buckets: [...RECONCILE_TIME_BUCKETS],
      registers,
    });
    this.#adds = new Counter({ name: METRIC.workqueueAddsTotal, help: 'Total number of adds handled by workqueue', labelNames: [LABEL.name], registers });
    this.#depth = new Gauge({ name: METRIC.workqueueDepth, help: 'Current depth of workqueue', labelNames: [LABEL.name], registers });
    this.#queueDuration = new Histogram({
      name: METRIC.workqueueQueueDurationSeconds,
      help: 'How long in seconds an item stays in workqueue before being requested',
      labelNames: [LABEL.name],
      buckets: [...WORKQUEUE_DURATION_BUCKETS],
      registers,
    });
    this.#workDuration = new Histogram({
      name: METRIC.workqueueWorkDurationSeconds,
      help: 'How long in seconds processing an item from workqueue takes',
      labelNames: [LABEL.name],
      buckets: [...WORKQUEUE_DURATION_BUCKETS],
      registers,
    });
    this.#retries = new Counter({
      name: METRIC.workqueueRetriesTotal,
      help: 'Total number of retries handled by workqueue',
      labelNames: [LABEL.name],
      registers,
    });
    this.#leader = new Gauge({
      name: METRIC.leaderElectionMasterStatus,
      help: 'Gauge of if the reporting system is master of the relevant lease, 0 indicates backup, 1 indicates master',
      labelNames: [LABEL.name],
      registers,
    });
    this.#jobPhase = new Gauge({
      name: METRIC.jobPhase,
      help: 'GmtFineTune phase: 1 for the current phase of each job',
      labelNames: [LABEL.namespace, LABEL.name, LABEL.phase],
      registers,
    });
    const jobGauge = (name: string, help: string) => new Gauge({ name, help, labelNames: [LABEL.namespace, LABEL.name], registers });
    this.#jobGauges = [
      ['step', jobGauge(METRIC.jobStep, 'Optimizer steps completed (status.step)')],
      ['totalSteps', jobGauge(METRIC.jobTotalSteps, 'Planned optimizer steps (status.totalSteps)')],
      ['loss', jobGauge(METRIC.jobLoss, 'Last training loss reported by rank 0')],
      ['samplesPerSecond', jobGauge(METRIC.jobSamplesPerSecond, 'Training throughput reported by rank 0')],
      ['keptRatio', jobGauge(METRIC.jobKeptRatio, 'Fraction of parameters updated in the last step')],
      ['attempt', jobGauge(METRIC.jobAttempt, 'Current gang attempt')],
      ['restarts', jobGauge(METRIC.jobRestarts, 'Gang restarts so far (all causes)')],
    ];
    if (opts.defaultMetrics ?? true) collectDefaultMetrics({ register: this.registry });
  }

  /** Record a job's status in the per-job gauges (values that are absent leave no series). */
  observeJob(namespace: string, name: string, phase: string | undefined, snapshot: JobSnapshot): void {
    this.#jobPhase.remove({ namespace, name });
    for (const p of JOB_PHASES) this.#jobPhase.set({ namespace, name, phase: p }, p === phase ? 1 : 0);
    for (const [field, g] of this.#jobGauges) {
      const v = snapshot[field];
      if (v !== undefined && Number.isFinite(v)) g.set({ namespace, name }, v);
      else g.remove({ namespace, name });
    }
  }

  /** Drop a deleted job's series. */
  forgetJob(namespace: string, name: string): void {
    for (const p of JOB_PHASES) this.#jobPhase.remove({ namespace, name, phase: p });
    for (const [, g] of this.#jobGauges) g.remove({ namespace, name });
  }

  /** Hooks for the WorkQueue named `name`. */
  workQueue(name: string): WorkQueueMetrics {
    // Create the series up front so that they show as 0 before the first event.
    this.#adds.inc({ name }, 0);
    this.#retries.inc({ name }, 0);
    this.#depth.set({ name }, 0);
    return {
      added: () => this.#adds.inc({ name }),
      depth: (n) => this.#depth.set({ name }, n),
      queueLatency: (s) => this.#queueDuration.observe({ name }, s),
      workDuration: (s) => this.#workDuration.observe({ name }, s),
      retried: () => this.#retries.inc({ name }),
    };
  }

  /** Hooks for the Controller named `controller`. */
  controller(controller: string): ControllerMetrics {
    const results: readonly ReconcileResult[] = ['success', 'error', 'requeue', 'requeue_after'];
    for (const result of results) this.#reconcileTotal.inc({ controller, result }, 0);
    this.#reconcileErrors.inc({ controller }, 0);
    return {
      reconciled: (result, seconds) => {
        this.#reconcileTotal.inc({ controller, result });
        if (result === 'error') this.#reconcileErrors.inc({ controller });
        this.#reconcileTime.observe({ controller }, seconds);
      },
    };
  }

  /** Hooks for the LeaderElector of lease `name`. */
  leaderElection(name: string): LeaderElectionMetrics {
    this.#leader.set({ name }, 0);
    return { leading: (isLeader) => this.#leader.set({ name }, isLeader ? 1 : 0) };
  }
}
