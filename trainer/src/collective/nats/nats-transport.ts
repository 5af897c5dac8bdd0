/**
 * Transport over core NATS (docs/architecture.md §3): messages are cut into chunks (wire.ts) published on
 * per-attempt subjects (subjects.ts), with a credit window per (sender, receiver) because the
 * client never applies backpressure and the server cuts slow consumers off (docs/architecture.md
 * §3). Core NATS is at-most-once, so every fault aborts instead of retrying: a disconnect or
 * reconnect, a silent peer, a recv past its deadline or a send starved of credit. Any abort is
 * published on the abort subject so that every rank fails its step with a RetryableError.
 */
import { randomBytes } from 'node:crypto';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { ConfigError, RetryableError } from '../../errors.js';
import type { CollectivePhase, RejectReason, Transport, TransportObserver } from '../transport.js';
import { Assembly } from './assembly.js';
import { systemClock, type Clock, type TimerHandle } from './clock.js';
import { FlowControl } from './flow-control.js';
import { Mailbox, checkMessageArgs, checkPeer, messageKey } from '../mailbox.js';
import { NatsPeers } from './peers.js';
import { resolveOptions, type NatsTransportOptions, type ResolvedOptions } from './options.js';
import { natsAuth } from './auth.js';
import { attemptInboxPrefix } from '../../../../contract/nats-identity.js';
import { BROADCAST_TOKEN, CREDIT_TOKEN, attemptSubjects, type AttemptSubjects } from './subjects.js';
import {
  DATA_HEADER_BYTES,
  checksum,
  decodeFrame,
  encodeAbortFrame,
  encodeCreditFrame,
  encodeDataFrame,
  jobHash,
  type DataFrame,
  type DecodeContext,
  type Frame,
} from './wire.js';

export type { NatsTransportOptions } from './options.js';

/** Longest close() waits for the server to acknowledge what this rank sent last. */
const CLOSE_FLUSH_MS = 2000;

/** A Transport over core NATS for one rank of one job attempt. */
export class NatsTransport implements Transport {
  readonly rank: number;
  readonly worldSize: number;
  /** Resolves once close() has finished (or the start failed and resources were released). */
  readonly closed: Promise<void>;
  readonly #opts: ResolvedOptions;
  readonly #clock: Clock;
  readonly #observer: TransportObserver | undefined;
  readonly #subjects: AttemptSubjects;
  readonly #ctx: DecodeContext;
  readonly #mailbox = new Mailbox();
  readonly #flow: FlowControl;
  readonly #assemblies = new Map<string, Assembly>();
  readonly #consumed: number[];
  /** Per-source chain of deferred chunk consumption (only with the beforeConsume test hook). */
  readonly #consumeChain: Promise<void>[];
  readonly #peers: NatsPeers;
  readonly #timers = new Set<TimerHandle>();
  #nc: NatsConnection | undefined;
  #chunkBytes: number;
  #failure: Error | undefined;
  #closing = false;
  #started = false;
  /** Highest step of any local operation: incoming chunks must lie within stepWindow of it. */
  #currentStep: number | undefined;
  #resolveClosed: () => void = () => undefined;

  constructor(options: NatsTransportOptions) {
    this.#opts = resolveOptions(options);
    this.rank = this.#opts.rank;
    this.worldSize = this.#opts.worldSize;
    this.#clock = options.clock ?? systemClock;
    this.#observer = options.observer;
    this.#subjects = attemptSubjects(this.#opts.jobId, this.#opts.attempt);
    this.#ctx = { jobHash: jobHash(this.#opts.jobId), attempt: this.#opts.attempt, worldSize: this.worldSize, maxMessageBytes: this.#opts.maxMessageBytes };
    this.#flow = new FlowControl(this.worldSize, this.#opts.creditWindow);
    this.#consumed = new Array<number>(this.worldSize).fill(0);
    this.#consumeChain = Array.from({ length: this.worldSize }, () => Promise.resolve());
    this.#chunkBytes = this.#opts.chunkBytes;
    this.#currentStep = this.#opts.startStep;
    this.#peers = new NatsPeers({
      rank: this.rank,
      worldSize: this.worldSize,
      jobId: this.#opts.jobId,
      attempt: this.#opts.attempt,
      heartbeatMs: this.#opts.heartbeatMs,
      peerTimeoutMs: this.#opts.peerTimeoutMs,
      rendezvousTimeoutMs: this.#opts.rendezvousTimeoutMs,
      instance: randomBytes(8).readBigUInt64LE(0),
      identity: this.#ctx,
      clock: this.#clock,
      publish: (bytes) => this.#publish(this.#subjects.heartbeat, bytes),
      abort: (err) => this.#abortWith(err),
    });
    this.closed = new Promise<void>((resolve) => {
      this.#resolveClosed = resolve;
    });
  }

  /** Creates a transport and start()s it: connected, subscribed, and every rank present. */
  static async connect(options: NatsTransportOptions): Promise<NatsTransport> {
    const t = new NatsTransport(options);
    await t.start();
    return t;
  }

  /** Chunk payload size in use (the option, clamped to the server's max_payload once connected). */
  get chunkBytes(): number {
    return this.#chunkBytes;
  }

  /** The error that failed this transport, if any. */
  get failure(): Error | undefined {
    return this.#failure;
  }

  /**
   * Connects, subscribes to this rank's subjects and waits until every rank of (job, attempt) has
   * announced itself (rendezvous). Rejects with a RetryableError naming the missing ranks.
   */
  async start(): Promise<void> {
    if (this.#started) throw new Error('NatsTransport.start() called twice');
    this.#started = true;
    const { jobId, attempt, rank } = this.#opts;
    const auth = natsAuth(this.#opts.credsFile); // a ConfigError (not retryable) before any connection
    try {
      this.#nc = await connect({
        servers: [...this.#opts.servers],
        name: `gmt-${jobId}-${attempt}-rank${rank}`,
        ...auth,
        // Reply inboxes under the attempt's own prefix: its NATS identity may subscribe to no others.
        inboxPrefix: attemptInboxPrefix(jobId, attempt),
        noEcho: true,
        // Core NATS is at-most-once: whatever was in flight during a reconnect is lost, so a
        // reconnect could only hide a hole. Any disconnect aborts the attempt instead.
        reconnect: false,
        pingInterval: Math.max(1000, Math.floor(this.#opts.peerTimeoutMs / 3)),
        maxPingOut: 3,
        timeout: this.#opts.connectTimeoutMs,
      });
    } catch (err) {
      const e = new RetryableError(`cannot connect to NATS at ${this.#opts.servers.join(', ')}: ${String(err)}`, { cause: err });
      this.#fail(e);
      this.#resolveClosed();
      throw e;
    }
    try {
      this.#configureChunks(this.#nc);
      this.#subscribe(this.#nc);
      void this.#watchConnection(this.#nc);
      await this.#firstFlush(this.#nc);
      await this.#peers.rendezvous();
    } catch (err) {
      await this.close();
      throw this.#failure ?? err;
    }
  }

  /** Sends `data` to `to` in chunks, each waiting for flow-control credit. */
  async send(to: number, step: number, phase: CollectivePhase, tag: number, data: Uint8Array): Promise<void> {
    checkMessageArgs(step, phase, tag);
    checkPeer(this.rank, this.worldSize, to);
    await this.#sendChunks([to], to, step, phase, tag, data);
  }

  /** Publishes `data` once on the broadcast subject; each chunk waits for credit from every receiver. */
  async broadcast(step: number, phase: CollectivePhase, tag: number, data: Uint8Array): Promise<void> {
    checkMessageArgs(step, phase, tag);
    const targets: number[] = [];
    for (let r = 0; r < this.worldSize; r++) if (r !== this.rank) targets.push(r);
    await this.#sendChunks(targets, 'all', step, phase, tag, data);
  }

  /** The whole message `from` sent for (step, phase, tag); aborts the attempt after stepDeadlineMs. */
  async recv(from: number, step: number, phase: CollectivePhase, tag: number): Promise<Uint8Array> {
    checkMessageArgs(step, phase, tag);
    checkPeer(this.rank, this.worldSize, from);
    this.#throwIfFailed();
    this.#noteStep(step);
    const key = messageKey(from, step, phase, tag);
    const started = this.#clock.now();
    const timer = this.#setTimer(() => {
      const partial = this.#assemblies.get(key);
      const got = partial === undefined ? 'no chunk' : partial.progress();
      const ms = Math.round(this.#clock.now() - started);
      this.#abortWith(
        new RetryableError(`step deadline: rank ${this.rank} waited ${ms} ms for step ${step} phase ${phase} tag ${tag} from rank ${from} and received ${got}`),
      );
    }, this.#opts.stepDeadlineMs);
    try {
      return await this.#mailbox.take(key, step);
    } finally {
      this.#clearTimer(timer);
    }
  }

  /** Fails every pending and future operation here and, through the abort subject, on every peer. */
  abort(reason: string): void {
    this.#abortWith(new RetryableError(`collective aborted on rank ${this.rank}: ${reason}`), reason);
  }

  /** Stops heartbeats, fails pending operations ("transport closed") and closes the connection. */
  async close(): Promise<void> {
    if (this.#closing) return this.closed;
    this.#closing = true;
    this.#fail(new RetryableError(`transport of rank ${this.rank} closed`));
    const nc = this.#nc;
    if (nc !== undefined && !nc.isClosed()) {
      // nats.js close() destroys the socket without flushing it; over TLS the last frames (this
      // rank's final chunks and credits) may still sit in the TLS layer and would be lost, leaving
      // a peer waiting for them. A flush (PING/PONG) makes the server hold them first. nats.js
      // never settles a flush whose connection closes meanwhile, hence the bound.
      await new Promise<void>((resolve) => {
        const timer = this.#clock.setTimer(resolve, CLOSE_FLUSH_MS);
        nc.flush().then(
          () => {
            timer.cancel();
            resolve();
          },
          () => {
            timer.cancel();
            resolve();
          },
        );
      });
      try {
        await nc.close();
      } catch {
        // Closing a connection that already failed has nothing left to release.
      }
    }
    this.#resolveClosed();
    return this.closed;
  }

  // ---- sending ----

  async #sendChunks(targets: readonly number[], dest: number | 'all', step: number, phase: CollectivePhase, tag: number, data: Uint8Array): Promise<void> {
    this.#throwIfFailed();
    this.#noteStep(step);
    if (data.length > this.#opts.maxMessageBytes) throw new RangeError(`message of ${data.length} bytes exceeds maxMessageBytes ${this.#opts.maxMessageBytes}`);
    const chunkSize = this.#chunkBytes;
    const chunkCount = Math.max(1, Math.ceil(data.length / chunkSize));
    const messageCrc = checksum(data);
    const subject = dest === 'all' ? this.#subjects.broadcast(phase) : this.#subjects.data(phase, dest);
    const broadcast = dest === 'all';
    for (let i = 0; i < chunkCount; i++) {
      await this.#acquireCredit(
        targets,
        () =>
          `send of step ${step} phase ${phase} tag ${tag} to rank${targets.length > 1 ? 's' : ''} ${targets.join(', ')} stalled at chunk ${i + 1} of ${chunkCount}`,
      );
      const payload = data.subarray(i * chunkSize, Math.min(data.length, (i + 1) * chunkSize));
      const frame = encodeDataFrame(this.#ctx, {
        source: this.rank,
        step,
        phase,
        broadcast,
        dest: broadcast ? 0 : dest,
        tag,
        chunkIndex: i,
        chunkCount,
        totalLength: data.length,
        chunkSize,
        messageCrc,
        payload,
      });
      this.#publish(subject, frame);
      this.#observer?.onBytes?.(phase, 'sent', payload.length);
    }
  }

  async #acquireCredit(targets: readonly number[], what: () => string): Promise<void> {
    if (this.#flow.canSend(targets)) return this.#flow.acquire(targets);
    const started = this.#clock.now();
    const timer = this.#setTimer(() => {
      const starved = targets.filter((r) => this.#flow.inFlight(r) >= this.#flow.window);
      const ms = Math.round(this.#clock.now() - started);
      this.#abortWith(
        new RetryableError(
          `step deadline: rank ${this.rank}: ${what()}: no flow-control credit from rank${starved.length > 1 ? 's' : ''} ${starved.join(', ')} for ${ms} ms`,
        ),
      );
    }, this.#opts.stepDeadlineMs);
    try {
      await this.#flow.acquire(targets);
    } finally {
      this.#clearTimer(timer);
    }
  }

  #publish(subject: string, bytes: Uint8Array): void {
    const nc = this.#nc;
    if (nc === undefined || nc.isClosed()) throw this.#failure ?? new RetryableError('NATS connection closed');
    nc.publish(subject, bytes);
  }

  // ---- receiving ----

  #subscribe(nc: NatsConnection): void {
    const s = this.#subjects;
    const onError = (err: Error | null): boolean => {
      if (err === null) return false;
      this.#abortWith(new RetryableError(`NATS subscription failed: ${err.message}`, { cause: err }));
      return true;
    };
    // The subscriptions end with the connection (close() closes it), so no handles are kept.
    nc.subscribe(s.inbox(this.rank), {
      callback: (err, msg) => {
        if (!onError(err)) this.#onInbox(msg.subject, msg.data);
      },
    });
    nc.subscribe(s.broadcasts, {
      callback: (err, msg) => {
        if (!onError(err)) this.#onData(msg.subject, msg.data);
      },
    });
    nc.subscribe(s.heartbeat, {
      callback: (err, msg) => {
        if (!onError(err)) this.#onControl(msg.data, 'heartbeat');
      },
    });
    nc.subscribe(s.abort, {
      callback: (err, msg) => {
        if (!onError(err)) this.#onControl(msg.data, 'abort');
      },
    });
  }

  #reject(reason: RejectReason, detail: string): void {
    this.#observer?.onReject?.(reason, detail);
  }

  #decode(bytes: Uint8Array): Frame | undefined {
    const result = decodeFrame(bytes, this.#ctx);
    if (!result.ok) {
      this.#reject(result.reason, result.detail);
      return undefined;
    }
    return result.frame;
  }

  /** `gmt.<job>.<attempt>.<token>.<ownRank>`: a data chunk (token = phase) or a credit grant. */
  #onInbox(subject: string, bytes: Uint8Array): void {
    if (this.#phaseToken(subject) !== CREDIT_TOKEN) {
      this.#onData(subject, bytes);
      return;
    }
    const frame = this.#decode(bytes);
    if (frame === undefined) return;
    if (frame.kind !== 'credit' || frame.sender !== this.rank || frame.source === this.rank) {
      this.#reject('malformed', `${frame.kind} frame from rank ${frame.source} on the credit subject of rank ${this.rank}`);
      return;
    }
    if (!this.#flow.onGrant(frame.source, frame.consumed)) {
      this.#reject('malformed', `credit from rank ${frame.source} for more chunks than were sent`);
      return;
    }
    this.#peers.seen(frame.source);
  }

  #phaseToken(subject: string): string {
    const rest = subject.slice(this.#subjects.prefix.length + 1);
    return rest.slice(0, rest.indexOf('.'));
  }

  #onData(subject: string, bytes: Uint8Array): void {
    const frame = this.#decode(bytes);
    if (frame === undefined) return;
    if (frame.kind !== 'data') {
      this.#reject('malformed', `${frame.kind} frame on data subject ${subject}`);
      return;
    }
    const token = this.#phaseToken(subject);
    if (frame.phase !== token) {
      this.#reject('wrong_phase', `phase ${frame.phase} on subject ${subject}`);
      return;
    }
    const toAll = subject.endsWith(`.${BROADCAST_TOKEN}`);
    if (frame.broadcast !== toAll || (!toAll && frame.dest !== this.rank) || frame.source === this.rank) {
      this.#reject('malformed', `chunk from rank ${frame.source} for ${frame.broadcast ? 'all' : `rank ${frame.dest}`} on subject ${subject}`);
      return;
    }
    const current = this.#currentStep;
    if (current !== undefined && Math.abs(frame.step - current) > this.#opts.stepWindow) {
      this.#reject('wrong_step', `step ${frame.step} from rank ${frame.source}, current step ${current} (window ±${this.#opts.stepWindow})`);
      return;
    }
    if (this.#failure !== undefined) return;
    const key = messageKey(frame.source, frame.step, frame.phase, frame.tag);
    if (this.#mailbox.isDelivered(key)) {
      this.#reject('duplicate_chunk', `chunk ${frame.chunkIndex} of message ${key}, already delivered`);
      return;
    }
    let assembly = this.#assemblies.get(key);
    if (assembly === undefined) {
      assembly = new Assembly(frame);
      this.#assemblies.set(key, assembly);
    } else if (!assembly.matches(frame)) {
      this.#reject('malformed', `chunk ${frame.chunkIndex} of message ${key} disagrees with its first chunk (length, chunking or CRC)`);
      return;
    }
    if (!assembly.claim(frame.chunkIndex)) {
      this.#reject('duplicate_chunk', `chunk ${frame.chunkIndex} of message ${key}`);
      return;
    }
    this.#peers.seen(frame.source);
    const hook = this.#opts.beforeConsume;
    if (hook === undefined) {
      this.#consume(key, assembly, frame);
      return;
    }
    // Test hook: a deliberately slow consumer. The payload is copied because the client may reuse
    // its read buffer once this callback returns.
    const copy: DataFrame = { ...frame, payload: frame.payload.slice() };
    const src = frame.source;
    const done = assembly;
    this.#consumeChain[src] = (this.#consumeChain[src] ?? Promise.resolve())
      .then(() => hook(src, frame.chunkIndex))
      .then(() => this.#consume(key, done, copy))
      .catch((err: unknown) => this.#abortWith(new RetryableError(`consuming a chunk from rank ${src} failed: ${String(err)}`, { cause: err })));
  }

  /** Writes a chunk, grants credit, and delivers the message when complete and verified. */
  #consume(key: string, assembly: Assembly, frame: DataFrame): void {
    if (this.#failure !== undefined) return;
    assembly.write(frame);
    this.#observer?.onBytes?.(frame.phase, 'received', frame.payload.length);
    this.#grant(frame.source);
    if (!assembly.complete) return;
    this.#assemblies.delete(key);
    if (!assembly.verify()) {
      this.#reject('bad_checksum', `message ${key} of ${assembly.first.totalLength} bytes fails its whole-message CRC`);
      return;
    }
    this.#mailbox.deliver(key, frame.step, assembly.buffer);
  }

  /**
   * Counts one consumed chunk from `sender` and grants credit at once. A 32-byte grant per chunk
   * (0.006% of a 512 KiB chunk) keeps the sender's pipe full: granting every window/2 chunks
   * measured ~25% slower on loopback (236 vs 309 MB/s, 512 KiB chunks, window 8).
   */
  #grant(sender: number): void {
    const consumed = (this.#consumed[sender] ?? 0) + 1;
    this.#consumed[sender] = consumed;
    this.#publish(this.#subjects.credit(sender), encodeCreditFrame(this.#ctx, { source: this.rank, sender, consumed }));
  }

  #onControl(bytes: Uint8Array, expected: 'heartbeat' | 'abort'): void {
    const frame = this.#decode(bytes);
    if (frame === undefined) return;
    if (frame.kind === 'heartbeat' && expected === 'heartbeat') {
      this.#peers.onHeartbeat(frame);
      return;
    }
    if (frame.kind !== expected || frame.source === this.rank) {
      this.#reject('malformed', `${frame.kind} frame from rank ${frame.source} on the ${expected} subject`);
      return;
    }
    if (frame.kind === 'abort') this.#fail(new RetryableError(`collective aborted by rank ${frame.source}: ${frame.reason}`));
  }

  // ---- faults and lifecycle ----

  async #watchConnection(nc: NatsConnection): Promise<void> {
    void nc.closed().then((err) => {
      if (!this.#closing)
        this.#fail(
          new RetryableError(
            `NATS connection closed; step aborted${err instanceof Error ? ` (${err.message})` : ''}`,
            err instanceof Error ? { cause: err } : {},
          ),
        );
    });
    for await (const s of nc.status()) {
      if (this.#closing) return;
      if (s.type === 'disconnect' || s.type === 'reconnect' || s.type === 'staleConnection' || s.type === 'forceReconnect') {
        this.#fail(new RetryableError(`NATS connection lost/reconnected; step aborted (${s.type})`));
        return;
      }
    }
  }

  #configureChunks(nc: NatsConnection): void {
    const maxPayload = nc.info?.max_payload;
    if (maxPayload === undefined) return;
    const room = maxPayload - DATA_HEADER_BYTES;
    if (this.#chunkBytes <= room) return;
    if (this.#opts.chunkBytesExplicit)
      throw new ConfigError(`chunkBytes ${this.#chunkBytes} plus the ${DATA_HEADER_BYTES}-byte header exceeds the server's max_payload ${maxPayload}`);
    this.#chunkBytes = room;
  }

  #noteStep(step: number): void {
    if (this.#currentStep !== undefined && step <= this.#currentStep) return;
    this.#currentStep = step;
    const floor = step - this.#opts.stepWindow;
    this.#mailbox.pruneBelow(floor);
    for (const [key, a] of this.#assemblies) if (a.first.step < floor) this.#assemblies.delete(key);
  }

  #throwIfFailed(): void {
    if (this.#failure !== undefined) throw this.#failure;
    if (!this.#started || this.#nc === undefined) throw new Error('NatsTransport used before start()');
  }

  /** Local failure plus an abort frame for the peers (unless already failed or closing). */
  #abortWith(err: Error, reason: string = err.message): void {
    if (this.#failure !== undefined) return;
    this.#fail(err);
    if (this.#closing) return;
    try {
      this.#publish(this.#subjects.abort, encodeAbortFrame(this.#ctx, { source: this.rank, reason }));
    } catch {
      // The connection is gone; peers notice through their own disconnect or heartbeat timeout.
    }
  }

  /** Fails every pending and future operation with `err` (the first failure wins). */
  /**
   * Makes sure the server has the subscriptions before any rank announces itself. Bounded: nats.js
   * never settles a flush whose connection closes meanwhile, and a server that stops answering after
   * the handshake would otherwise hold start() forever (the rendezvous deadline starts only after).
   */
  async #firstFlush(nc: NatsConnection): Promise<void> {
    const ms = this.#opts.connectTimeoutMs;
    const servers = this.#opts.servers.join(', ');
    let timer: TimerHandle | undefined;
    const failWith = (e: RetryableError): never => {
      this.#fail(e);
      throw e;
    };
    try {
      await Promise.race([
        nc.flush(),
        nc
          .closed()
          .then((err) =>
            failWith(
              new RetryableError(
                `NATS connection to ${servers} closed right after connecting${err instanceof Error ? ` (${err.message})` : ''}`,
                err instanceof Error ? { cause: err } : {},
              ),
            ),
          ),
        new Promise<never>((_, reject) => {
          timer = this.#clock.setTimer(() => {
            const e = new RetryableError(`NATS at ${servers} answered no flush within ${ms} ms of connecting`);
            this.#fail(e);
            reject(e);
          }, ms);
        }),
      ]);
    } finally {
      timer?.cancel();
    }
  }

  #fail(err: Error): void {
    if (this.#failure !== undefined) return;
    this.#failure = err;
    this.#mailbox.fail(err);
    this.#flow.fail(err);
    this.#peers.fail(err);
    this.#assemblies.clear();
    for (const t of this.#timers) t.cancel();
    this.#timers.clear();
  }

  #setTimer(fn: () => void, ms: number): TimerHandle {
    const t = this.#clock.setTimer(() => {
      this.#timers.delete(t);
      fn();
    }, ms);
    this.#timers.add(t);
    return t;
  }

  #clearTimer(t: TimerHandle): void {
    t.cancel();
    this.#timers.delete(t);
  }
}
