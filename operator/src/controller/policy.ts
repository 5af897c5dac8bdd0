/**
 * The failure policy as tables (STYLE: policies are tables): what a worker's exit means for the
 * gang. Exit codes are the trainer's (trainer/src/errors.ts, docs/architecture.md §4): 75/76 mean "restart
 * the gang from the last checkpoint", 1–5 mean "restarting cannot help". A signal death (128+n),
 * an eviction, a preemption or a vanished pod is infrastructure: restart.
 */
import { EXIT_CODES } from '../../../contract/exit-codes.js';
import { RESTART_CAUSES, type RestartCause } from '../api/index.js';
import { CONTAINER_NAME } from './children.js';
import type { PodView, TerminatedState } from './pod-view.js';

/** What one exit code means. */
export type ExitPolicy =
  | { readonly action: 'succeed' }
  | { readonly action: 'restart'; readonly cause: RestartCause; readonly what: string }
  | { readonly action: 'fail'; readonly what: string };

/** Exit code → action. Codes not listed: a signal death (> 128) restarts, anything else fails. */
export const EXIT_CODE_POLICY: Readonly<Record<number, ExitPolicy>> = {
  [EXIT_CODES.ok]: { action: 'succeed' },
  [EXIT_CODES.internal]: { action: 'fail', what: 'internal trainer error' },
  [EXIT_CODES.config]: { action: 'fail', what: 'invalid trainer configuration' },
  [EXIT_CODES.data]: { action: 'fail', what: 'invalid training data' },
  [EXIT_CODES.checkpoint]: { action: 'fail', what: 'incompatible or corrupt checkpoint' },
  [EXIT_CODES.numeric]: { action: 'fail', what: 'training diverged (non-finite values)' },
  [EXIT_CODES.retryable]: { action: 'restart', cause: RESTART_CAUSES.retryable, what: 'peer lost, collective aborted or NATS lost' },
  [EXIT_CODES.interrupted]: { action: 'restart', cause: RESTART_CAUSES.retryable, what: 'interrupted' },
};

/** The policy of `exitCode` (table first, then the signal rule). */
export function exitPolicy(exitCode: number): ExitPolicy {
  const p = EXIT_CODE_POLICY[exitCode];
  if (p !== undefined) return p;
  if (exitCode > 128) return { action: 'restart', cause: RESTART_CAUSES.other, what: `killed by signal ${exitCode - 128}` };
  return { action: 'fail', what: `unexpected exit code ${exitCode}` };
}

/** Pod-level reasons that mean the pod was taken away (kubelet/eviction API/taint manager/scheduler). */
export const PREEMPTION_REASONS: ReadonlySet<string> = new Set([
  'Evicted',
  'Preempting',
  'DeletionByTaintManager',
  'NodeLost',
  'NodeShutdown',
  'Terminated',
  'UnexpectedAdmissionError',
]);

/** What one worker pod says. */
export type PodOutcome =
  | { readonly kind: 'pending'; readonly reason?: string; readonly message?: string }
  | { readonly kind: 'running' }
  | { readonly kind: 'succeeded' }
  | { readonly kind: 'restart'; readonly cause: RestartCause; readonly message: string }
  | { readonly kind: 'fail'; readonly message: string };

function trainerTerminated(pod: PodView): TerminatedState | undefined {
  const statuses = pod.status?.containerStatuses ?? [];
  const c = statuses.find((s) => s.name === CONTAINER_NAME) ?? statuses[0];
  return c?.state?.terminated;
}

/** Last line of a (FallbackToLogsOnError) termination message: the trainer prints its error last. */
function lastLine(text: string | undefined): string | undefined {
  const lines = (text ?? '')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '');
  return lines.at(-1)?.slice(0, 512);
}

/** Classifies one pod of the current attempt. */
export function classifyPod(pod: PodView): PodOutcome {
  const name = pod.metadata.name;
  const st = pod.status;
  const disrupted = st?.conditions?.find((c) => c.type === 'DisruptionTarget' && c.status === 'True');
  if (st?.phase === 'Failed' && (PREEMPTION_REASONS.has(st.reason ?? '') || disrupted !== undefined)) {
    return {
      kind: 'restart',
      cause: RESTART_CAUSES.preempted,
      message: `pod ${name} ${st.reason ?? disrupted?.reason ?? 'disrupted'}${st.message !== undefined ? `: ${st.message}` : ''}`,
    };
  }
  const term = trainerTerminated(pod);
  if (st?.phase === 'Succeeded') return { kind: 'succeeded' };
  if (term !== undefined && (st?.phase === 'Failed' || term.exitCode !== 0)) {
    const p = exitPolicy(term.exitCode);
    const detail = lastLine(term.message);
    const rank = pod.metadata.labels?.['gmt.dev/rank'] ?? '?';
    if (p.action === 'succeed')
      return st?.phase === 'Failed' ? { kind: 'restart', cause: RESTART_CAUSES.other, message: `pod ${name} failed` } : { kind: 'succeeded' };
    const text = `rank ${rank} (pod ${name}) exited with code ${term.exitCode} (${p.what}${term.reason === 'OOMKilled' ? ', OOMKilled' : ''})${detail !== undefined ? `: ${detail}` : ''}`;
    return p.action === 'restart' ? { kind: 'restart', cause: p.cause, message: text } : { kind: 'fail', message: text };
  }
  if (st?.phase === 'Failed')
    return { kind: 'restart', cause: RESTART_CAUSES.other, message: `pod ${name} failed${st.reason !== undefined ? ` (${st.reason})` : ''}` };
  if (pod.metadata.deletionTimestamp !== undefined) return { kind: 'restart', cause: RESTART_CAUSES.preempted, message: `pod ${name} is being deleted` };
  if (st?.phase === 'Running') return { kind: 'running' };
  const unsched = st?.conditions?.find((c) => c.type === 'PodScheduled' && c.status === 'False');
  const waiting = st?.containerStatuses?.find((s) => s.state?.waiting !== undefined)?.state?.waiting;
  const reason = unsched?.reason ?? waiting?.reason;
  const message = unsched?.message ?? waiting?.message;
  return { kind: 'pending', ...(reason !== undefined ? { reason } : {}), ...(message !== undefined ? { message } : {}) };
}

/** What the gang of the current attempt says, from its pods' outcomes (first matching row wins). */
export type GangOutcome =
  | { readonly kind: 'fail'; readonly message: string }
  | { readonly kind: 'restart'; readonly cause: RestartCause; readonly message: string }
  | { readonly kind: 'succeeded' }
  | { readonly kind: 'running' }
  | { readonly kind: 'pending'; readonly reason?: string; readonly message?: string }
  | { readonly kind: 'absent' };

/**
 * The gang table, in priority order:
 *  1. any rank failed non-retryably        → fail (no restart loop)
 *  2. any rank failed retryably / was lost  → restart (cause of the first such rank)
 *  3. all `workers` ranks succeeded         → succeeded
 *  4. no pod at all                         → absent (create them)
 *  5. all ranks running                     → running
 *  6. otherwise                             → pending
 * `missingAfterStart` ranks (pods gone although the attempt had started) count as lost (row 2).
 */
export function computeGangOutcome(outcomes: readonly PodOutcome[], workers: number, missingAfterStart: readonly number[]): GangOutcome {
  const fatal = outcomes.find((o) => o.kind === 'fail');
  if (fatal !== undefined) return { kind: 'fail', message: fatal.message };
  const retry = outcomes.find((o) => o.kind === 'restart');
  if (retry !== undefined) return { kind: 'restart', cause: retry.cause, message: retry.message };
  if (missingAfterStart.length > 0)
    return { kind: 'restart', cause: RESTART_CAUSES.preempted, message: `worker pod of rank ${missingAfterStart.join(', ')} disappeared` };
  if (outcomes.length >= workers && outcomes.every((o) => o.kind === 'succeeded')) return { kind: 'succeeded' };
  if (outcomes.length === 0) return { kind: 'absent' };
  if (outcomes.length >= workers && outcomes.every((o) => o.kind === 'running' || o.kind === 'succeeded')) return { kind: 'running' };
  const p = outcomes.find((o) => o.kind === 'pending' && o.reason !== undefined);
  return p !== undefined && p.kind === 'pending'
    ? { kind: 'pending', ...(p.reason !== undefined ? { reason: p.reason } : {}), ...(p.message !== undefined ? { message: p.message } : {}) }
    : { kind: 'pending' };
}
