import test from 'ava';
import { RetryableError } from '../../../trainer/src/errors.js';
import { MemoryHub } from '../../../trainer/src/collective/memory-transport.js';
import type { CollectivePhase } from '../../../trainer/src/collective/transport.js';

/** Deterministic bytes for (seed, length). */
function bytes(seed: number, length: number): Uint8Array {
  const out = new Uint8Array(length);
  for (let i = 0; i < length; i++) out[i] = (seed * 31 + i * 7) & 0xff;
  return out;
}

/** A hub whose observers record byte counts per rank. */
function countingHub(n: number): { hub: MemoryHub; counts: { sent: number; received: number }[] } {
  const counts = Array.from({ length: n }, () => ({ sent: 0, received: 0 }));
  const hub = new MemoryHub(n, {
    observer: (rank) => ({
      onBytes: (_phase: CollectivePhase, direction: 'sent' | 'received', b: number) => {
        const c = counts[rank];
        if (c !== undefined) c[direction] += b;
      },
    }),
  });
  return { hub, counts };
}

test('memory transport - recv after send takes the buffered message', async (t) => {
  const hub = new MemoryHub(2);
  await hub.transport(0).send(1, 3, 'reduce_scatter', 0, bytes(1, 100));
  t.deepEqual(await hub.transport(1).recv(0, 3, 'reduce_scatter', 0), bytes(1, 100));
});

test('memory transport - recv before send waits for the message', async (t) => {
  const hub = new MemoryHub(2);
  const pending = hub.transport(1).recv(0, 3, 'reduce_scatter', 0);
  await hub.transport(0).send(1, 3, 'reduce_scatter', 0, bytes(2, 10));
  t.deepEqual(await pending, bytes(2, 10));
});

test('memory transport - messages are keyed by source, step, phase and tag', async (t) => {
  const hub = new MemoryHub(3);
  const [a, b, c] = [hub.transport(0), hub.transport(1), hub.transport(2)];
  await a.send(2, 1, 'threshold', 0, bytes(10, 4));
  await a.send(2, 1, 'threshold', 1, bytes(11, 4));
  await a.send(2, 2, 'threshold', 0, bytes(12, 4));
  await a.send(2, 1, 'all_gather', 0, bytes(13, 4));
  await b.send(2, 1, 'threshold', 0, bytes(14, 4));
  t.deepEqual(await c.recv(1, 1, 'threshold', 0), bytes(14, 4));
  t.deepEqual(await c.recv(0, 1, 'all_gather', 0), bytes(13, 4));
  t.deepEqual(await c.recv(0, 2, 'threshold', 0), bytes(12, 4));
  t.deepEqual(await c.recv(0, 1, 'threshold', 1), bytes(11, 4));
  t.deepEqual(await c.recv(0, 1, 'threshold', 0), bytes(10, 4));
});

test('memory transport - each message is taken once', async (t) => {
  const hub = new MemoryHub(2);
  await hub.transport(0).send(1, 0, 'hash', 0, bytes(1, 8));
  await hub.transport(1).recv(0, 0, 'hash', 0);
  await t.throwsAsync(hub.transport(1).recv(0, 0, 'hash', 0), { message: /already taken/ });
});

test('memory transport - the sender may reuse its buffer after send', async (t) => {
  const hub = new MemoryHub(2);
  const buf = bytes(5, 16);
  await hub.transport(0).send(1, 0, 'norm', 0, buf);
  buf.fill(0);
  t.deepEqual(await hub.transport(1).recv(0, 0, 'norm', 0), bytes(5, 16));
});

test('memory transport - broadcast reaches every other rank with its own copy', async (t) => {
  const hub = new MemoryHub(4);
  await hub.transport(2).broadcast(7, 'all_gather', 3, bytes(9, 1000));
  const got = await Promise.all([0, 1, 3].map((r) => hub.transport(r).recv(2, 7, 'all_gather', 3)));
  for (const g of got) t.deepEqual(g, bytes(9, 1000));
  got[0]?.fill(0);
  t.deepEqual(got[1], bytes(9, 1000));
});

test('memory transport - empty messages are delivered', async (t) => {
  const hub = new MemoryHub(2);
  await hub.transport(1).send(0, 0, 'progress', 0, new Uint8Array(0));
  t.is((await hub.transport(0).recv(1, 0, 'progress', 0)).length, 0);
});

test('memory transport - bytes are counted once per send, once per receiver', async (t) => {
  const { hub, counts } = countingHub(3);
  await hub.transport(0).send(1, 0, 'reduce_scatter', 0, bytes(1, 100));
  await hub.transport(0).broadcast(0, 'all_gather', 0, bytes(1, 50));
  t.deepEqual(counts, [
    { sent: 150, received: 0 },
    { sent: 0, received: 150 },
    { sent: 0, received: 50 },
  ]);
});

test('memory transport - abort rejects pending recvs on every rank with RetryableError', async (t) => {
  const hub = new MemoryHub(3);
  const pending = [hub.transport(0).recv(1, 0, 'threshold', 0), hub.transport(1).recv(2, 0, 'threshold', 0), hub.transport(2).recv(0, 0, 'threshold', 0)];
  hub.transport(1).abort('peer lost');
  const errors = await Promise.all(pending.map((p) => t.throwsAsync(p, { instanceOf: RetryableError })));
  t.regex(errors[0]?.message ?? '', /aborted by rank 1: peer lost/);
  t.regex(errors[1]?.message ?? '', /aborted on rank 1: peer lost/);
});

test('memory transport - operations after abort reject with the same error', async (t) => {
  const hub = new MemoryHub(2);
  hub.transport(0).abort('deadline');
  await t.throwsAsync(hub.transport(1).send(0, 0, 'hash', 0, bytes(1, 1)), { instanceOf: RetryableError, message: /deadline/ });
  await t.throwsAsync(hub.transport(1).broadcast(0, 'hash', 0, bytes(1, 1)), { instanceOf: RetryableError });
  await t.throwsAsync(hub.transport(0).recv(1, 0, 'hash', 0), { instanceOf: RetryableError });
});

test('memory transport - close rejects pending recvs and resolves closed', async (t) => {
  const hub = new MemoryHub(2);
  const pending = hub.transport(0).recv(1, 0, 'hash', 0);
  await hub.transport(0).close();
  await t.throwsAsync(pending, { instanceOf: RetryableError, message: /closed/ });
  await hub.transport(0).closed;
});

const badArgs: [string, (hub: MemoryHub) => Promise<unknown>][] = [
  ['send to self', (h) => h.transport(0).send(0, 0, 'hash', 0, new Uint8Array(1))],
  ['send to a rank outside the world', (h) => h.transport(0).send(2, 0, 'hash', 0, new Uint8Array(1))],
  ['negative step', (h) => h.transport(0).send(1, -1, 'hash', 0, new Uint8Array(1))],
  ['fractional tag', (h) => h.transport(0).recv(1, 0, 'hash', 0.5)],
  ['unknown phase', (h) => h.transport(0).recv(1, 0, 'bogus' as CollectivePhase, 0)],
];
for (const [name, op] of badArgs) {
  test(`memory transport - rejects ${name} with a RangeError`, async (t) => {
    await t.throwsAsync(op(new MemoryHub(2)), { instanceOf: RangeError });
  });
}
