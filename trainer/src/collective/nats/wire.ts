/**
 * The binary wire format of every frame NatsTransport publishes, defined once (docs/architecture.md §3:
 * "every message carries job id, attempt, step, phase, source rank, chunk index/count and a
 * checksum"). All integers are little-endian. Every frame starts with the same 20-byte prefix and
 * ends its fixed header with a CRC-32 of the header bytes before it, so a truncated or corrupted
 * header is detected before any field is trusted.
 *
 * Prefix (20 bytes, every kind):
 *   0  u32  magic 0x57544d47 ("GMTW" in byte order)
 *   4  u8   version (1)
 *   5  u8   kind: 1 data chunk, 2 credit, 3 heartbeat, 4 abort
 *   6  u16  source rank
 *   8  8B   job hash: the first 8 bytes of SHA-256(jobId)
 *  16  u32  attempt
 *
 * data chunk (64-byte header, then the chunk payload):
 *  20 u32 step | 24 u8 phase code | 25 u8 flags (bit 0: broadcast) | 26 u16 destination rank
 *  (0xffff for broadcast) | 28 u32 tag | 32 u32 chunk index | 36 u32 chunk count | 40 u64 total
 *  message length | 48 u32 chunk size (every chunk but the last carries exactly this many bytes)
 *  | 52 u32 CRC-32 of this chunk's payload | 56 u32 CRC-32 of the whole message | 60 u32 header CRC
 * credit (32 bytes): 20 u16 credited sender rank | 22 u16 0 | 24 u32 chunks consumed from that
 *  sender since the start of the attempt (cumulative, so a lost or repeated grant is harmless;
 *  wraps at 2^32) | 28 u32 header CRC
 * heartbeat (40 bytes): 20 u8 flags (bit 0: has seen every rank) | 21..23 0 | 24 u64 instance nonce
 *  | 32 u32 sequence | 36 u32 header CRC
 * abort (32-byte header, then the UTF-8 reason): 20 u16 reason length (≤ 1024) | 22 u16 0
 *  | 24 u32 CRC-32 of the reason | 28 u32 header CRC
 *
 * CRC-32 is zlib's (IEEE 802.3 polynomial), from node:zlib crc32 (Node ≥ 22.2 / 20.15).
 */
import { createHash } from 'node:crypto';
import { crc32 } from 'node:zlib';
import type { CollectivePhase, RejectReason } from '../transport.js';

/** "GMTW" read as a little-endian u32. */
export const WIRE_MAGIC = 0x57544d47;
/** Bumped on any incompatible layout change; frames of another version are rejected as malformed. */
export const WIRE_VERSION = 1;

/** Frame kinds (byte 5). */
export const FRAME_KIND = { data: 1, credit: 2, heartbeat: 3, abort: 4 } as const;
/** One frame kind. */
export type FrameKind = keyof typeof FRAME_KIND;

/** Header sizes in bytes. */
export const PREFIX_BYTES = 20;
export const DATA_HEADER_BYTES = 64;
export const CREDIT_FRAME_BYTES = 32;
export const HEARTBEAT_FRAME_BYTES = 40;
export const ABORT_HEADER_BYTES = 32;
/** Longest abort reason carried (UTF-8 bytes); longer reasons are cut. */
export const MAX_ABORT_REASON_BYTES = 1024;
/** Destination rank field of a broadcast chunk. */
export const BROADCAST_DEST = 0xffff;
/** Largest rank the u16 fields can carry (0xffff is reserved for broadcast). */
export const MAX_WORLD_SIZE = 0xffff;

/**
 * Stable phase codes on the wire. A Record over CollectivePhase, so adding a phase to
 * COLLECTIVE_PHASES fails to compile until it gets a code here (codes are never reused).
 */
export const PHASE_CODE: Readonly<Record<CollectivePhase, number>> = Object.freeze({
  rendezvous: 1,
  reduce_scatter: 2,
  norm: 3,
  threshold: 4,
  all_gather: 5,
  hash: 6,
  checkpoint: 7,
  progress: 8,
});

const PHASE_BY_CODE: ReadonlyMap<number, CollectivePhase> = new Map(
  (Object.entries(PHASE_CODE) as [CollectivePhase, number][]).map(([phase, code]) => [code, phase]),
);

/** The phase a wire code stands for, or undefined for an unknown code. */
export function phaseOfCode(code: number): CollectivePhase | undefined {
  return PHASE_BY_CODE.get(code);
}

/** The 8-byte job hash carried in every frame: the first 8 bytes of SHA-256(jobId). */
export function jobHash(jobId: string): Uint8Array {
  return new Uint8Array(createHash('sha256').update(jobId, 'utf8').digest().subarray(0, 8));
}

/** CRC-32 (IEEE) of `data`, optionally continuing from `value`. */
export function checksum(data: Uint8Array, value = 0): number {
  return crc32(data, value) >>> 0;
}

/** Who a frame is for: the fields every frame of this job attempt shares. */
export interface WireIdentity {
  readonly jobHash: Uint8Array;
  readonly attempt: number;
}

/** One chunk of a data message. */
export interface DataFrame {
  readonly kind: 'data';
  readonly source: number;
  readonly step: number;
  readonly phase: CollectivePhase;
  readonly broadcast: boolean;
  /** Destination rank; BROADCAST_DEST when `broadcast`. */
  readonly dest: number;
  readonly tag: number;
  readonly chunkIndex: number;
  readonly chunkCount: number;
  readonly totalLength: number;
  readonly chunkSize: number;
  readonly messageCrc: number;
  /** The chunk payload (a view into the received bytes; copy before keeping it). */
  readonly payload: Uint8Array;
}

/** A flow-control grant: `consumed` chunks from `sender` have been consumed so far (mod 2^32). */
export interface CreditFrame {
  readonly kind: 'credit';
  readonly source: number;
  readonly sender: number;
  readonly consumed: number;
}

/** A liveness beacon, also the rendezvous hello. */
export interface HeartbeatFrame {
  readonly kind: 'heartbeat';
  readonly source: number;
  /** The source has seen a heartbeat of every rank of the attempt. */
  readonly ready: boolean;
  /** Random per-process nonce (two processes claiming one rank differ here). */
  readonly instance: bigint;
  readonly seq: number;
}

/** A gang-wide abort. */
export interface AbortFrame {
  readonly kind: 'abort';
  readonly source: number;
  readonly reason: string;
}

/** Any decoded frame. */
export type Frame = DataFrame | CreditFrame | HeartbeatFrame | AbortFrame;

/** What decodeFrame checks against. */
export interface DecodeContext extends WireIdentity {
  readonly worldSize: number;
  /** Largest total message length accepted (a larger claim is malformed). */
  readonly maxMessageBytes: number;
}

/** Result of decoding: a frame, or why it was rejected (a REJECT_REASONS label and a detail). */
export type DecodeResult = { readonly ok: true; readonly frame: Frame } | { readonly ok: false; readonly reason: RejectReason; readonly detail: string };

function writePrefix(view: DataView, bytes: Uint8Array, kind: FrameKind, source: number, id: WireIdentity): void {
  view.setUint32(0, WIRE_MAGIC, true);
  view.setUint8(4, WIRE_VERSION);
  view.setUint8(5, FRAME_KIND[kind]);
  view.setUint16(6, source, true);
  bytes.set(id.jobHash.subarray(0, 8), 8);
  view.setUint32(16, id.attempt, true);
}

function sealHeader(view: DataView, bytes: Uint8Array, headerBytes: number): void {
  view.setUint32(headerBytes - 4, checksum(bytes.subarray(0, headerBytes - 4)), true);
}

/** Fields of a data chunk to encode; `payload` is this chunk's slice of the message. */
export type DataFrameFields = Omit<DataFrame, 'kind'>;

/** Encodes one data chunk: a fresh buffer holding the 64-byte header and a copy of the payload. */
export function encodeDataFrame(id: WireIdentity, f: DataFrameFields): Uint8Array {
  const bytes = new Uint8Array(DATA_HEADER_BYTES + f.payload.length);
  const view = new DataView(bytes.buffer);
  writePrefix(view, bytes, 'data', f.source, id);
  view.setUint32(20, f.step, true);
  view.setUint8(24, PHASE_CODE[f.phase]);
  view.setUint8(25, f.broadcast ? 1 : 0);
  view.setUint16(26, f.broadcast ? BROADCAST_DEST : f.dest, true);
  view.setUint32(28, f.tag, true);
  view.setUint32(32, f.chunkIndex, true);
  view.setUint32(36, f.chunkCount, true);
  view.setBigUint64(40, BigInt(f.totalLength), true);
  view.setUint32(48, f.chunkSize, true);
  view.setUint32(52, checksum(f.payload), true);
  view.setUint32(56, f.messageCrc, true);
  sealHeader(view, bytes, DATA_HEADER_BYTES);
  bytes.set(f.payload, DATA_HEADER_BYTES);
  return bytes;
}

/** Encodes a credit grant from `source` to `sender`. */
export function encodeCreditFrame(id: WireIdentity, f: Omit<CreditFrame, 'kind'>): Uint8Array {
  const bytes = new Uint8Array(CREDIT_FRAME_BYTES);
  const view = new DataView(bytes.buffer);
  writePrefix(view, bytes, 'credit', f.source, id);
  view.setUint16(20, f.sender, true);
  view.setUint32(24, f.consumed >>> 0, true);
  sealHeader(view, bytes, CREDIT_FRAME_BYTES);
  return bytes;
}

/** Encodes a heartbeat (rendezvous hello). */
export function encodeHeartbeatFrame(id: WireIdentity, f: Omit<HeartbeatFrame, 'kind'>): Uint8Array {
  const bytes = new Uint8Array(HEARTBEAT_FRAME_BYTES);
  const view = new DataView(bytes.buffer);
  writePrefix(view, bytes, 'heartbeat', f.source, id);
  view.setUint8(20, f.ready ? 1 : 0);
  view.setBigUint64(24, BigInt.asUintN(64, f.instance), true);
  view.setUint32(32, f.seq >>> 0, true);
  sealHeader(view, bytes, HEARTBEAT_FRAME_BYTES);
  return bytes;
}

/** Encodes an abort; the reason is cut to MAX_ABORT_REASON_BYTES of UTF-8. */
export function encodeAbortFrame(id: WireIdentity, f: Omit<AbortFrame, 'kind'>): Uint8Array {
  let reason = new TextEncoder().encode(f.reason);
  if (reason.length > MAX_ABORT_REASON_BYTES) reason = reason.subarray(0, MAX_ABORT_REASON_BYTES);
  const bytes = new Uint8Array(ABORT_HEADER_BYTES + reason.length);
  const view = new DataView(bytes.buffer);
  writePrefix(view, bytes, 'abort', f.source, id);
  view.setUint16(20, reason.length, true);
  view.setUint32(24, checksum(reason), true);
  sealHeader(view, bytes, ABORT_HEADER_BYTES);
  bytes.set(reason, ABORT_HEADER_BYTES);
  return bytes;
}

const reject = (reason: RejectReason, detail: string): DecodeResult => ({ ok: false, reason, detail });

const FIXED_HEADER_BYTES: Readonly<Record<number, number>> = {
  [FRAME_KIND.data]: DATA_HEADER_BYTES,
  [FRAME_KIND.credit]: CREDIT_FRAME_BYTES,
  [FRAME_KIND.heartbeat]: HEARTBEAT_FRAME_BYTES,
  [FRAME_KIND.abort]: ABORT_HEADER_BYTES,
};

/**
 * Parses and validates one received frame: structure, header CRC, job, attempt, rank ranges,
 * chunk geometry and payload CRC. Semantic checks that need receiver state (subject, step window,
 * duplicates, whole-message CRC) are the receiver's.
 */
export function decodeFrame(bytes: Uint8Array, ctx: DecodeContext): DecodeResult {
  if (bytes.length < PREFIX_BYTES) return reject('malformed', `frame of ${bytes.length} bytes is shorter than the ${PREFIX_BYTES}-byte prefix`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (view.getUint32(0, true) !== WIRE_MAGIC) return reject('malformed', 'bad magic');
  const version = view.getUint8(4);
  if (version !== WIRE_VERSION) return reject('malformed', `wire version ${version}, expected ${WIRE_VERSION}`);
  const kindCode = view.getUint8(5);
  const headerBytes = FIXED_HEADER_BYTES[kindCode];
  if (headerBytes === undefined) return reject('malformed', `unknown frame kind ${kindCode}`);
  if (bytes.length < headerBytes) return reject('malformed', `truncated header: ${bytes.length} of ${headerBytes} bytes`);
  if (view.getUint32(headerBytes - 4, true) !== checksum(bytes.subarray(0, headerBytes - 4))) return reject('bad_checksum', 'header CRC mismatch');
  for (let i = 0; i < 8; i++) {
    if (bytes[8 + i] !== ctx.jobHash[i]) return reject('wrong_job', 'job hash differs');
  }
  const attempt = view.getUint32(16, true);
  if (attempt !== ctx.attempt) return reject('wrong_attempt', `attempt ${attempt}, expected ${ctx.attempt}`);
  const source = view.getUint16(6, true);
  if (source >= ctx.worldSize) return reject('malformed', `source rank ${source} outside world size ${ctx.worldSize}`);
  switch (kindCode) {
    case FRAME_KIND.data:
      return decodeData(bytes, view, source, ctx);
    case FRAME_KIND.credit: {
      if (bytes.length !== CREDIT_FRAME_BYTES) return reject('malformed', `credit frame of ${bytes.length} bytes`);
      const sender = view.getUint16(20, true);
      if (sender >= ctx.worldSize) return reject('malformed', `credit for rank ${sender} outside world size`);
      return { ok: true, frame: { kind: 'credit', source, sender, consumed: view.getUint32(24, true) } };
    }
    case FRAME_KIND.heartbeat: {
      if (bytes.length !== HEARTBEAT_FRAME_BYTES) return reject('malformed', `heartbeat frame of ${bytes.length} bytes`);
      const frame: HeartbeatFrame = {
        kind: 'heartbeat',
        source,
        ready: (view.getUint8(20) & 1) === 1,
        instance: view.getBigUint64(24, true),
        seq: view.getUint32(32, true),
      };
      return { ok: true, frame };
    }
    default: {
      const length = view.getUint16(20, true);
      if (length > MAX_ABORT_REASON_BYTES || bytes.length !== ABORT_HEADER_BYTES + length)
        return reject('malformed', `abort reason length ${length} does not match a frame of ${bytes.length} bytes`);
      const text = bytes.subarray(ABORT_HEADER_BYTES);
      if (checksum(text) !== view.getUint32(24, true)) return reject('bad_checksum', 'abort reason CRC mismatch');
      return { ok: true, frame: { kind: 'abort', source, reason: new TextDecoder().decode(text) } };
    }
  }
}

function decodeData(bytes: Uint8Array, view: DataView, source: number, ctx: DecodeContext): DecodeResult {
  const phaseCode = view.getUint8(24);
  const phase = phaseOfCode(phaseCode);
  if (phase === undefined) return reject('wrong_phase', `unknown phase code ${phaseCode}`);
  const broadcast = (view.getUint8(25) & 1) === 1;
  const dest = view.getUint16(26, true);
  if (broadcast ? dest !== BROADCAST_DEST : dest >= ctx.worldSize) return reject('malformed', `destination ${dest} (broadcast ${broadcast})`);
  const chunkIndex = view.getUint32(32, true);
  const chunkCount = view.getUint32(36, true);
  const total = view.getBigUint64(40, true);
  const chunkSize = view.getUint32(48, true);
  if (total > BigInt(ctx.maxMessageBytes)) return reject('malformed', `message length ${total} exceeds the limit of ${ctx.maxMessageBytes} bytes`);
  const totalLength = Number(total);
  if (chunkSize === 0) return reject('malformed', 'chunk size 0');
  const expectedCount = Math.max(1, Math.ceil(totalLength / chunkSize));
  if (chunkCount !== expectedCount)
    return reject('malformed', `chunk count ${chunkCount}, expected ${expectedCount} for ${totalLength} bytes in chunks of ${chunkSize}`);
  if (chunkIndex >= chunkCount) return reject('malformed', `chunk index ${chunkIndex} of ${chunkCount}`);
  const expectedLength = Math.min(chunkSize, totalLength - chunkIndex * chunkSize);
  const payload = bytes.subarray(DATA_HEADER_BYTES);
  if (payload.length !== expectedLength) return reject('malformed', `chunk ${chunkIndex} carries ${payload.length} bytes, expected ${expectedLength}`);
  if (checksum(payload) !== view.getUint32(52, true)) return reject('bad_checksum', `chunk ${chunkIndex} payload CRC mismatch`);
  const frame: DataFrame = {
    kind: 'data',
    source,
    step: view.getUint32(20, true),
    phase,
    broadcast,
    dest,
    tag: view.getUint32(28, true),
    chunkIndex,
    chunkCount,
    totalLength,
    chunkSize,
    messageCrc: view.getUint32(56, true),
    payload,
  };
  return { ok: true, frame };
}
