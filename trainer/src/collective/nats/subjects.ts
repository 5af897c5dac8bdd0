/**
 * NATS subjects of one job attempt, defined once (docs/architecture.md §3: "subjects are namespaced per job
 * and attempt; a rank never subscribes to another job's subjects"):
 *
 *   gmt.<job>.<attempt>.<phase>.<toRank>   data chunks for one rank
 *   gmt.<job>.<attempt>.<phase>.all        broadcast data chunks
 *   gmt.<job>.<attempt>.credit.<sender>    flow-control grants for one sending rank
 *   gmt.<job>.<attempt>.hb                 heartbeats (also the rendezvous hello)
 *   gmt.<job>.<attempt>.abort              gang-wide abort
 *
 * A rank subscribes to `gmt.<job>.<attempt>.*.<ownRank>` (its data and its credits), `….*.all`,
 * `….hb` and `….abort`.
 */
import { SUBJECT_ROOT } from '../../../../contract/progress.js';
import type { CollectivePhase } from '../transport.js';

/** Subject token of flow-control grants (never a phase name). */
export const CREDIT_TOKEN = 'credit';
/** Subject token of broadcast data. */
export const BROADCAST_TOKEN = 'all';

/**
 * A job id as one subject token: characters outside [A-Za-z0-9_-] (such as '.', '*', '>', spaces)
 * become '_'. Two ids that map to the same token are still told apart by the job hash in every frame.
 */
export function jobToken(jobId: string): string {
  return jobId.replace(/[^A-Za-z0-9_-]/g, '_');
}

/** Subject builders for one (job, attempt). */
export interface AttemptSubjects {
  /** `gmt.<job>.<attempt>` */
  readonly prefix: string;
  data(phase: CollectivePhase, toRank: number): string;
  broadcast(phase: CollectivePhase): string;
  credit(senderRank: number): string;
  readonly heartbeat: string;
  readonly abort: string;
  /** Subscription for a rank's own data and credits: `gmt.<job>.<attempt>.*.<rank>`. */
  inbox(rank: number): string;
  /** Subscription for broadcasts: `gmt.<job>.<attempt>.*.all`. */
  readonly broadcasts: string;
}

/** The subjects of (jobId, attempt). */
export function attemptSubjects(jobId: string, attempt: number): AttemptSubjects {
  const prefix = `${SUBJECT_ROOT}.${jobToken(jobId)}.${attempt}`;
  return {
    prefix,
    data: (phase, toRank) => `${prefix}.${phase}.${toRank}`,
    broadcast: (phase) => `${prefix}.${phase}.${BROADCAST_TOKEN}`,
    credit: (senderRank) => `${prefix}.${CREDIT_TOKEN}.${senderRank}`,
    heartbeat: `${prefix}.hb`,
    abort: `${prefix}.abort`,
    inbox: (rank) => `${prefix}.*.${rank}`,
    broadcasts: `${prefix}.*.${BROADCAST_TOKEN}`,
  };
}
