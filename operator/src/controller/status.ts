/**
 * computeStatus: the pure heart of the reconciler. From what is observed (the job, the pods of its
 * current attempt, the latest progress message, the clock) it derives the next status and the
 * guarded steps the reconciler must take. No I/O; table-driven tests cover it.
 *
 * Order of evaluation (first match decides):
 *   terminal (Succeeded/Failed)    → stop active pods; TTL: delete the job when due
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

/** Computes the next status and the steps to take (see the file comment). */
export function computeStatus(o: Observation): Decision {
  const { job, now } = o;
  const nowIso = formatTime(now);
  const gen = job.metadata.generation;
  const prev: GmtFineTuneStatus = job.status ?? {};
  const rp = job.spec.runPolicy;
  const workers = job.spec.workers;
  const before = prev.conditions ?? [];
  let conds: Condition[] = [...before];
  const set = (c: ConditionInput): void => void (conds = setCondition(conds, c, nowIso, gen).conditions);
  const setIfPresent = (c: ConditionInput): void => {
    if (findCondition(conds, c.type) !== undefined) set(c);
  };
  let attempt = prev.attempt ?? 0;
  let restarts = prev.restarts ?? { total: 0 };
  const s: GmtFineTuneStatus = { ...prev };
  let phase: Phase = (prev.phase as Phase | undefined) ?? PHASES.pending;
  let create = false;
  let deletePods: PodDeletion = 'none';
  let deleteJob = false;
  let requeue: number | undefined;
  const requeueIn = (ms: number): void => void (requeue = Math.max(1000, Math.min(requeue ?? Infinity, ms)));

  // Progress from rank 0 of the current attempt (older attempts' late messages are ignored).
  const msg = o.progress?.message;
  let stepMoved = false;
  if (o.progress !== undefined && msg !== undefined && msg.attempt === attempt) {
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
  }
  s.totalSteps ??= job.spec.training.steps;
  const progressText = computeProgress(s.step, s.totalSteps);
  if (progressText !== undefined) s.progress = progressText;

  const outcomes = o.pods.map(classifyPod);
  s.workers = workerCounts(outcomes);

  const fail = (reason: string, message: string): void => {
    set({ type: CONDITION_TYPES.failed, status: 'True', reason, message });
    setIfPresent({ type: CONDITION_TYPES.running, status: 'False', reason, message: 'the job failed' });
    if (isTrue(conds, CONDITION_TYPES.restarting)) set({ type: CONDITION_TYPES.restarting, status: 'False', reason, message: 'the job failed' });
    s.completionTime ??= nowIso;
    phase = PHASES.failed;
    deletePods = 'active';
  };

  const terminal = isTrue(before, CONDITION_TYPES.succeeded) || isTrue(before, CONDITION_TYPES.failed);
  if (terminal) {
    deletePods = 'active';
    const ttl = rp.ttlSecondsAfterFinished;
    if (ttl !== undefined && prev.completionTime !== undefined) {
      const due = Date.parse(prev.completionTime) + ttl * 1000;
      if (now >= due) deleteJob = true;
      else requeueIn(due - now);
    }
  } else if (workers > 1 && o.natsUrl === '') {
    fail(REASONS.invalidSpec, 'spec.nats.url is not set and the operator has no default NATS URL (--nats-url): 2 or more workers need NATS');
  } else if (rp.suspend) {
    set({
      type: CONDITION_TYPES.suspended,
      status: 'True',
      reason: REASONS.suspended,
      message: 'spec.runPolicy.suspend is true: no worker runs; training resumes from the last checkpoint',
    });
    setIfPresent({ type: CONDITION_TYPES.running, status: 'False', reason: REASONS.suspended, message: 'the job is suspended' });
    // Kubernetes Job semantics: the active deadline counts from the last resume.
    delete s.startTime;
    phase = PHASES.suspended;
    deletePods = 'all';
  } else {
    if (isTrue(before, CONDITION_TYPES.suspended)) {
      set({
        type: CONDITION_TYPES.suspended,
        status: 'False',
        reason: REASONS.resumed,
        message: 'spec.runPolicy.suspend is false: the workers resume from the last checkpoint',
      });
      if (o.pods.length > 0 || o.otherPods > 0 || isTrue(before, CONDITION_TYPES.created)) attempt += 1; // fresh pod names for the resumed gang
    }
    const ads = rp.activeDeadlineSeconds;
    const started = s.startTime !== undefined ? Date.parse(s.startTime) : undefined;
    if (ads !== undefined && started !== undefined && now >= started + ads * 1000) {
      fail(REASONS.deadlineExceeded, `the job ran longer than spec.runPolicy.activeDeadlineSeconds (${ads} s)`);
    } else {
      if (ads !== undefined && started !== undefined) requeueIn(started + ads * 1000 - now);
      const resumedNow = attempt !== (prev.attempt ?? 0);
      const gang = resumedNow ? ({ kind: 'absent' } as const) : decideGang(o, outcomes, conds, s, stepMoved, requeueIn);
      if (gang.kind === 'restart' && gang.cause === RESTART_CAUSES.stalled) {
        set({ type: CONDITION_TYPES.stalled, status: 'True', reason: REASONS.noStepProgress, message: gang.message });
      } else if (stepMoved && isTrue(conds, CONDITION_TYPES.stalled)) {
        set({ type: CONDITION_TYPES.stalled, status: 'False', reason: REASONS.progressResumed, message: `step advanced to ${s.step ?? 0}` });
      }
      const restartingNow = isTrue(conds, CONDITION_TYPES.restarting);
      const waitingPhase = restartingNow ? PHASES.restarting : PHASES.pending;
      switch (gang.kind) {
        case 'fail':
          fail(REASONS.nonRetryableFailure, gang.message);
          break;
        case 'restart':
          if (restarts.total >= rp.backoffLimit) {
            fail(REASONS.backoffLimitExceeded, `${gang.message}; spec.runPolicy.backoffLimit (${rp.backoffLimit}) gang restarts used up`);
            break;
          }
          restarts = { ...restarts, total: restarts.total + 1, [gang.cause]: (restarts[gang.cause] ?? 0) + 1 };
          attempt += 1;
          set({
            type: CONDITION_TYPES.restarting,
            status: 'True',
            reason: RESTART_REASON[gang.cause],
            message: `restarting the gang as attempt ${attempt} from the last checkpoint: ${gang.message}`,
          });
          set({ type: CONDITION_TYPES.running, status: 'False', reason: RESTART_REASON[gang.cause], message: gang.message });
          setIfPresent({ type: CONDITION_TYPES.created, status: 'False', reason: REASONS.workersPending, message: `attempt ${attempt} not created yet` });
          phase = PHASES.restarting;
          break;
        case 'succeeded':
          set({
            type: CONDITION_TYPES.succeeded,
            status: 'True',
            reason: REASONS.trainingCompleted,
            message: `all ${workers} workers finished ${s.totalSteps ?? ''} steps`.replace(/ {2}/, ' '),
          });
          setIfPresent({ type: CONDITION_TYPES.running, status: 'False', reason: REASONS.trainingCompleted, message: 'training completed' });
          if (restartingNow) set({ type: CONDITION_TYPES.restarting, status: 'False', reason: REASONS.trainingCompleted, message: 'training completed' });
          s.completionTime ??= nowIso;
          phase = PHASES.succeeded;
          break;
        case 'absent': {
          // A new attempt starts only when the previous one's pods are gone (its rank 0 may still be
          // writing the checkpoint the new attempt resumes from).
          const waitingFor = o.otherPods + (attempt !== (prev.attempt ?? 0) ? o.pods.length : 0);
          if (waitingFor === 0) {
            create = true;
            set({
              type: CONDITION_TYPES.created,
              status: 'True',
              reason: REASONS.childrenCreated,
              message: `created ${workers} worker pods for attempt ${attempt}`,
            });
          }
          set({
            type: CONDITION_TYPES.running,
            status: 'False',
            reason: REASONS.workersPending,
            message: waitingFor > 0 ? `waiting for ${waitingFor} pods of the previous attempt to terminate` : 'creating worker pods',
          });
          phase = waitingPhase;
          break;
        }
        case 'pending': {
          if (o.pods.length < workers) create = true; // partial create or a cache lag: SSA is idempotent
          const reason = gang.reason === 'Unschedulable' ? REASONS.unschedulable : REASONS.workersPending;
          const msgText = `${s.workers.ready ?? 0}/${workers} workers running${gang.reason !== undefined ? `; ${gang.reason}${gang.message !== undefined ? `: ${gang.message}` : ''}` : ''}`;
          set({ type: CONDITION_TYPES.running, status: 'False', reason, message: msgText });
          phase = waitingPhase;
          break;
        }
        case 'running':
          set({ type: CONDITION_TYPES.running, status: 'True', reason: REASONS.workersRunning, message: `${workers} workers running (attempt ${attempt})` });
          if (restartingNow) set({ type: CONDITION_TYPES.restarting, status: 'False', reason: REASONS.workersRunning, message: `attempt ${attempt} running` });
          s.startTime ??= nowIso;
          phase = PHASES.running;
          break;
      }
    }
  }

  s.phase = phase;
  s.attempt = attempt;
  s.restarts = restarts;
  s.conditions = conds;
  if (gen !== undefined) s.observedGeneration = gen;
  return { status: s, create, deletePods, deleteJob, requeueAfterMs: requeue, events: transitionEvents(before, conds) };
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
