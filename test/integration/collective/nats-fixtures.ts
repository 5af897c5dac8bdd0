// Shared fixtures of the NATS transport integration tests: a real nats-server (built by the test
// harness, never skipped), gangs of transports in one process, and deterministic payloads.
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { ensureBinary } from '../../harness/binaries.js';
import {
  NatsTransport,
  startNatsServer,
  type NatsServerHandle,
  type NatsTransportOptions,
  type StartNatsServerOptions,
} from '../../../trainer/src/collective/nats/index.js';
import type { RejectReason, TransportObserver } from '../../../trainer/src/collective/transport.js';

/** Starts a real nats-server from the harness-built binary (fails with the reason when it cannot). */
export async function startServer(options: Omit<StartNatsServerOptions, 'binary'> = {}): Promise<NatsServerHandle> {
  const binary = await ensureBinary('nats-server');
  return startNatsServer({ binary, ...options });
}

/** Rejections and byte counts seen by one rank. */
export class Recorder implements TransportObserver {
  readonly rejects: { reason: RejectReason; detail: string }[] = [];
  sent = 0;
  received = 0;
  onBytes(_phase: string, direction: 'sent' | 'received', bytes: number): void {
    if (direction === 'sent') this.sent += bytes;
    else this.received += bytes;
  }
  onReject(reason: RejectReason, detail: string): void {
    this.rejects.push({ reason, detail });
  }
  count(reason: RejectReason): number {
    return this.rejects.filter((r) => r.reason === reason).length;
  }
}

/** Options of a gang, shared by every rank. */
export type GangOptions = Omit<NatsTransportOptions, 'servers' | 'rank' | 'worldSize' | 'observer'>;

/** N transports of one (job, attempt), connected concurrently (the rendezvous needs them all). */
export async function connectGang(
  url: string,
  n: number,
  options: GangOptions,
  perRank: (rank: number) => Partial<NatsTransportOptions> = () => ({}),
): Promise<{ transports: NatsTransport[]; recorders: Recorder[] }> {
  const recorders = Array.from({ length: n }, () => new Recorder());
  const transports = await Promise.all(
    recorders.map((observer, rank) => NatsTransport.connect({ servers: url, rank, worldSize: n, observer, ...options, ...perRank(rank) })),
  );
  return { transports, recorders };
}

/** Closes every transport (ignoring ones already failed). */
export async function closeAll(transports: readonly NatsTransport[]): Promise<void> {
  await Promise.all(transports.map((t) => t.close()));
}

/** Deterministic bytes for (seed, length): a xorshift stream, so any corruption shows. */
export function pattern(seed: number, length: number): Uint8Array {
  const out = new Uint8Array(length);
  let x = (seed * 2654435761 + 1) >>> 0 || 1;
  for (let i = 0; i < length; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    out[i] = x & 0xff;
  }
  return out;
}

/** Whether two byte arrays are identical. */
export function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
}

/** A plain NATS connection (for forging frames and raw benchmarks). */
export function rawConnection(url: string): Promise<NatsConnection> {
  return connect({ servers: url });
}

/** Resolves once `cond()` holds, polling every 10 ms; rejects after `ms`. */
export async function until(cond: () => boolean, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Resolves after `ms`. */
export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
