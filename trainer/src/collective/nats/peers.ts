/**
 * Rendezvous and liveness of the ranks of one attempt. Heartbeats double as the rendezvous hello:
 * each carries a `ready` flag ("I have heard every rank"); a rank has joined the gang once every
 * rank's latest heartbeat says ready (so nobody starts sending before everyone is subscribed).
 * After that, a peer silent for peerTimeoutMs aborts the attempt (docs/architecture.md §3: generous,
 * because a long synchronous TF.js compute blocks a rank's event loop).
 */
import { RetryableError } from '../../errors.js';
import type { Clock, TimerHandle } from './clock.js';
import { encodeHeartbeatFrame, type HeartbeatFrame, type WireIdentity } from './wire.js';

/** Hello period during rendezvous (heartbeats are sparser once running). */
const RENDEZVOUS_HELLO_MS = 100;

/** What NatsPeers needs from its transport. */
export interface PeersConfig {
  readonly rank: number;
  readonly worldSize: number;
  readonly jobId: string;
  readonly attempt: number;
  readonly heartbeatMs: number;
  readonly peerTimeoutMs: number;
  readonly rendezvousTimeoutMs: number;
  /** This process's random nonce (two processes claiming one rank are detected). */
  readonly instance: bigint;
  readonly identity: WireIdentity;
  readonly clock: Clock;
  publish(bytes: Uint8Array): void;
  /** Aborts the attempt (local failure plus an abort frame to the peers). */
  abort(err: Error): void;
}

/** "rank 2" / "ranks 2, 3". */
export function nameRanks(ranks: readonly number[]): string {
  return `rank${ranks.length === 1 ? '' : 's'} ${ranks.join(', ')}`;
}

function seconds(ms: number): string {
  return `${Number((ms / 1000).toFixed(1))} s`;
}

/** Heartbeat publisher, rendezvous barrier and peer-timeout detector. */
export class NatsPeers {
  readonly #c: PeersConfig;
  readonly #lastSeen: (number | undefined)[];
  readonly #ready: boolean[];
  readonly #instances: (bigint | undefined)[];
  #state: 'idle' | 'rendezvous' | 'running' | 'failed' = 'idle';
  #seq = 0;
  #ticker: TimerHandle | undefined;
  #deadline: TimerHandle | undefined;
  #lastTick = 0;
  #settle: { resolve(): void; reject(err: Error): void } | undefined;

  constructor(config: PeersConfig) {
    this.#c = config;
    this.#lastSeen = new Array<number | undefined>(config.worldSize).fill(undefined);
    this.#ready = new Array<boolean>(config.worldSize).fill(false);
    this.#instances = new Array<bigint | undefined>(config.worldSize).fill(undefined);
    this.#lastSeen[config.rank] = config.clock.now();
    this.#instances[config.rank] = config.instance;
  }

  /** Announces this rank until every rank has joined; rejects naming the missing ranks at the deadline. */
  rendezvous(): Promise<void> {
    if (this.#state !== 'idle') return Promise.reject(new Error(`rendezvous in state ${this.#state}`));
    this.#state = 'rendezvous';
    const { clock, rendezvousTimeoutMs, jobId, attempt } = this.#c;
    const done = new Promise<void>((resolve, reject) => {
      this.#settle = { resolve, reject };
    });
    this.#deadline = clock.setTimer(() => {
      const missing = this.#ranksWhere((r) => this.#lastSeen[r] === undefined);
      const unready = this.#ranksWhere((r) => this.#lastSeen[r] !== undefined && !this.#ready[r] && r !== this.#c.rank);
      const parts = [
        missing.length > 0
          ? `${nameRanks(missing)} of job ${jobId} attempt ${attempt} did not join within ${seconds(rendezvousTimeoutMs)}`
          : `every rank of job ${jobId} attempt ${attempt} joined but the gang did not form within ${seconds(rendezvousTimeoutMs)}`,
      ];
      if (unready.length > 0) parts.push(`${nameRanks(unready)} had not heard every rank`);
      this.fail(new RetryableError(`rendezvous: ${parts.join('; ')}`));
    }, rendezvousTimeoutMs);
    this.#tick();
    return done;
  }

  /** Any valid frame from `rank` proves it alive. */
  seen(rank: number): void {
    this.#lastSeen[rank] = this.#c.clock.now();
  }

  /** A heartbeat arrived (already validated by the wire decoder). */
  onHeartbeat(hb: HeartbeatFrame): void {
    if (this.#state === 'failed') return;
    const known = this.#instances[hb.source];
    if (known !== undefined && known !== hb.instance) {
      this.#c.abort(new RetryableError(`two processes claim rank ${hb.source} of job ${this.#c.jobId} attempt ${this.#c.attempt}`));
      return;
    }
    if (hb.source === this.#c.rank) return;
    this.#instances[hb.source] = hb.instance;
    const wasReady = this.#selfReady();
    this.seen(hb.source);
    this.#ready[hb.source] = hb.ready;
    if (this.#state !== 'rendezvous') return;
    // Tell the others at once when this rank has just heard everybody (saves a hello period).
    if (!wasReady && this.#selfReady()) this.#publishHeartbeat();
    this.#checkFormed();
  }

  /** Stops heartbeats and rejects a pending rendezvous with `err`. */
  fail(err: Error): void {
    if (this.#state === 'failed') return;
    this.#state = 'failed';
    this.#ticker?.cancel();
    this.#deadline?.cancel();
    this.#settle?.reject(err);
    this.#settle = undefined;
    this.#c.abort(err);
  }

  get #failed(): boolean {
    return this.#state === 'failed';
  }

  #ranksWhere(pred: (rank: number) => boolean): number[] {
    const out: number[] = [];
    for (let r = 0; r < this.#c.worldSize; r++) if (pred(r)) out.push(r);
    return out;
  }

  #selfReady(): boolean {
    return this.#lastSeen.every((t) => t !== undefined);
  }

  #checkFormed(): void {
    if (!this.#selfReady() || !this.#ready.every((ready, r) => ready || r === this.#c.rank)) return;
    this.#state = 'running';
    this.#deadline?.cancel();
    const now = this.#c.clock.now();
    this.#lastSeen.fill(now);
    this.#lastTick = now;
    this.#settle?.resolve();
    this.#settle = undefined;
  }

  #publishHeartbeat(): void {
    const frame = encodeHeartbeatFrame(this.#c.identity, { source: this.#c.rank, ready: this.#selfReady(), instance: this.#c.instance, seq: this.#seq++ });
    try {
      this.#c.publish(frame);
    } catch (err) {
      this.fail(err instanceof Error ? err : new RetryableError(String(err)));
    }
  }

  #tick(): void {
    if (this.#state === 'failed') return;
    this.#publishHeartbeat();
    if (this.#state === 'running') this.#checkLiveness();
    else if (this.#state === 'rendezvous') this.#checkFormed();
    if (this.#failed) return;
    const period = this.#state === 'rendezvous' ? Math.min(RENDEZVOUS_HELLO_MS, this.#c.heartbeatMs) : this.#c.heartbeatMs;
    this.#ticker = this.#c.clock.setTimer(() => this.#tick(), period);
  }

  #checkLiveness(): void {
    const { clock, peerTimeoutMs, rank } = this.#c;
    const now = clock.now();
    // If this process's own event loop stalled (a long synchronous compute), peers' heartbeats may
    // still sit unread in the socket: restart the clocks instead of blaming the peers.
    if (now - this.#lastTick > peerTimeoutMs / 2) this.#lastSeen.fill(now);
    this.#lastTick = now;
    const silent = this.#ranksWhere((r) => r !== rank && now - (this.#lastSeen[r] ?? now) > peerTimeoutMs);
    if (silent.length === 0) return;
    const ms = Math.round(now - Math.max(...silent.map((r) => this.#lastSeen[r] ?? now)));
    this.fail(
      new RetryableError(
        `peer ${nameRanks(silent)} of job ${this.#c.jobId} attempt ${this.#c.attempt} silent for ${ms} ms (peerTimeoutMs ${peerTimeoutMs}); step aborted`,
      ),
    );
  }
}
