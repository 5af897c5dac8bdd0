// Faults over a real nats-server: a slow receiver is throttled by credits (never cut off), a killed
// server, a silent peer, a missing rank at rendezvous, a step deadline and a peer's abort each fail
// every pending operation with a RetryableError that names the cause.
import test from 'ava';
import { createServer, type Socket } from 'node:net';
import { RetryableError } from '../../../trainer/src/errors.js';
import { NatsTransport, attemptSubjects, freePort, natsServerConfig, type NatsServerHandle } from '../../../trainer/src/collective/nats/index.js';
import { checksum, encodeDataFrame, encodeHeartbeatFrame, jobHash } from '../../../trainer/src/collective/nats/wire.js';
import { closeAll, connectGang, pattern, rawConnection, sameBytes, sleep, startServer } from './nats-fixtures.js';

let shared: NatsServerHandle;
test.before(async () => {
  shared = await startServer();
});
test.after.always(async () => {
  await shared.stop();
});

test('nats transport - a slow receiver of 20 MB is throttled by credits, not cut off as a slow consumer', async (t) => {
  const chunk = 256 * 1024;
  const window = 4;
  // max_pending of 4 MB: five times the credit window, far below the 20 MB message.
  const port = await freePort();
  const httpPort = await freePort();
  const server = await startServer({ port, httpPort, config: natsServerConfig({ port, httpPort, maxPayload: '1MB', maxPending: '4MB' }) });
  const { transports, recorders } = await connectGang(server.url, 2, { jobId: 'slow', attempt: 1, chunkBytes: chunk, creditWindow: window }, (rank) =>
    rank === 1 ? { beforeConsume: () => sleep(3) } : {},
  );
  try {
    const [a, b] = transports;
    const [ra, rb] = recorders;
    if (a === undefined || b === undefined || ra === undefined || rb === undefined) throw new Error('gang of 2 expected');
    let maxAhead = 0;
    const original = ra.onBytes.bind(ra);
    ra.onBytes = (phase, direction, bytes) => {
      original(phase, direction, bytes);
      maxAhead = Math.max(maxAhead, ra.sent - rb.received);
    };
    const data = pattern(3, 20 * 1024 * 1024);
    const [, got] = await Promise.all([a.send(1, 0, 'reduce_scatter', 0, data), b.recv(0, 0, 'reduce_scatter', 0)]);
    t.true(sameBytes(got, data));
    t.true(maxAhead <= window * chunk, `sender ran ${maxAhead} bytes ahead of the receiver (window ${window * chunk})`);
    const varz = (await (await fetch(`${server.monitorUrl}/varz`)).json()) as { slow_consumers?: unknown };
    t.is(varz.slow_consumers, 0);
    t.true(
      transports.every((tr) => tr.failure === undefined),
      'no disconnect or abort',
    );
  } finally {
    await closeAll(transports);
    await server.stop();
  }
});

test('nats transport - killing the server mid-transfer rejects every pending operation quickly', async (t) => {
  const server = await startServer();
  let consumed = 0;
  let killed: Promise<void> | undefined;
  const { transports } = await connectGang(
    server.url,
    2,
    { jobId: 'kill', attempt: 1, chunkBytes: 256 * 1024, creditWindow: 4, stepDeadlineMs: 60_000 },
    (rank) =>
      rank === 1
        ? {
            beforeConsume: async () => {
              if (++consumed === 5) killed = server.kill();
              await sleep(5);
            },
          }
        : {},
  );
  try {
    const [a, b] = transports;
    if (a === undefined || b === undefined) throw new Error('gang of 2 expected');
    const started = Date.now();
    const ops = [a.send(1, 0, 'reduce_scatter', 0, pattern(4, 20 * 1024 * 1024)), b.recv(0, 0, 'reduce_scatter', 0), a.recv(1, 0, 'reduce_scatter', 0)];
    for (const op of ops) await t.throwsAsync(op, { instanceOf: RetryableError, message: /NATS connection/ });
    const ms = Date.now() - started;
    t.true(ms < 5000, `rejected after ${ms} ms`);
    t.log(`pending operations rejected ${ms} ms after the transfer started (server killed after 5 chunks)`);
  } finally {
    await killed;
    await closeAll(transports);
    await server.stop();
  }
});

test('nats transport - a rank that stops heartbeating aborts the others with an error naming it', async (t) => {
  const job = 'silent';
  const fake = await rawConnection(shared.url);
  const hb = attemptSubjects(job, 1).heartbeat;
  // Rank 2 is a bare connection that speaks only the heartbeat frame, then falls silent.
  let seq = 0;
  const beat = setInterval(
    () => fake.publish(hb, encodeHeartbeatFrame({ jobHash: jobHash(job), attempt: 1 }, { source: 2, ready: true, instance: 42n, seq: seq++ })),
    50,
  );
  const transports = await Promise.all(
    [0, 1].map((rank) => NatsTransport.connect({ servers: shared.url, jobId: job, attempt: 1, rank, worldSize: 3, heartbeatMs: 100, peerTimeoutMs: 600 })),
  );
  try {
    const pending = transports.map((tr, rank) => tr.recv(rank === 0 ? 1 : 0, 0, 'threshold', 0));
    const silencedAt = Date.now();
    clearInterval(beat);
    for (const p of pending) await t.throwsAsync(p, { instanceOf: RetryableError, message: /rank 2 .*silent|aborted by rank \d: peer rank 2/ });
    t.true(Date.now() - silencedAt < 3000);
  } finally {
    clearInterval(beat);
    await fake.close();
    await closeAll(transports);
  }
});

test('nats transport - a server that goes silent right after the handshake fails start() within the connect timeout', async (t) => {
  // No real nats-server can be made to answer the handshake's PING and then no other, so this is a
  // raw TCP peer that speaks just that much of the protocol: INFO, then PONG to the first PING only.
  const sockets = new Set<Socket>();
  const silent = createServer((sock) => {
    sockets.add(sock);
    sock.on('error', () => undefined);
    sock.write(`INFO ${JSON.stringify({ server_id: 'silent', server_name: 'silent', version: '2.15.2', proto: 1, headers: true, max_payload: 1048576 })}\r\n`);
    let pings = 0;
    let buf = '';
    sock.on('data', (d: Buffer) => {
      buf += d.toString('latin1');
      let at: number;
      while ((at = buf.indexOf('\r\n')) >= 0) {
        const line = buf.slice(0, at);
        buf = buf.slice(at + 2);
        if (line === 'PING' && ++pings === 1) sock.write('PONG\r\n');
      }
    });
  });
  await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
  const address = silent.address();
  if (address === null || typeof address === 'string') throw new Error('no TCP address');
  try {
    const started = Date.now();
    const err = await t.throwsAsync(
      NatsTransport.connect({ servers: `nats://127.0.0.1:${address.port}`, jobId: 'silent', attempt: 0, rank: 0, worldSize: 2, connectTimeoutMs: 1500 }),
      { instanceOf: RetryableError },
    );
    t.regex(err.message, /answered no flush within 1500 ms of connecting/);
    const ms = Date.now() - started;
    t.true(ms < 10_000, `start() failed after ${ms} ms`);
  } finally {
    for (const sock of sockets) sock.destroy();
    await new Promise<void>((resolve) => silent.close(() => resolve()));
  }
});

test('nats transport - rendezvous timeout names the missing ranks', async (t) => {
  const started = Promise.all(
    [0, 1].map((rank) => NatsTransport.connect({ servers: shared.url, jobId: 'lonely', attempt: 1, rank, worldSize: 4, rendezvousTimeoutMs: 1500 })),
  );
  const err = await t.throwsAsync(started, { instanceOf: RetryableError });
  t.regex(err.message, /rendezvous: ranks 2, 3 of job lonely attempt 1 did not join within 1\.5 s/);
});

test('nats transport - a recv past its step deadline aborts every rank, naming what was missing', async (t) => {
  const job = 'deadline';
  const { transports } = await connectGang(shared.url, 2, { jobId: job, attempt: 1, chunkBytes: 1024 }, (rank) => ({
    stepDeadlineMs: rank === 1 ? 700 : 10_000,
  }));
  const raw = await rawConnection(shared.url);
  try {
    const [a, b] = transports;
    if (a === undefined || b === undefined) throw new Error('gang of 2 expected');
    const pendingA = a.recv(1, 2, 'all_gather', 0);
    const pendingB = b.recv(0, 2, 'norm', 1);
    // Only chunk 1 of a 3-chunk message from rank 0 ever arrives.
    const whole = pattern(8, 3000);
    raw.publish(
      attemptSubjects(job, 1).data('norm', 1),
      encodeDataFrame(
        { jobHash: jobHash(job), attempt: 1 },
        {
          source: 0,
          step: 2,
          phase: 'norm',
          broadcast: false,
          dest: 1,
          tag: 1,
          chunkIndex: 0,
          chunkCount: 3,
          totalLength: 3000,
          chunkSize: 1024,
          messageCrc: checksum(whole),
          payload: whole.subarray(0, 1024),
        },
      ),
    );
    await raw.flush();
    const started = Date.now();
    const errB = await t.throwsAsync(pendingB, { instanceOf: RetryableError });
    t.regex(errB.message, /^step deadline: rank 1 waited \d+ ms for step 2 phase norm tag 1 from rank 0 and received 1 of 3 chunks \(1024 of 3000 bytes\)$/);
    // Rank 0's own deadline is 10 s away: it fails at once because rank 1 published the abort.
    const errA = await t.throwsAsync(pendingA, { instanceOf: RetryableError });
    t.regex(errA.message, /^collective aborted by rank 1: step deadline: rank 1 waited/);
    t.true(Date.now() - started < 3000);
  } finally {
    await raw.close();
    await closeAll(transports);
  }
});

test('nats transport - abort on one rank rejects pending and later operations on every rank', async (t) => {
  const { transports } = await connectGang(shared.url, 3, { jobId: 'abort', attempt: 1 });
  try {
    const pending = transports.map((tr, rank) => tr.recv((rank + 1) % 3, 0, 'hash', 0));
    transports[1]?.abort('hash mismatch at step 0');
    const errors = await Promise.all(pending.map((p) => t.throwsAsync(p, { instanceOf: RetryableError })));
    t.regex(errors[0]?.message ?? '', /aborted by rank 1: hash mismatch at step 0/);
    t.regex(errors[2]?.message ?? '', /aborted by rank 1: hash mismatch at step 0/);
    await t.throwsAsync(transports[0]?.send(2, 1, 'hash', 0, new Uint8Array(4)) ?? Promise.resolve(), { instanceOf: RetryableError });
  } finally {
    await closeAll(transports);
  }
});

test('nats transport - a second process claiming a rank aborts the attempt', async (t) => {
  const job = 'twins';
  const { transports } = await connectGang(shared.url, 2, { jobId: job, attempt: 1, heartbeatMs: 100, peerTimeoutMs: 1000 });
  const raw = await rawConnection(shared.url);
  try {
    const pending = transports.map((tr, rank) => tr.recv(1 - rank, 0, 'hash', 0));
    raw.publish(
      attemptSubjects(job, 1).heartbeat,
      encodeHeartbeatFrame({ jobHash: jobHash(job), attempt: 1 }, { source: 1, ready: true, instance: 7n, seq: 0 }),
    );
    await raw.flush();
    for (const p of pending) await t.throwsAsync(p, { instanceOf: RetryableError, message: /two processes claim rank 1 of job twins attempt 1/ });
  } finally {
    await raw.close();
    await closeAll(transports);
  }
});
