/**
 * The message layer under the collectives (docs/architecture.md §3): point-to-point and broadcast byte
 * messages between the ranks of one job attempt, addressed by (step, phase, tag). Implementations:
 * MemoryTransport (ranks in one process, for tests) and NatsTransport (chunked, credit-windowed,
 * checksummed messages over NATS subjects `gmt.<job>.<attempt>.<phase>.<rank>`).
 *
 * Contract for every implementation:
 * - A message is delivered whole or not at all; `recv` resolves only when every chunk arrived and
 *   the checksum matched. Anything that does not match the job, attempt, step, phase, source rank,
 *   chunk numbering or checksum is rejected (counted via `onReject`) and never delivered.
 * - `recv` may be called before or after the matching `send`/`broadcast` (messages are buffered
 *   per key until taken, and each is taken once).
 * - Any fault (peer heartbeat lost, disconnect/reconnect, deadline passed, `abort` called locally or
 *   by a peer) rejects every pending and future operation with a RetryableError naming the cause.
 */

/** Phases of one optimizer step (subject component and metrics label). */
export const COLLECTIVE_PHASES = ['rendezvous', 'reduce_scatter', 'norm', 'threshold', 'all_gather', 'hash', 'checkpoint', 'progress'] as const;
/** A phase of the collective protocol. */
export type CollectivePhase = (typeof COLLECTIVE_PHASES)[number];

/** Why a message was rejected (metric label values; see trainer/src/metrics/names.ts REJECT_REASONS). */
export type RejectReason = 'wrong_job' | 'wrong_attempt' | 'wrong_step' | 'wrong_phase' | 'bad_checksum' | 'duplicate_chunk' | 'malformed';

/** Byte counts for metrics: what was sent and received, per phase. */
export interface TransportObserver {
  onBytes?(phase: CollectivePhase, direction: 'sent' | 'received', bytes: number): void;
  onReject?(reason: RejectReason, detail: string): void;
}

/** Point-to-point and broadcast messages among the ranks of one job attempt. */
export interface Transport {
  readonly rank: number;
  readonly worldSize: number;
  /** Send `data` to rank `to` (≠ own rank). Resolves when handed to the network within the flow-control window. */
  send(to: number, step: number, phase: CollectivePhase, tag: number, data: Uint8Array): Promise<void>;
  /** Send `data` once to every other rank. */
  broadcast(step: number, phase: CollectivePhase, tag: number, data: Uint8Array): Promise<void>;
  /** The whole message rank `from` sent (or broadcast) for (step, phase, tag). */
  recv(from: number, step: number, phase: CollectivePhase, tag: number): Promise<Uint8Array>;
  /** Fail every pending and future operation on every rank with a retryable error. */
  abort(reason: string): void;
  /** Release resources (after which operations reject). */
  close(): Promise<void>;
}
