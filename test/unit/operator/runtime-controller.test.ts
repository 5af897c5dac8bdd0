// Controller on a FakeClock: retries with backoff on error, forget on success, requeueAfter,
// at most one reconcile per key across workers, graceful shutdown, controller-runtime metrics.
import test from 'ava';
import {
  Controller,
  ExponentialBackoffRateLimiter,
  FakeClock,
  WorkQueue,
  flushMicrotasks,
  type ReconcileOutcome,
} from '../../../operator/src/runtime/index.js';
import { METRIC, OperatorMetrics } from '../../../operator/src/metrics/index.js';

interface Deferred {
  promise: Promise<void>;
  resolve: () => void;
}
function deferred(): Deferred {
  let resolve: () => void = () => {};
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

async function until(clock: FakeClock, cond: () => boolean, maxMs = 10_000): Promise<void> {
  for (let i = 0; i < maxMs && !cond(); i++) await clock.advance(1);
}

test('controller - errors retry with exponential backoff; success forgets the backoff', async (t) => {
  const clock = new FakeClock();
  const queue = new WorkQueue({ name: 'c', clock, rateLimiter: new ExponentialBackoffRateLimiter(5, 1_000_000) });
  const calls: number[] = [];
  const start = clock.now();
  const failures = 4;
  const c = new Controller({
    name: 'c',
    queue,
    clock,
    onError: () => {},
    reconcile: async () => {
      calls.push(clock.now() - start);
      if (calls.length <= failures) throw new Error('boom');
    },
  });
  await c.start();
  queue.add('ns/a');
  await until(clock, () => calls.length === failures + 1);
  t.deepEqual(calls, [0, 5, 15, 35, 75], 'retried after 5, 10, 20, 40 ms');
  await flushMicrotasks();
  t.is(queue.numRequeues('ns/a'), 0, 'forgotten after success');
  await clock.advance(10_000);
  t.is(calls.length, failures + 1, 'no retry after success');
  // A new failure starts again at the base delay.
  await c.close();
});

test('controller - table: outcome → next reconcile time and result label', async (t) => {
  const table: { name: string; outcome: () => Promise<ReconcileOutcome | void>; next: number | undefined; result: string }[] = [
    { name: 'void', outcome: async () => {}, next: undefined, result: 'success' },
    { name: 'requeueAfter', outcome: async () => ({ requeueAfter: 2000 }), next: 2000, result: 'requeue_after' },
    { name: 'requeue', outcome: async () => ({ requeue: true }), next: 5, result: 'requeue' },
    { name: 'throw', outcome: async () => Promise.reject(new Error('x')), next: 5, result: 'error' },
  ];
  for (const row of table) {
    const clock = new FakeClock();
    const metrics = new OperatorMetrics({ defaultMetrics: false });
    const queue = new WorkQueue({ name: row.name, clock, rateLimiter: new ExponentialBackoffRateLimiter(5, 1000), metrics: metrics.workQueue(row.name) });
    const calls: number[] = [];
    const start = clock.now();
    const c = new Controller({
      name: row.name,
      queue,
      clock,
      metrics: metrics.controller(row.name),
      onError: () => {},
      reconcile: async () => {
        calls.push(clock.now() - start);
        return calls.length === 1 ? row.outcome() : undefined;
      },
    });
    await c.start();
    queue.add('k');
    await clock.advance(5000);
    t.deepEqual(calls, row.next === undefined ? [0] : [0, row.next], row.name);
    const text = await metrics.registry.metrics();
    t.regex(text, new RegExp(`${METRIC.reconcileTotal}\\{controller="${row.name}",result="${row.result}"\\} 1`), row.name);
    t.regex(text, new RegExp(`${METRIC.reconcileErrorsTotal}\\{controller="${row.name}"\\} ${row.result === 'error' ? 1 : 0}`), row.name);
    t.regex(text, new RegExp(`${METRIC.reconcileTimeSeconds}_count\\{controller="${row.name}"\\} ${calls.length}`), row.name);
    t.regex(
      text,
      new RegExp(`${METRIC.workqueueRetriesTotal}\\{name="${row.name}"\\} ${row.result === 'error' || row.result === 'requeue' ? 1 : 0}`),
      row.name,
    );
    await c.close();
  }
});

test('controller - one key is never reconciled concurrently, even with several workers', async (t) => {
  const clock = new FakeClock();
  const queue = new WorkQueue({ name: 'c', clock });
  let inFlight = new Map<string, number>();
  let maxPerKey = 0;
  let maxTotal = 0;
  const gates: Deferred[] = [];
  const seen: string[] = [];
  const c = new Controller({
    name: 'c',
    queue,
    clock,
    workers: 4,
    reconcile: async (key) => {
      seen.push(key);
      inFlight.set(key, (inFlight.get(key) ?? 0) + 1);
      maxPerKey = Math.max(maxPerKey, ...inFlight.values());
      maxTotal = Math.max(
        maxTotal,
        [...inFlight.values()].reduce((a, b) => a + b, 0),
      );
      const g = deferred();
      gates.push(g);
      await g.promise;
      inFlight.set(key, (inFlight.get(key) ?? 1) - 1);
    },
  });
  await c.start();
  queue.add('a');
  queue.add('b');
  await flushMicrotasks();
  for (let i = 0; i < 5; i++) queue.add('a');
  await flushMicrotasks();
  t.deepEqual(seen.sort(), ['a', 'b'], 'a and b run in parallel, a only once');
  t.is(maxTotal, 2);
  // Finish both: a was re-added while running, so it runs exactly once more.
  for (const g of gates.splice(0)) g.resolve();
  await flushMicrotasks();
  await flushMicrotasks();
  t.deepEqual(seen.filter((k) => k === 'a').length, 2);
  t.is(maxPerKey, 1);
  for (const g of gates.splice(0)) g.resolve();
  await flushMicrotasks();
  inFlight = new Map();
  await c.close();
});

test('controller - close waits for the in-flight reconcile and starts no new one', async (t) => {
  const clock = new FakeClock();
  const queue = new WorkQueue({ name: 'c', clock });
  const gate = deferred();
  let started = 0;
  let finished = 0;
  const c = new Controller({
    name: 'c',
    queue,
    clock,
    reconcile: async () => {
      started++;
      await gate.promise;
      finished++;
    },
  });
  await c.start();
  queue.add('a');
  await flushMicrotasks();
  queue.add('b');
  const closing = c.close();
  let closed = false;
  void closing.then(() => (closed = true));
  await flushMicrotasks();
  t.false(closed, 'close waits for the running reconcile');
  gate.resolve();
  await closing;
  t.is(started, 1);
  t.is(finished, 1);
  await c.closed;
});

test('controller - start waits for caches to sync', async (t) => {
  const clock = new FakeClock();
  const queue = new WorkQueue({ name: 'c', clock });
  const sync = deferred();
  let calls = 0;
  const c = new Controller({
    name: 'c',
    queue,
    clock,
    waitFor: [{ waitForSync: () => sync.promise }],
    reconcile: async () => {
      calls++;
    },
  });
  const starting = c.start();
  queue.add('a');
  await flushMicrotasks();
  t.is(calls, 0, 'no reconcile before sync');
  sync.resolve();
  await starting;
  await flushMicrotasks();
  t.is(calls, 1);
  await c.close();
});
