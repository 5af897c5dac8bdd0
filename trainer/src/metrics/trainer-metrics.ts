// Prometheus metrics of one trainer process. Names come from names.ts only. Every series carries
// the constant labels job and rank (registry default labels), so ranks of one job and jobs sharing
// a Prometheus stay apart. The registry is private to the instance, never prom-client's global one,
// so that tests (and several trainers in one process) never collide.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import {
  CHECKPOINT_DURATION_BUCKETS,
  LABEL,
  METRIC,
  PHASE_DURATION_BUCKETS,
  REJECT_REASONS,
  SKIP_REASONS,
  STEP_DURATION_BUCKETS,
  type Direction,
  type Phase,
  type RejectReason,
  type SkipReason,
} from './names.js';

/** Identity of the run; job and rank label every series, the rest label gmt_trainer_info. */
export interface TrainerMetricsOptions {
  /** GmtFineTune job id (GMT_JOB_ID). */
  readonly jobId: string;
  /** This worker's rank (GMT_RANK). */
  readonly rank: number;
  /** TensorFlow.js backend name. */
  readonly backend: string;
  /** Training method (gmt, sft, random, hft, oneoff). */
  readonly method: string;
  /** Model name. */
  readonly model: string;
  /** Trainer version. */
  readonly version: string;
  /** Also collect prom-client's process_* / nodejs_* metrics (default true). */
  readonly defaultMetrics?: boolean;
}

/** What one applied optimizer step reports; NaN means "unknown / not defined for this method". */
export interface StepObservation {
  /** Wall time of the whole step, seconds. */
  readonly durationSeconds: number;
  /** Samples consumed by this step on this rank. */
  readonly samples: number;
  /** Tokens consumed by this step on this rank. */
  readonly tokens: number;
  /** Training loss (mean over the step's micro-batches). */
  readonly loss: number;
  /** Fraction of entries updated (kept / trainable). */
  readonly keptRatio: number;
  /** Saliency threshold T_k (NaN for sft and per-tensor scopes without one global value). */
  readonly threshold: number;
  /** Model FLOPs utilisation in [0, 1] (NaN when the peak is unknown). */
  readonly mfu: number;
  /** Learning rate used. */
  readonly lr: number;
  /** Global gradient norm before clipping. */
  readonly gradNorm: number;
  /** Optimizer step just completed (1-based count of steps done). */
  readonly step: number;
  /** Total optimizer steps of the run. */
  readonly totalSteps: number;
}

/** What one evaluation reports; NaN leaves the gauge as it was. */
export interface EvalObservation {
  /** Mean evaluation loss. */
  readonly loss: number;
  /** Exact-match accuracy in [0, 1]. */
  readonly exactMatch: number;
}

/** What one checkpoint write reports. */
export interface CheckpointObservation {
  /** Wall time of the write (including the rename), seconds. */
  readonly durationSeconds: number;
  /** Step stored in the checkpoint. */
  readonly step: number;
}

/** Sets `gauge` to `value` unless it is NaN, so that no series ever reads NaN (it stays as it was). */
function setIfDefined(gauge: Gauge, value: number): void {
  if (!Number.isNaN(value)) gauge.set(value);
}

/** Adds `n` to `counter` when it is a finite, non-negative amount (prom-client throws on < 0). */
function incIfValid(counter: Counter, n: number): void {
  if (Number.isFinite(n) && n >= 0) counter.inc(n);
}

/** The trainer's Prometheus metrics, on a registry of its own. */
export class TrainerMetrics {
  readonly #registry = new Registry();
  readonly #stepDuration: Histogram;
  readonly #steps: Counter;
  readonly #skipped: Counter<typeof LABEL.reason>;
  readonly #samples: Counter;
  readonly #tokens: Counter;
  readonly #samplesPerSecond: Gauge;
  readonly #tokensPerSecond: Gauge;
  readonly #loss: Gauge;
  readonly #keptRatio: Gauge;
  readonly #threshold: Gauge;
  readonly #mfu: Gauge;
  readonly #lr: Gauge;
  readonly #gradNorm: Gauge;
  readonly #step: Gauge;
  readonly #totalSteps: Gauge;
  readonly #evalLoss: Gauge;
  readonly #evalExactMatch: Gauge;
  readonly #checkpointDuration: Histogram;
  readonly #lastCheckpointStep: Gauge;
  readonly #phaseDuration: Histogram<typeof LABEL.phase>;
  readonly #collectiveBytes: Counter<typeof LABEL.phase | typeof LABEL.direction>;
  readonly #rejected: Counter<typeof LABEL.reason>;

  /** Creates every metric on a fresh registry labelled {job, rank}; sets gmt_trainer_info to 1. */
  constructor(options: TrainerMetricsOptions) {
    const r = this.#registry;
    r.setDefaultLabels({ [LABEL.job]: options.jobId, [LABEL.rank]: String(options.rank) });
    const registers = [r];
    const gauge = (name: string, help: string): Gauge => {
      const g = new Gauge({ name, help, registers });
      // prom-client starts an unlabelled gauge at 0; a loss of 0 before the first step would be a
      // lie, so the series is absent until its first real value.
      g.remove();
      return g;
    };
    const counter = (name: string, help: string): Counter => new Counter({ name, help, registers });

    this.#stepDuration = new Histogram({
      name: METRIC.stepDurationSeconds,
      help: 'Wall time of one optimizer step, seconds.',
      buckets: [...STEP_DURATION_BUCKETS],
      registers,
    });
    this.#steps = counter(METRIC.stepsTotal, 'Optimizer steps applied.');
    this.#skipped = new Counter({
      name: METRIC.skippedStepsTotal,
      help: 'Optimizer steps skipped, by reason.',
      labelNames: [LABEL.reason],
      registers,
    });
    this.#samples = counter(METRIC.samplesTotal, 'Training samples consumed by applied steps on this rank.');
    this.#tokens = counter(METRIC.tokensTotal, 'Training tokens consumed by applied steps on this rank.');
    this.#samplesPerSecond = gauge(METRIC.samplesPerSecond, 'Samples per second over the last step.');
    this.#tokensPerSecond = gauge(METRIC.tokensPerSecond, 'Tokens per second over the last step.');
    this.#loss = gauge(METRIC.loss, 'Training loss of the last step.');
    this.#keptRatio = gauge(METRIC.keptRatio, 'Fraction of parameter entries updated by the last step.');
    this.#threshold = gauge(METRIC.maskThreshold, 'Saliency threshold T_k of the last step (absent when undefined).');
    this.#mfu = gauge(METRIC.mfu, 'Model FLOPs utilisation of the last step, 0..1.');
    this.#lr = gauge(METRIC.learningRate, 'Learning rate used by the last step.');
    this.#gradNorm = gauge(METRIC.gradNorm, 'Global L2 norm of the accumulated gradient before clipping.');
    this.#step = gauge(METRIC.step, 'Current optimizer step.');
    this.#totalSteps = gauge(METRIC.totalSteps, 'Total optimizer steps of the run.');
    this.#evalLoss = gauge(METRIC.evalLoss, 'Loss of the last evaluation.');
    this.#evalExactMatch = gauge(METRIC.evalExactMatch, 'Exact-match accuracy of the last evaluation, 0..1.');
    this.#checkpointDuration = new Histogram({
      name: METRIC.checkpointDurationSeconds,
      help: 'Wall time of writing one checkpoint, seconds.',
      buckets: [...CHECKPOINT_DURATION_BUCKETS],
      registers,
    });
    this.#lastCheckpointStep = gauge(METRIC.lastCheckpointStep, 'Step of the last checkpoint written.');
    const info = new Gauge({
      name: METRIC.info,
      help: 'Always 1; the run identity as labels.',
      labelNames: [LABEL.backend, LABEL.method, LABEL.model, LABEL.version],
      registers,
    });
    info.set(
      {
        [LABEL.backend]: options.backend,
        [LABEL.method]: options.method,
        [LABEL.model]: options.model,
        [LABEL.version]: options.version,
      },
      1,
    );
    this.#phaseDuration = new Histogram({
      name: METRIC.phaseDurationSeconds,
      help: 'Wall time of one phase of a step, seconds.',
      labelNames: [LABEL.phase],
      buckets: [...PHASE_DURATION_BUCKETS],
      registers,
    });
    this.#collectiveBytes = new Counter({
      name: METRIC.collectiveBytesTotal,
      help: 'Payload bytes moved by collectives, by phase and direction.',
      labelNames: [LABEL.phase, LABEL.direction],
      registers,
    });
    this.#rejected = new Counter({
      name: METRIC.rejectedMessagesTotal,
      help: 'Collective messages rejected, by reason.',
      labelNames: [LABEL.reason],
      registers,
    });

    // Known label values start at 0 so that rate()/increase() see the first increment.
    for (const reason of SKIP_REASONS) this.#skipped.inc({ [LABEL.reason]: reason }, 0);
    for (const reason of REJECT_REASONS) this.#rejected.inc({ [LABEL.reason]: reason }, 0);

    // process_* / nodejs_* stay unprefixed: that is the Prometheus client convention, and stock
    // dashboards expect those names.
    if (options.defaultMetrics ?? true) collectDefaultMetrics({ register: r });
  }

  /** The instance's own registry (never prom-client's global one). */
  get registry(): Registry {
    return this.#registry;
  }

  /** Content-Type of text(): the Prometheus text exposition format 0.0.4. */
  get contentType(): string {
    return this.#registry.contentType;
  }

  /** Records one applied step: counters add, gauges take the step's values; NaN gauges keep theirs. */
  observeStep(o: StepObservation): void {
    if (Number.isFinite(o.durationSeconds) && o.durationSeconds >= 0) {
      this.#stepDuration.observe(o.durationSeconds);
    }
    this.#steps.inc();
    incIfValid(this.#samples, o.samples);
    incIfValid(this.#tokens, o.tokens);
    if (o.durationSeconds > 0) {
      setIfDefined(this.#samplesPerSecond, o.samples / o.durationSeconds);
      setIfDefined(this.#tokensPerSecond, o.tokens / o.durationSeconds);
    }
    setIfDefined(this.#loss, o.loss);
    setIfDefined(this.#keptRatio, o.keptRatio);
    setIfDefined(this.#threshold, o.threshold);
    setIfDefined(this.#mfu, o.mfu);
    setIfDefined(this.#lr, o.lr);
    setIfDefined(this.#gradNorm, o.gradNorm);
    setIfDefined(this.#step, o.step);
    setIfDefined(this.#totalSteps, o.totalSteps);
  }

  /** Counts one skipped step under a low-cardinality reason (never free text). */
  observeSkip(reason: SkipReason): void {
    this.#skipped.inc({ [LABEL.reason]: reason });
  }

  /** Records the duration of one phase of a step; non-finite or negative durations are dropped. */
  observePhase(phase: Phase, seconds: number): void {
    if (Number.isFinite(seconds) && seconds >= 0) {
      this.#phaseDuration.observe({ [LABEL.phase]: phase }, seconds);
    }
  }

  /** Records one evaluation; NaN fields leave their gauge as it was. */
  observeEval(o: EvalObservation): void {
    setIfDefined(this.#evalLoss, o.loss);
    setIfDefined(this.#evalExactMatch, o.exactMatch);
  }

  /** Records one checkpoint write: its duration and the step it holds. */
  observeCheckpoint(o: CheckpointObservation): void {
    if (Number.isFinite(o.durationSeconds) && o.durationSeconds >= 0) {
      this.#checkpointDuration.observe(o.durationSeconds);
    }
    setIfDefined(this.#lastCheckpointStep, o.step);
  }

  /** Adds `n` payload bytes moved by a collective phase; invalid amounts are dropped. */
  addCollectiveBytes(phase: Phase, direction: Direction, n: number): void {
    if (Number.isFinite(n) && n >= 0) {
      this.#collectiveBytes.inc({ [LABEL.phase]: phase, [LABEL.direction]: direction }, n);
    }
  }

  /** Counts one rejected collective message (reasons are defined in names.ts, never free text). */
  countRejected(reason: RejectReason): void {
    this.#rejected.inc({ [LABEL.reason]: reason });
  }

  /** The whole registry in the Prometheus text exposition format. */
  text(): Promise<string> {
    return this.#registry.metrics();
  }
}
