// WorkQueue and rate limiters on a FakeClock: de-duplication, one-at-a-time processing per key,
// delays, backoff sequences, shutdown, metric hooks. No test waits on real time.
import test from 'ava';
import {
  ExponentialBackoffRateLimiter,
  FakeClock,
  MaxOfRateLimiter,
  TokenBucketRateLimiter,
  WorkQueue,
  defaultControllerRateLimiter,
  flushMicrotasks,
  type WorkQueueMetrics,
} from '../../../operator/src/runtime/index.js';

/** Records every metric hook call. */
function recorder(): { metrics: WorkQueueMetrics; adds: number; retries: number; depths: number[]; latencies: number[]; works: number[] } {
  const r = { adds: 0, retries: 0, depths: [] as number[], latencies: [] as number[], works: [] as number[] };
  const metrics: WorkQueueMetrics = {
    added: () => {
      r.adds++;
    },
    retried: () => {
      r.retries++;
    },
    depth: (n) => void r.depths.push(n),
    queueLatency: (s) => void r.latencies.push(s),
    workDuration: (s) => void r.works.push(s),
  };
  return Object.assign(r, { metrics });
}

/** Whether a promise has settled, without waiting for it. */
async function settled<T>(p: Promise<T>): Promise<{ done: boolean; value: T | undefined }> {
  let done = false;
  let value: T | undefined;
  void p.then((v) => {
    done = true;
    value = v;
  });
  await flushMicrotasks();
  return { done, value };
}

test('queue - adds of a queued key are de-duplicated and order is kept', async (t) => {
  const table: { adds: string[]; expect: string[] }[] = [
    { adds: ['a', 'a', 'a'], expect: ['a'] },
    { adds: ['a', 'b', 'a', 'c', 'b'], expect: ['a', 'b', 'c'] },
    { adds: [], expect: [] },
  ];
  for (const row of table) {
    const q = new WorkQueue({ name: 't', clock: new FakeClock() });
    for (const k of row.adds) q.add(k);
    t.is(q.depth, row.expect.length, JSON.stringify(row.adds));
    const got: string[] = [];
    while (q.depth > 0) {
      const k = await q.get();
      if (k !== undefined) got.push(k);
    }
    t.deepEqual(got, row.expect, JSON.stringify(row.adds));
  }
});

test('queue - a key being processed is not handed out again until done, then exactly once', async (t) => {
  const q = new WorkQueue({ name: 't', clock: new FakeClock() });
  q.add('a');
  t.is(await q.get(), 'a');
  q.add('a');
  q.add('a');
  t.is(q.depth, 0, 're-adds during processing wait');
  t.is(q.inFlight, 1);
  const next = q.get();
  t.false((await settled(next)).done, 'a second worker does not get the in-flight key');
  q.add('b');
  t.is(await next, 'b', 'other keys flow meanwhile');
  q.done('a');
  t.is(q.depth, 1, 'a is queued once at done');
  t.is(await q.get(), 'a');
  q.done('a');
  q.done('b');
  t.is(q.depth, 0, 'nothing else queued');
});

test('queue - get waits for an add', async (t) => {
  const q = new WorkQueue({ name: 't', clock: new FakeClock() });
  const p = q.get();
  t.false((await settled(p)).done);
  q.add('x');
  t.is(await p, 'x');
});

test('queue - addAfter delays on the injected clock and the earliest deadline wins', async (t) => {
  const clock = new FakeClock();
  const q = new WorkQueue({ name: 't', clock });
  q.addAfter('a', 1000);
  q.addAfter('a', 300);
  q.addAfter('a', 2000);
  q.addAfter('b', 0);
  t.is(q.depth, 1, 'zero delay adds at once');
  t.is(q.delayed, 1);
  await clock.advance(299);
  t.is(q.depth, 1);
  await clock.advance(1);
  t.is(q.depth, 2, 'a added at 300 ms');
  await clock.advance(5000);
  t.is(q.depth, 2, 'the later deadlines were dropped');
});

test('rate limiter - exponential backoff sequence, cap and forget', (t) => {
  const l = new ExponentialBackoffRateLimiter(5, 1_000_000);
  const seq = Array.from({ length: 10 }, () => l.when('k'));
  t.deepEqual(seq, [5, 10, 20, 40, 80, 160, 320, 640, 1280, 2560]);
  t.is(l.numRequeues('k'), 10);
  for (let i = 0; i < 30; i++) l.when('k');
  t.is(l.when('k'), 1_000_000, 'capped at 1000 s');
  t.is(l.when('other'), 5, 'per key');
  l.forget('k');
  t.is(l.numRequeues('k'), 0);
  t.is(l.when('k'), 5, 'forget restarts the sequence');
});

test('rate limiter - token bucket: burst free, then spaced at 1/qps, refilled by time', async (t) => {
  const clock = new FakeClock();
  const table: { qps: number; burst: number; expect: number[] }[] = [
    { qps: 10, burst: 3, expect: [0, 0, 0, 100, 200, 300] },
    { qps: 1, burst: 1, expect: [0, 1000, 2000] },
  ];
  for (const row of table) {
    const b = new TokenBucketRateLimiter(clock, row.qps, row.burst);
    t.deepEqual(
      row.expect.map(() => b.when()),
      row.expect,
      `qps ${row.qps} burst ${row.burst}`,
    );
  }
  const b = new TokenBucketRateLimiter(clock, 10, 2);
  b.when();
  b.when();
  t.is(b.when(), 100);
  await clock.advance(1000);
  t.is(b.when(), 0, 'refilled (capped at burst) after a second');
});

test('rate limiter - default controller limiter is the max of backoff and bucket', (t) => {
  const clock = new FakeClock();
  const l = defaultControllerRateLimiter(clock, { qps: 10, burst: 2 });
  t.deepEqual([l.when('a'), l.when('b'), l.when('c'), l.when('a')], [5, 5, 100, 200]);
  t.is(l.numRequeues('a'), 2);
  const m = new MaxOfRateLimiter(new ExponentialBackoffRateLimiter(1, 8), new ExponentialBackoffRateLimiter(3, 4));
  t.deepEqual([m.when('k'), m.when('k'), m.when('k'), m.when('k')], [3, 4, 4, 8]);
});

test('queue - addRateLimited follows the backoff on the clock; forget resets it', async (t) => {
  const clock = new FakeClock();
  const q = new WorkQueue({ name: 't', clock, rateLimiter: new ExponentialBackoffRateLimiter(5, 1000) });
  const readyAt: number[] = [];
  const start = clock.now();
  for (let i = 0; i < 4; i++) {
    q.addRateLimited('k');
    while (q.depth === 0) await clock.advance(1);
    readyAt.push(clock.now() - start);
    t.is(await q.get(), 'k');
    q.done('k');
  }
  t.deepEqual(readyAt, [5, 15, 35, 75], 'ready after 5, 10, 20, 40 ms');
  t.is(q.numRequeues('k'), 4);
  q.forget('k');
  t.is(q.numRequeues('k'), 0);
});

test('queue - shutdown releases waiting getters, drops queued and delayed keys, ignores adds', async (t) => {
  const clock = new FakeClock();
  const q = new WorkQueue({ name: 't', clock });
  q.add('a');
  t.is(await q.get(), 'a');
  const waiting = q.get();
  q.add('b');
  t.is(await waiting, 'b');
  const waiting2 = q.get();
  q.addAfter('c', 100);
  q.shutdown();
  t.is(await waiting2, undefined);
  t.is(await q.get(), undefined);
  q.add('d');
  q.addRateLimited('e');
  await clock.advance(1000);
  t.is(q.depth, 0);
  t.is(clock.pendingTimers, 0, 'delayed adds cancelled');
  q.done('a');
  q.done('b');
  t.true(q.shuttingDown);
});

test('queue - metric hooks see adds, depth, latency, work duration and retries', async (t) => {
  const clock = new FakeClock();
  const r = recorder();
  const q = new WorkQueue({ name: 't', clock, metrics: r.metrics, rateLimiter: new ExponentialBackoffRateLimiter(5, 1000) });
  q.add('a');
  q.add('a');
  q.add('b');
  t.is(r.adds, 3, 'every add counts, as in client-go');
  t.is(r.depths.at(-1), 2);
  await clock.advance(250);
  t.is(await q.get(), 'a');
  t.deepEqual(r.latencies, [0.25]);
  await clock.advance(1500);
  q.done('a');
  t.deepEqual(r.works, [1.5]);
  q.addRateLimited('a');
  t.is(r.retries, 1);
});
