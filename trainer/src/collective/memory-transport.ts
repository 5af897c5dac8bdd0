/**
 * N ranks in one process (for unit tests of the collective algorithms): a MemoryHub owns N
 * MemoryTransports with the semantics of NatsTransport (transport.ts contract) minus the network:
 * messages are copied on send (the sender may reuse its buffer), buffered per key until taken,
 * each taken once; `abort` on any rank fails every rank with a RetryableError; bytes are counted
 * through each rank's observer (a broadcast counts its payload once as sent, once per receiver as
 * received, like NatsTransport).
 */
import { RetryableError } from '../errors.js';
import { Mailbox, checkMessageArgs, checkPeer, messageKey } from './mailbox.js';
import type { CollectivePhase, Transport, TransportObserver } from './transport.js';

/** Options of a MemoryHub. */
export interface MemoryHubOptions {
  /** Observer of each rank (byte counts; MemoryTransport never rejects a message). */
  readonly observer?: (rank: number) => TransportObserver | undefined;
}

/** A set of in-process ranks that exchange messages through memory. */
export class MemoryHub {
  /** The transports of ranks 0..worldSize−1. */
  readonly transports: readonly MemoryTransport[];

  constructor(
    readonly worldSize: number,
    options: MemoryHubOptions = {},
  ) {
    if (!Number.isInteger(worldSize) || worldSize < 1) throw new RangeError(`worldSize must be a positive integer, got ${worldSize}`);
    const transports: MemoryTransport[] = [];
    for (let rank = 0; rank < worldSize; rank++) transports.push(new MemoryTransport(this, rank, options.observer?.(rank)));
    this.transports = Object.freeze(transports);
  }

  /** The transport of `rank`. */
  transport(rank: number): MemoryTransport {
    const t = this.transports[rank];
    if (t === undefined) throw new RangeError(`rank ${rank} outside world size ${this.worldSize}`);
    return t;
  }

  /** Fails every rank as if `fromRank` had called abort(reason). */
  abortFrom(fromRank: number, reason: string): void {
    for (const t of this.transports)
      t.fail(
        new RetryableError(t.rank === fromRank ? `collective aborted on rank ${fromRank}: ${reason}` : `collective aborted by rank ${fromRank}: ${reason}`),
      );
  }

  /** Closes every transport. */
  async close(): Promise<void> {
    await Promise.all(this.transports.map((t) => t.close()));
  }
}

/** One rank of a MemoryHub. */
export class MemoryTransport implements Transport {
  readonly worldSize: number;
  /** Resolves once close() has finished. */
  readonly closed: Promise<void>;
  readonly #hub: MemoryHub;
  readonly #observer: TransportObserver | undefined;
  readonly #mailbox = new Mailbox();
  #resolveClosed: () => void = () => undefined;

  constructor(
    hub: MemoryHub,
    readonly rank: number,
    observer?: TransportObserver,
  ) {
    this.#hub = hub;
    this.worldSize = hub.worldSize;
    this.#observer = observer;
    this.closed = new Promise<void>((resolve) => {
      this.#resolveClosed = resolve;
    });
  }

  /** Delivers a copy of `data` into `to`'s mailbox. */
  send(to: number, step: number, phase: CollectivePhase, tag: number, data: Uint8Array): Promise<void> {
    try {
      checkMessageArgs(step, phase, tag);
      checkPeer(this.rank, this.worldSize, to);
      this.#checkOpen();
    } catch (err) {
      return Promise.reject(err instanceof Error ? err : new Error(String(err)));
    }
    this.#observer?.onBytes?.(phase, 'sent', data.length);
    this.#hub.transport(to).deliver(this.rank, step, phase, tag, data.slice());
    return Promise.resolve();
  }

  /** Delivers a copy of `data` to every other rank. */
  broadcast(step: number, phase: CollectivePhase, tag: number, data: Uint8Array): Promise<void> {
    try {
      checkMessageArgs(step, phase, tag);
      this.#checkOpen();
    } catch (err) {
      return Promise.reject(err instanceof Error ? err : new Error(String(err)));
    }
    this.#observer?.onBytes?.(phase, 'sent', data.length);
    for (const t of this.#hub.transports) if (t.rank !== this.rank) t.deliver(this.rank, step, phase, tag, data.slice());
    return Promise.resolve();
  }

  /** The message `from` sent for (step, phase, tag), now or when it arrives. */
  recv(from: number, step: number, phase: CollectivePhase, tag: number): Promise<Uint8Array> {
    try {
      checkMessageArgs(step, phase, tag);
      checkPeer(this.rank, this.worldSize, from);
    } catch (err) {
      return Promise.reject(err instanceof Error ? err : new Error(String(err)));
    }
    return this.#mailbox.take(messageKey(from, step, phase, tag), step);
  }

  /** Fails every pending and future operation on every rank of the hub. */
  abort(reason: string): void {
    if (this.#mailbox.failure !== undefined) return;
    this.#hub.abortFrom(this.rank, reason);
  }

  /** Fails pending operations of this rank ("transport closed") and resolves `closed`. */
  close(): Promise<void> {
    this.fail(new RetryableError(`transport of rank ${this.rank} closed`));
    this.#resolveClosed();
    return this.closed;
  }

  /** @internal Hub side: a message for this rank arrived. */
  deliver(from: number, step: number, phase: CollectivePhase, tag: number, data: Uint8Array): void {
    if (this.#mailbox.deliver(messageKey(from, step, phase, tag), step, data)) this.#observer?.onBytes?.(phase, 'received', data.length);
  }

  /** @internal Hub side: fail this rank (first failure wins). */
  fail(err: Error): void {
    this.#mailbox.fail(err);
  }

  #checkOpen(): void {
    const failure = this.#mailbox.failure;
    if (failure !== undefined) throw failure;
  }
}
