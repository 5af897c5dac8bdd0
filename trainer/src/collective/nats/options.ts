/** Options of NatsTransport: one flat block of defaults with a one-line reason each. */
import { TrainerConfigSchema } from '../../../../contract/config.js';
import { ConfigError } from '../../errors.js';
import type { TransportObserver } from '../transport.js';
import type { Clock } from './clock.js';
import { DATA_HEADER_BYTES, MAX_WORLD_SIZE } from './wire.js';

/** The trainer config's defaults: the liveness and deadline defaults are the config's, stated once there. */
const CONFIG_DEFAULTS = TrainerConfigSchema.parse({});

/** Defaults (see docs/design-nats.md). */
export const NATS_TRANSPORT_DEFAULTS = Object.freeze({
  /** 512 KiB: fits the server's default 1 MiB max_payload with the 64-byte header; clamped to the server's limit. */
  chunkBytes: 512 * 1024,
  /** 8 chunks (4 MiB at 512 KiB) in flight per (sender, receiver): far below max_pending (64 MiB default). */
  creditWindow: 8,
  /** config heartbeatMs: one heartbeat a second. */
  heartbeatMs: CONFIG_DEFAULTS.heartbeatMs,
  /** config peerTimeoutMs (30 s of silence): generous, because a long synchronous TF.js compute blocks a rank's event loop. */
  peerTimeoutMs: CONFIG_DEFAULTS.peerTimeoutMs,
  /** config stepTimeoutSec (5 min) per recv or per starved send: must cover the compute skew between ranks. */
  stepDeadlineMs: CONFIG_DEFAULTS.stepTimeoutSec * 1000,
  /** config rendezvousTimeoutSec (2 min) for every rank to appear (pods start at different times). */
  rendezvousTimeoutMs: CONFIG_DEFAULTS.rendezvousTimeoutSec * 1000,
  /** 10 s to open the TCP connection to NATS. */
  connectTimeoutMs: 10_000,
  /** 1 GiB: larger claims in a header are rejected before any allocation. */
  maxMessageBytes: 1024 * 1024 * 1024,
  /** Chunks for steps within ±2 of the current step are accepted (peers run at most a step apart). */
  stepWindow: 2,
});

/** Options of NatsTransport. */
export interface NatsTransportOptions {
  /** NATS server URL(s), e.g. nats://127.0.0.1:4222. */
  readonly servers: string | readonly string[];
  readonly jobId: string;
  readonly attempt: number;
  readonly rank: number;
  readonly worldSize: number;
  /** Payload bytes per chunk (default 512 KiB; at most the server's max_payload − 64). */
  readonly chunkBytes?: number;
  /** Un-acknowledged chunks allowed per (sender, receiver) (default 8). */
  readonly creditWindow?: number;
  readonly heartbeatMs?: number;
  readonly peerTimeoutMs?: number;
  /** Longest a recv may wait for its message, or a send for credit, before the attempt aborts. */
  readonly stepDeadlineMs?: number;
  readonly rendezvousTimeoutMs?: number;
  readonly connectTimeoutMs?: number;
  readonly maxMessageBytes?: number;
  readonly stepWindow?: number;
  /**
   * The first step this rank will run (0, or a resumed checkpoint's step). Chunks further than
   * stepWindow from it are rejected even before the first local operation; without it, anything
   * arriving before then is accepted, and a forged chunk consumed then desynchronises the credit
   * counts and stalls the attempt.
   */
  readonly startStep?: number;
  /** Path of a NATS .creds file (JWT + nkey seed) for servers that require authentication. */
  readonly credsFile?: string;
  readonly observer?: TransportObserver;
  /** Time source for deadlines and heartbeats (default: real time). */
  readonly clock?: Clock;
  /** Test hook: awaited before each received chunk is consumed (simulates a slow consumer). */
  readonly beforeConsume?: (fromRank: number, chunkIndex: number) => Promise<void> | void;
}

/** Options with every default filled in and every value checked. */
export interface ResolvedOptions {
  readonly servers: readonly string[];
  readonly jobId: string;
  readonly attempt: number;
  readonly rank: number;
  readonly worldSize: number;
  readonly chunkBytes: number;
  readonly chunkBytesExplicit: boolean;
  readonly creditWindow: number;
  readonly heartbeatMs: number;
  readonly peerTimeoutMs: number;
  readonly stepDeadlineMs: number;
  readonly rendezvousTimeoutMs: number;
  readonly connectTimeoutMs: number;
  readonly maxMessageBytes: number;
  readonly stepWindow: number;
  readonly startStep: number | undefined;
  readonly credsFile: string | undefined;
  readonly beforeConsume: ((fromRank: number, chunkIndex: number) => Promise<void> | void) | undefined;
}

function int(name: string, value: number | undefined, fallback: number, min: number, max: number): number {
  const v = value ?? fallback;
  if (!Number.isInteger(v) || v < min || v > max) throw new ConfigError(`NatsTransport: ${name} must be an integer in [${min}, ${max}], got ${v}`);
  return v;
}

/** Checks options and fills in defaults; throws ConfigError on a bad value. */
export function resolveOptions(o: NatsTransportOptions): ResolvedOptions {
  const d = NATS_TRANSPORT_DEFAULTS;
  const servers = typeof o.servers === 'string' ? [o.servers] : [...o.servers];
  if (servers.length === 0 || servers.some((s) => s.length === 0)) throw new ConfigError('NatsTransport: servers must name at least one NATS URL');
  if (o.jobId.length === 0) throw new ConfigError('NatsTransport: jobId must not be empty');
  const worldSize = int('worldSize', o.worldSize, 0, 1, MAX_WORLD_SIZE);
  const heartbeatMs = int('heartbeatMs', o.heartbeatMs, d.heartbeatMs, 10, 3_600_000);
  const peerTimeoutMs = int('peerTimeoutMs', o.peerTimeoutMs, d.peerTimeoutMs, 1, 86_400_000);
  if (peerTimeoutMs < 2 * heartbeatMs)
    throw new ConfigError(`NatsTransport: peerTimeoutMs (${peerTimeoutMs}) must be at least twice heartbeatMs (${heartbeatMs})`);
  return {
    servers,
    jobId: o.jobId,
    attempt: int('attempt', o.attempt, 0, 0, 0xffffffff),
    rank: int('rank', o.rank, 0, 0, worldSize - 1),
    worldSize,
    chunkBytes: int('chunkBytes', o.chunkBytes, d.chunkBytes, 1, 64 * 1024 * 1024 - DATA_HEADER_BYTES),
    chunkBytesExplicit: o.chunkBytes !== undefined,
    creditWindow: int('creditWindow', o.creditWindow, d.creditWindow, 1, 1 << 20),
    heartbeatMs,
    peerTimeoutMs,
    stepDeadlineMs: int('stepDeadlineMs', o.stepDeadlineMs, d.stepDeadlineMs, 1, 86_400_000),
    rendezvousTimeoutMs: int('rendezvousTimeoutMs', o.rendezvousTimeoutMs, d.rendezvousTimeoutMs, 1, 86_400_000),
    connectTimeoutMs: int('connectTimeoutMs', o.connectTimeoutMs, d.connectTimeoutMs, 1, 600_000),
    maxMessageBytes: int('maxMessageBytes', o.maxMessageBytes, d.maxMessageBytes, 0, Number.MAX_SAFE_INTEGER),
    stepWindow: int('stepWindow', o.stepWindow, d.stepWindow, 0, 1 << 20),
    startStep: o.startStep === undefined ? undefined : int('startStep', o.startStep, 0, 0, 0xffffffff),
    credsFile: o.credsFile === '' ? undefined : o.credsFile,
    beforeConsume: o.beforeConsume,
  };
}
