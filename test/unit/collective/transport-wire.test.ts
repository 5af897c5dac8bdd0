import test from 'ava';
import { FlowControl } from '../../../trainer/src/collective/nats/flow-control.js';
import {
  DATA_HEADER_BYTES,
  checksum,
  decodeFrame,
  encodeAbortFrame,
  encodeCreditFrame,
  encodeDataFrame,
  encodeHeartbeatFrame,
  jobHash,
  type DataFrameFields,
  type DecodeContext,
} from '../../../trainer/src/collective/nats/wire.js';
import type { RejectReason } from '../../../trainer/src/collective/transport.js';

const ctx: DecodeContext = { jobHash: jobHash('job-a'), attempt: 3, worldSize: 4, maxMessageBytes: 1 << 20 };

/** A valid single-chunk data frame's fields, with overrides. */
function chunk(over: Partial<DataFrameFields> = {}): DataFrameFields {
  const payload = over.payload ?? new Uint8Array([1, 2, 3, 4, 5]);
  return {
    source: 1,
    step: 9,
    phase: 'reduce_scatter',
    broadcast: false,
    dest: 2,
    tag: 4,
    chunkIndex: 0,
    chunkCount: 1,
    totalLength: payload.length,
    chunkSize: 64,
    messageCrc: checksum(payload),
    payload,
    ...over,
  };
}

test('transport wire - a data chunk round-trips', (t) => {
  const r = decodeFrame(encodeDataFrame(ctx, chunk()), ctx);
  if (!r.ok || r.frame.kind !== 'data') return t.fail(JSON.stringify(r));
  t.like(r.frame, { source: 1, step: 9, phase: 'reduce_scatter', broadcast: false, dest: 2, tag: 4, chunkIndex: 0, chunkCount: 1, totalLength: 5 });
  t.deepEqual([...r.frame.payload], [1, 2, 3, 4, 5]);
});

test('transport wire - control frames round-trip', (t) => {
  t.like(decodeFrame(encodeCreditFrame(ctx, { source: 2, sender: 1, consumed: 77 }), ctx), {
    ok: true,
    frame: { kind: 'credit', source: 2, sender: 1, consumed: 77 },
  });
  t.like(decodeFrame(encodeHeartbeatFrame(ctx, { source: 3, ready: true, instance: 123n, seq: 5 }), ctx), {
    ok: true,
    frame: { kind: 'heartbeat', source: 3, ready: true, instance: 123n, seq: 5 },
  });
  t.like(decodeFrame(encodeAbortFrame(ctx, { source: 0, reason: 'peer lost ✓' }), ctx), {
    ok: true,
    frame: { kind: 'abort', source: 0, reason: 'peer lost ✓' },
  });
});

/** Flips one byte of a copy. */
function flip(bytes: Uint8Array, at: number): Uint8Array {
  const out = bytes.slice();
  out[at] = (out[at] ?? 0) ^ 0xff;
  return out;
}

const rejections: [string, () => Uint8Array, RejectReason][] = [
  ['another job', () => encodeDataFrame({ jobHash: jobHash('job-b'), attempt: 3 }, chunk()), 'wrong_job'],
  ['a stale attempt', () => encodeDataFrame({ ...ctx, attempt: 2 }, chunk()), 'wrong_attempt'],
  ['a payload bit flip', () => flip(encodeDataFrame(ctx, chunk()), DATA_HEADER_BYTES + 1), 'bad_checksum'],
  ['a header bit flip', () => flip(encodeDataFrame(ctx, chunk()), 30), 'bad_checksum'],
  ['a truncated header', () => encodeDataFrame(ctx, chunk()).subarray(0, 40), 'malformed'],
  ['a truncated payload', () => encodeDataFrame(ctx, chunk()).subarray(0, DATA_HEADER_BYTES + 2), 'malformed'],
  ['a frame shorter than the prefix', () => new Uint8Array(7), 'malformed'],
  ['bad magic', () => new Uint8Array(64).fill(9), 'malformed'],
  ['an oversized length', () => encodeDataFrame(ctx, chunk({ totalLength: 2 ** 40, chunkCount: 2 ** 40 / 64 })), 'malformed'],
  ['a chunk count that does not fit the length', () => encodeDataFrame(ctx, chunk({ chunkCount: 2 })), 'malformed'],
  ['a chunk index past the count', () => encodeDataFrame(ctx, chunk({ chunkIndex: 1 })), 'malformed'],
  ['a source outside the world', () => encodeDataFrame(ctx, chunk({ source: 4 })), 'malformed'],
  ['a destination outside the world', () => encodeDataFrame(ctx, chunk({ dest: 9 })), 'malformed'],
  ['a credit for a rank outside the world', () => encodeCreditFrame(ctx, { source: 1, sender: 7, consumed: 1 }), 'malformed'],
  ['an abort with a corrupted reason', () => flip(encodeAbortFrame(ctx, { source: 1, reason: 'x' }), 32), 'bad_checksum'],
];
for (const [name, build, reason] of rejections) {
  test(`transport wire - rejects ${name} as ${reason}`, (t) => {
    t.like(decodeFrame(build(), ctx), { ok: false, reason });
  });
}

test('transport wire - an unknown phase code is wrong_phase', (t) => {
  const bytes = encodeDataFrame(ctx, chunk());
  const view = new DataView(bytes.buffer);
  view.setUint8(24, 200);
  view.setUint32(60, checksum(bytes.subarray(0, 60)), true);
  t.like(decodeFrame(bytes, ctx), { ok: false, reason: 'wrong_phase' });
});

test('transport flow control - at most `window` chunks in flight per receiver', async (t) => {
  const fc = new FlowControl(3, 2);
  await fc.acquire([1, 2]);
  await fc.acquire([1]);
  t.false(fc.canSend([1]));
  t.true(fc.canSend([2]));
  let granted = false;
  const pending = fc.acquire([1, 2]).then(() => (granted = true));
  await Promise.resolve();
  t.false(granted);
  t.true(fc.onGrant(1, 1));
  await pending;
  t.is(fc.inFlight(1), 2);
  t.is(fc.inFlight(2), 2);
});

test('transport flow control - stale grants are ignored and impossible grants refused', (t) => {
  const fc = new FlowControl(2, 4);
  void fc.acquire([1]);
  void fc.acquire([1]);
  t.true(fc.onGrant(1, 2));
  t.true(fc.onGrant(1, 1));
  t.is(fc.inFlight(1), 0);
  t.false(fc.onGrant(1, 5));
});

test('transport flow control - fail rejects waiters', async (t) => {
  const fc = new FlowControl(2, 1);
  await fc.acquire([1]);
  const pending = fc.acquire([1]);
  fc.fail(new Error('boom'));
  await t.throwsAsync(pending, { message: 'boom' });
});
