/**
 * computeStatus: the pure heart of the reconciler. From what is observed (the job, the pods of its
 * current attempt, the latest progress message, the clock) it derives the next status and the
 * guarded steps the reconciler must take. No I/O; table-driven tests cover it.
 *
 * Order of evaluation (first match decides):
 *   terminal (Succeeded/Failed)    → stop active pods; TTL: delete the job when due
 *   (pods that cannot start, START_FAILURE_REASONS, past startupDeadlineSeconds → Failed with their reason)
 *   invalid spec (no NATS URL)     → Failed/InvalidSpec
 *   spec.runPolicy.suspend         → Suspended; delete every pod (SIGTERM: rank 0 checkpoints)
 *   activeDeadlineSeconds passed   → Failed/DeadlineExceeded
 *   the gang table (policy.ts), with progressDeadlineSeconds turning "running" into a stalled restart
 */
import {
  CONDITION_TYPES,
  PHASES,
  REASONS,
  RESTART_CAUSES,
  START_FAILURE_REASONS,
  computeDisplay,
  computeProgress,
  type Condition,
  type GmtFineTune,
  type GmtFineTuneStatus,
  type Phase,
  type RestartCause,
} from '../api/index.js';
import { findCondition, isTrue, setCondition, type ConditionInput } from './conditions.js';
import { classifyPod, computeGangOutcome, type GangOutcome, type PodOutcome } from './policy.js';
import type { PodView } from './pod-view.js';
import type { ProgressSnapshot } from './progress-snapshot.js';
import { LABELS } from '../api/index.js';

/** What computeStatus looks at. */
export interface Observation {
  readonly job: GmtFineTune;
  /** Live pods (not being deleted by us) of the job's current attempt (status.attempt). */
  readonly pods: readonly PodView[];
  /** Pods of other attempts that still exist (a new attempt waits until they are gone). */
  readonly otherPods: number;
  /** Latest progress message of the job, if any. */
  readonly progress: ProgressSnapshot | undefined;
  /** The NATS URL the workers would get ('' when neither the spec nor the operator sets one). */
  readonly natsUrl: string;
  /** Epoch ms. */
  readonly now: number;
}

/** Which pods to delete: none, all of them (suspend), or those still running (terminal). Pods of other attempts are always deleted. */
export type PodDeletion = 'none' | 'all' | 'active';

/** An event to record on the job. */
export interface EventSpec {
  readonly type: 'Normal' | 'Warning';
  readonly reason: string;
  readonly message: string;
}

/** What the reconciler must do. */
export interface Decision {
  readonly status: GmtFineTuneStatus;
  /** Ensure the Service, the ConfigMap and every worker pod of status.attempt. */
  readonly create: boolean;
  readonly deletePods: PodDeletion;
  /** ttlSecondsAfterFinished passed: delete the GmtFineTune (children go by garbage collection). */
  readonly deleteJob: boolean;
  /** Reconcile again after this long (deadlines, TTL). */
  readonly requeueAfterMs: number | undefined;
  readonly events: readonly EventSpec[];
}

/** metav1.Time text (second precision, as the API server writes it). */
export function formatTime(ms: number): string {
  return new Date(Math.floor(ms / 1000) * 1000).toISOString().replace(/\.000Z$/, 'Z');
}

/** Condition reason of a restart cause. */
export const RESTART_REASON: Readonly<Record<RestartCause, string>> = {
  [RESTART_CAUSES.retryable]: REASONS.retryableFailure,
  [RESTART_CAUSES.stalled]: REASONS.noStepProgress,
  [RESTART_CAUSES.preempted]: REASONS.preempted,
  [RESTART_CAUSES.other]: REASONS.podFailed,
};

/** Condition types whose becoming True is a Warning event. */
const WARNING_TYPES: ReadonlySet<string> = new Set([CONDITION_TYPES.failed, CONDITION_TYPES.restarting, CONDITION_TYPES.stalled]);

/** Rank label of a pod (−1 when missing or malformed). */
export function podRank(pod: PodView): number {
  const r = Number(pod.metadata.labels?.[LABELS.rank] ?? 'x');
  return Number.isInteger(r) ? r : -1;
}

/** Attempt label of a pod (−1 when missing or malformed). */
export function podAttempt(pod: PodView): number {
  const a = Number(pod.metadata.labels?.[LABELS.attempt] ?? 'x');
  return Number.isInteger(a) ? a : -1;
}

function workerCounts(outcomes: readonly PodOutcome[]): NonNullable<GmtFineTuneStatus['workers']> {
  return {
    active: outcomes.filter((o) => o.kind === 'pending' || o.kind === 'running').length,
    ready: outcomes.filter((o) => o.kind === 'running').length,
    succeeded: outcomes.filter((o) => o.kind === 'succeeded').length,
    failed: outcomes.filter((o) => o.kind === 'fail' || o.kind === 'restart').length,
  };
}

/** Events for conditions that became True (and for a Restarting condition with a new message, and a resume). */
function transitionEvents(before: readonly Condition[], after: readonly Condition[]): EventSpec[] {
  const out: EventSpec[] = [];
  for (const c of after) {
    const old = before.find((b) => b.type === c.type);
    const newlyTrue = c.status === 'True' && old?.status !== 'True';
    const restartAgain = c.type === CONDITION_TYPES.restarting && c.status === 'True' && old?.status === 'True' && old.message !== c.message;
    const resumed = c.type === CONDITION_TYPES.suspended && c.status === 'False' && old?.status === 'True';
    if (newlyTrue || restartAgain || resumed)
      out.push({ type: WARNING_TYPES.has(c.type) && c.status === 'True' ? 'Warning' : 'Normal', reason: c.reason, message: c.message });
  }
  return out;
}

/** computeStatus's working state: the status being built and the steps decided so far. */
interface Draft {
  readonly o: Observation;
  readonly prev: GmtFineTuneStatus;
  /** Conditions as observed (events are their transitions). */
  readonly before: readonly Condition[];
  readonly nowIso: string;
  readonly s: GmtFineTuneStatus;
  conds: Condition[];
  phase: Phase;
  attempt: number;
  restarts: NonNullable<GmtFineTuneStatus['restarts']>;
  create: boolean;
  deletePods: PodDeletion;
  deleteJob: boolean;
  requeue: number | undefined;
  /** status.reason: set where the phase needs attention (a start problem, the failure reason). */
  reason: string | undefined;
  /** A Warning event for a newly seen start problem. */
  startProblem: EventSpec | undefined;
}

function set(d: Draft, c: ConditionInput): void {
  d.conds = setCondition(d.conds, c, d.nowIso, d.o.job.metadata.generation).conditions;
}

function setIfPresent(d: Draft, c: ConditionInput): void {
  if (findCondition(d.conds, c.type) !== undefined) set(d, c);
}

/** Reconcile again within `ms` (at least 1 s; the earliest request wins). */
function requeueIn(d: Draft, ms: number): void {
  d.requeue = Math.max(1000, Math.min(d.requeue ?? Infinity, ms));
}

/** Computes the next status and the steps to take (see the file comment). */
export function computeStatus(o: Observation): Decision {
  const d = startDraft(o);
  const stepMoved = applyProgress(d);
  const outcomes = o.pods.map(classifyPod);
  d.s.workers = workerCounts(outcomes);
  const rp = o.job.spec.runPolicy;
  if (isTrue(d.before, CONDITION_TYPES.succeeded) || isTrue(d.before, CONDITION_TYPES.failed)) expireTerminal(d);
  else if (o.job.spec.workers > 1 && o.natsUrl === '')
    fail(d, REASONS.invalidSpec, 'spec.nats.url is not set and the operator has no default NATS URL (--nats-url): 2 or more workers need NATS');
  else if (rp.suspend) suspend(d);
  else runGang(d, outcomes, stepMoved);
  return finishDraft(d);
}

function startDraft(o: Observation): Draft {
  const prev: GmtFineTuneStatus = o.job.status ?? {};
  const before = prev.conditions ?? [];
  return {
    o,
    prev,
    before,
    nowIso: formatTime(o.now),
    s: { ...prev },
    conds: [...before],
    phase: (prev.phase as Phase | undefined) ?? PHASES.pending,
    attempt: prev.attempt ?? 0,
    restarts: prev.restarts ?? { total: 0 },
    create: false,
    deletePods: 'none',
    deleteJob: false,
    requeue: undefined,
    reason: undefined,
    startProblem: undefined,
  };
}

function finishDraft(d: Draft): Decision {
  const { s } = d;
  const gen = d.o.job.metadata.generation;
  s.phase = d.phase;
  s.attempt = d.attempt;
  s.restarts = d.restarts;
  s.conditions = d.conds;
  if (d.reason !== undefined) s.reason = d.reason;
  else delete s.reason;
  const display = computeDisplay(s);
  if (Object.keys(display).length > 0) s.display = display;
  else delete s.display;
  if (gen !== undefined) s.observedGeneration = gen;
  const events = transitionEvents(d.before, d.conds);
  if (d.startProblem !== undefined) events.unshift(d.startProblem);
  return { status: s, create: d.create, deletePods: d.deletePods, deleteJob: d.deleteJob, requeueAfterMs: d.requeue, events };
}

/** Progress from rank 0 of the current attempt (older attempts' late messages are ignored); returns whether the step moved. */
function applyProgress(d: Draft): boolean {
  const { o, prev, s } = d;
  const msg = o.progress?.message;
  let stepMoved = false;
  if (o.progress !== undefined && msg !== undefined && msg.attempt === d.attempt) {
    stepMoved = prev.step !== msg.step || prev.lastProgressTime === undefined;
    s.step = msg.step;
    if (msg.totalSteps != null) s.totalSteps = msg.totalSteps;
    if (msg.epoch != null) s.epoch = msg.epoch;
    if (msg.loss != null && Number.isFinite(msg.loss)) s.loss = msg.loss;
    if (msg.samplesPerSecond != null && msg.samplesPerSecond >= 0) s.samplesPerSecond = msg.samplesPerSecond;
    if (msg.tokensPerSecond != null && msg.tokensPerSecond >= 0) s.tokensPerSecond = msg.tokensPerSecond;
    if (msg.keptRatio != null && msg.keptRatio >= 0 && msg.keptRatio <= 1) s.keptRatio = msg.keptRatio;
    if (msg.lastCheckpoint != null && msg.lastCheckpoint !== '') s.lastCheckpoint = msg.lastCheckpoint;
    if (msg.backend != null && msg.backend !== '') s.backend = msg.backend;
    if (stepMoved) s.lastProgressTime = formatTime(o.progress.stepChangedAt);
    applyEvaluation(d, msg.evaluation);
  }
  s.totalSteps ??= o.job.spec.training.steps;
  const progressText = computeProgress(s.step, s.totalSteps);
  if (progressText !== undefined) s.progress = progressText;
  return stepMoved;
}

/**
 * Evaluations from a progress message. Every message repeats what rank 0 knows, so one lost message
 * loses nothing; a resumed attempt that skipped "before" keeps the earlier attempt's.
 */
function applyEvaluation(d: Draft, ev: NonNullable<ProgressSnapshot['message']>['evaluation']): void {
  if (ev == null) return;
  const next = { ...(d.prev.evaluation ?? {}) };
  for (const key of ['before', 'last', 'after'] as const) {
    const r = ev[key];
    if (r == null) continue;
    const e: NonNullable<NonNullable<GmtFineTuneStatus['evaluation']>['before']> = {};
    if (r.loss != null && Number.isFinite(r.loss)) e.loss = r.loss;
    if (r.exactMatch != null && r.exactMatch >= 0 && r.exactMatch <= 1) e.exactMatch = r.exactMatch;
    if (r.examples != null) e.examples = r.examples;
    if (r.step != null) e.step = r.step;
    next[key] = e;
  }
  d.s.evaluation = next;
}

function fail(d: Draft, reason: string, message: string): void {
  d.reason = reason;
  set(d, { type: CONDITION_TYPES.failed, status: 'True', reason, message });
  setIfPresent(d, { type: CONDITION_TYPES.running, status: 'False', reason, message: 'the job failed' });
  if (isTrue(d.conds, CONDITION_TYPES.restarting)) set(d, { type: CONDITION_TYPES.restarting, status: 'False', reason, message: 'the job failed' });
  d.s.completionTime ??= d.nowIso;
  d.phase = PHASES.failed;
  d.deletePods = 'active';
}

/** Succeeded or Failed: stop active pods; delete the job once ttlSecondsAfterFinished has passed. */
function expireTerminal(d: Draft): void {
  d.reason = d.prev.reason;
  d.deletePods = 'active';
  const ttl = d.o.job.spec.runPolicy.ttlSecondsAfterFinished;
  if (ttl === undefined || d.prev.completionTime === undefined) return;
  const due = Date.parse(d.prev.completionTime) + ttl * 1000;
  if (d.o.now >= due) d.deleteJob = true;
  else requeueIn(d, due - d.o.now);
}

function suspend(d: Draft): void {
  set(d, {
    type: CONDITION_TYPES.suspended,
    status: 'True',
    reason: REASONS.suspended,
    message: 'spec.runPolicy.suspend is true: no worker runs; training resumes from the last checkpoint',
  });
  setIfPresent(d, { type: CONDITION_TYPES.running, status: 'False', reason: REASONS.suspended, message: 'the job is suspended' });
  // Kubernetes Job semantics: the active deadline counts from the last resume.
  delete d.s.startTime;
  d.phase = PHASES.suspended;
  d.deletePods = 'all';
}

/** Not terminal, valid, not suspended: resume, the active deadline, then the gang table. */
function runGang(d: Draft, outcomes: readonly PodOutcome[], stepMoved: boolean): void {
  const { o, s } = d;
  if (isTrue(d.before, CONDITION_TYPES.suspended)) {
    set(d, {
      type: CONDITION_TYPES.suspended,
      status: 'False',
      reason: REASONS.resumed,
      message: 'spec.runPolicy.suspend is false: the workers resume from the last checkpoint',
    });
    if (o.pods.length > 0 || o.otherPods > 0 || isTrue(d.before, CONDITION_TYPES.created)) d.attempt += 1; // fresh pod names for the resumed gang
  }
  const ads = o.job.spec.runPolicy.activeDeadlineSeconds;
  const started = s.startTime !== undefined ? Date.parse(s.startTime) : undefined;
  if (ads !== undefined && started !== undefined && o.now >= started + ads * 1000) {
    fail(d, REASONS.deadlineExceeded, `the job ran longer than spec.runPolicy.activeDeadlineSeconds (${ads} s)`);
    return;
  }
  if (ads !== undefined && started !== undefined) requeueIn(d, started + ads * 1000 - o.now);
  const resumedNow = d.attempt !== (d.prev.attempt ?? 0);
  const gang = resumedNow ? ({ kind: 'absent' } as const) : decideGang(o, outcomes, d.conds, s, stepMoved, (ms) => requeueIn(d, ms));
  if (gang.kind === 'restart' && gang.cause === RESTART_CAUSES.stalled) {
    set(d, { type: CONDITION_TYPES.stalled, status: 'True', reason: REASONS.noStepProgress, message: gang.message });
  } else if (stepMoved && isTrue(d.conds, CONDITION_TYPES.stalled)) {
    set(d, { type: CONDITION_TYPES.stalled, status: 'False', reason: REASONS.progressResumed, message: `step advanced to ${s.step ?? 0}` });
  }
  const restartingNow = isTrue(d.conds, CONDITION_TYPES.restarting);
  const waitingPhase = restartingNow ? PHASES.restarting : PHASES.pending;
  switch (gang.kind) {
    case 'fail':
      fail(d, REASONS.nonRetryableFailure, gang.message);
      break;
    case 'restart':
      restartGang(d, gang.cause, gang.message);
      break;
    case 'succeeded':
      markSucceeded(d, restartingNow);
      break;
    case 'absent':
      createAttempt(d, waitingPhase);
      break;
    case 'pending':
      markPending(d, gang, waitingPhase);
      break;
    case 'running':
      markRunning(d, restartingNow);
      break;
  }
}

/** A restartable gang failure: a new attempt from the last checkpoint, or Failed once backoffLimit is used up. */
function restartGang(d: Draft, cause: RestartCause, message: string): void {
  const rp = d.o.job.spec.runPolicy;
  if (d.restarts.total >= rp.backoffLimit) {
    fail(d, REASONS.backoffLimitExceeded, `${message}; spec.runPolicy.backoffLimit (${rp.backoffLimit}) gang restarts used up`);
    return;
  }
  d.restarts = { ...d.restarts, total: d.restarts.total + 1, [cause]: (d.restarts[cause] ?? 0) + 1 };
  d.attempt += 1;
  set(d, {
    type: CONDITION_TYPES.restarting,
    status: 'True',
    reason: RESTART_REASON[cause],
    message: `restarting the gang as attempt ${d.attempt} from the last checkpoint: ${message}`,
  });
  set(d, { type: CONDITION_TYPES.running, status: 'False', reason: RESTART_REASON[cause], message });
  setIfPresent(d, { type: CONDITION_TYPES.created, status: 'False', reason: REASONS.workersPending, message: `attempt ${d.attempt} not created yet` });
  d.phase = PHASES.restarting;
}

function markSucceeded(d: Draft, restartingNow: boolean): void {
  set(d, {
    type: CONDITION_TYPES.succeeded,
    status: 'True',
    reason: REASONS.trainingCompleted,
    message: `all ${d.o.job.spec.workers} workers finished ${d.s.totalSteps ?? ''} steps`.replace(/ {2}/, ' '),
  });
  setIfPresent(d, { type: CONDITION_TYPES.running, status: 'False', reason: REASONS.trainingCompleted, message: 'training completed' });
  if (restartingNow) set(d, { type: CONDITION_TYPES.restarting, status: 'False', reason: REASONS.trainingCompleted, message: 'training completed' });
  d.s.completionTime ??= d.nowIso;
  // Every worker exited 0, which a trainer does only after its last step: the final progress message
  // can be missed (it goes out while no operator replica listens, e.g. during a leader takeover).
  if (d.s.totalSteps != null) {
    d.s.step = d.s.totalSteps;
    d.s.progress = computeProgress(d.s.step, d.s.totalSteps) ?? d.s.progress;
  }
  d.phase = PHASES.succeeded;
}

/**
 * No pods of this attempt: create them — but only once the previous attempt's pods are gone (its
 * rank 0 may still be writing the checkpoint the new attempt resumes from).
 */
function createAttempt(d: Draft, waitingPhase: Phase): void {
  const { o } = d;
  const waitingFor = o.otherPods + (d.attempt !== (d.prev.attempt ?? 0) ? o.pods.length : 0);
  if (waitingFor === 0) {
    d.create = true;
    set(d, {
      type: CONDITION_TYPES.created,
      status: 'True',
      reason: REASONS.childrenCreated,
      message: `created ${o.job.spec.workers} worker pods for attempt ${d.attempt}`,
    });
  }
  set(d, {
    type: CONDITION_TYPES.running,
    status: 'False',
    reason: REASONS.workersPending,
    message: waitingFor > 0 ? `waiting for ${waitingFor} pods of the previous attempt to terminate` : 'creating worker pods',
  });
  d.phase = waitingPhase;
}

function markPending(d: Draft, gang: Extract<GangOutcome, { kind: 'pending' }>, waitingPhase: Phase): void {
  const workers = d.o.job.spec.workers;
  if (d.o.pods.length < workers) d.create = true; // partial create or a cache lag: SSA is idempotent
  const condReason = gang.reason === 'Unschedulable' ? REASONS.unschedulable : REASONS.workersPending;
  const detail = gang.reason !== undefined ? `${gang.reason}${gang.message !== undefined ? `: ${gang.message}` : ''}` : undefined;
  const msgText = `${d.s.workers?.ready ?? 0}/${workers} workers running${detail !== undefined ? `; ${detail}` : ''}`;
  set(d, { type: CONDITION_TYPES.running, status: 'False', reason: condReason, message: msgText });
  d.phase = waitingPhase;
  if (gang.reason !== undefined && START_FAILURE_REASONS.has(gang.reason)) checkStartup(d, gang.reason, detail ?? gang.reason);
}

/** Pods that cannot start: their reason in status.reason and a Warning event at once; Failed after spec.runPolicy.startupDeadlineSeconds. */
function checkStartup(d: Draft, podReason: string, detail: string): void {
  const deadline = d.o.job.spec.runPolicy.startupDeadlineSeconds;
  d.reason = podReason;
  // The startup deadline counts from this attempt's pods being created.
  const created = findCondition(d.conds, CONDITION_TYPES.created);
  const since = created?.status === 'True' ? Date.parse(created.lastTransitionTime) : d.o.now;
  const due = since + deadline * 1000;
  if (d.o.now >= due) {
    fail(d, podReason, `the workers could not start within spec.runPolicy.startupDeadlineSeconds (${deadline} s): ${detail}`);
    return;
  }
  requeueIn(d, due - d.o.now);
  if (d.prev.reason !== podReason)
    d.startProblem = {
      type: 'Warning',
      reason: REASONS.workersCannotStart,
      message: `${detail}; the job fails if the workers cannot start within ${deadline} s (spec.runPolicy.startupDeadlineSeconds)`,
    };
}

function markRunning(d: Draft, restartingNow: boolean): void {
  set(d, {
    type: CONDITION_TYPES.running,
    status: 'True',
    reason: REASONS.workersRunning,
    message: `${d.o.job.spec.workers} workers running (attempt ${d.attempt})`,
  });
  if (restartingNow) set(d, { type: CONDITION_TYPES.restarting, status: 'False', reason: REASONS.workersRunning, message: `attempt ${d.attempt} running` });
  d.s.startTime ??= d.nowIso;
  d.phase = PHASES.running;
}

/** The gang outcome, with lost ranks and the progress deadline folded in. */
function decideGang(
  o: Observation,
  outcomes: readonly PodOutcome[],
  conds: readonly Condition[],
  s: GmtFineTuneStatus,
  stepMoved: boolean,
  requeueIn: (ms: number) => void,
): GangOutcome {
  const workers = o.job.spec.workers;
  const present = new Set(o.pods.map(podRank));
  const missing = Array.from({ length: workers }, (_, r) => r).filter((r) => !present.has(r));
  // The pods are created before the status write that records Created: an operator that died in
  // between (SIGKILL, node loss) left part of the gang uncreated, not lost. Finish creating it.
  if (missing.length > 0 && !isTrue(conds, CONDITION_TYPES.created)) return { kind: 'absent' };
  const started = outcomes.some((x) => x.kind !== 'pending');
  const gang = computeGangOutcome(outcomes, workers, started ? missing : []);
  const pds = o.job.spec.runPolicy.progressDeadlineSeconds;
  if (gang.kind !== 'running' || stepMoved) {
    if (gang.kind === 'running') requeueIn(pds * 1000);
    return gang;
  }
  // Hang detection: no new step since max(last step change, this attempt's Running transition).
  const running = findCondition(conds, CONDITION_TYPES.running);
  const since = Math.max(
    s.lastProgressTime !== undefined ? Date.parse(s.lastProgressTime) : 0,
    running?.status === 'True' ? Date.parse(running.lastTransitionTime) : o.now,
  );
  const due = since + pds * 1000;
  if (o.now >= due)
    return {
      kind: 'restart',
      cause: RESTART_CAUSES.stalled,
      message: `no step progress for ${pds} s (spec.runPolicy.progressDeadlineSeconds) at step ${s.step ?? 0}`,
    };
  requeueIn(due - o.now);
  return gang;
}

/** Marks child creation failed (the reconciler calls this when an apply fails). */
export function markCreateFailed(status: GmtFineTuneStatus, message: string, now: number, generation: number | undefined): GmtFineTuneStatus {
  const { conditions } = setCondition(
    status.conditions ?? [],
    { type: CONDITION_TYPES.created, status: 'False', reason: REASONS.childCreationFailed, message },
    formatTime(now),
    generation,
  );
  return { ...status, conditions };
}

/** Canonical JSON (sorted keys) for "did the status change". */
export function canonicalJson(x: unknown): string {
  return JSON.stringify(x, (_k, v: unknown) =>
    v !== null && typeof v === 'object' && !Array.isArray(v)
      ? Object.fromEntries(
          Object.entries(v as Record<string, unknown>)
            .filter(([, e]) => e !== undefined)
            .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)),
        )
      : v,
  );
}
