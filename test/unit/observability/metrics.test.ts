import test from 'ava';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { register as globalRegistry } from 'prom-client';
import {
  LABEL_NAMES,
  METRIC,
  METRIC_NAMES,
  METRIC_PREFIX,
  MetricsServerError,
  PHASES,
  TrainerMetrics,
  startMetricsServer,
  type MetricsServer,
  type StepObservation,
  type TrainerMetricsOptions,
} from '../../../trainer/src/metrics/index.js';
import { find, parseExposition, value, type Exposition } from './exposition.js';

/** Builds TrainerMetrics options with test defaults. */
function metricsOptions(overrides: Partial<TrainerMetricsOptions> = {}): TrainerMetricsOptions {
  return { jobId: 'job-a', rank: 0, backend: 'cpu', method: 'gmt', model: 'gpt2-tiny', version: '0.1.0', ...overrides };
}

/** Builds a step observation with finite test values. */
function stepObservation(overrides: Partial<StepObservation> = {}): StepObservation {
  return {
    durationSeconds: 2,
    samples: 8,
    tokens: 1024,
    loss: 3.5,
    keptRatio: 0.7,
    threshold: 0.001,
    mfu: 0.25,
    lr: 1e-4,
    gradNorm: 1.5,
    step: 1,
    totalSteps: 100,
    ...overrides,
  };
}

/** Starts a loopback server on a free port for `metrics`; the test closes it on teardown. */
async function serve(t: { teardown(fn: () => Promise<void>): void }, metrics: TrainerMetrics): Promise<MetricsServer> {
  const server = await startMetricsServer({ port: 0, host: '127.0.0.1', registry: metrics.registry });
  t.teardown(() => server.close());
  return server;
}

/** Scrapes /metrics over HTTP and parses it. */
async function scrape(server: MetricsServer): Promise<Exposition> {
  const res = await fetch(`${server.url}/metrics`);
  if (res.status !== 200) throw new Error(`/metrics answered ${res.status}`);
  return parseExposition(await res.text());
}

test('observability - counters add up, gauges hold the last value, over real HTTP', async (t) => {
  const metrics = new TrainerMetrics(metricsOptions({ jobId: 'job-a', rank: 3 }));
  const server = await serve(t, metrics);
  t.true(server.port > 0);

  metrics.observeStep(stepObservation({ step: 1, loss: 4, samples: 8, tokens: 1000, durationSeconds: 2 }));
  metrics.observeStep(stepObservation({ step: 2, loss: 3, samples: 8, tokens: 1000, durationSeconds: 4 }));
  metrics.observeStep(stepObservation({ step: 3, loss: 2.5, samples: 4, tokens: 500, durationSeconds: 1 }));
  metrics.observeSkip('non_finite_gradient');
  metrics.observePhase('compute', 0.5);
  metrics.observePhase('compute', 1.5);
  metrics.addCollectiveBytes('reduce_scatter', 'sent', 1000);
  metrics.addCollectiveBytes('reduce_scatter', 'sent', 24);
  metrics.countRejected('bad_checksum');

  const exp = await scrape(server);
  const self = { job: 'job-a', rank: '3' };
  t.is(value(exp, METRIC.stepsTotal, self), 3);
  t.is(value(exp, METRIC.samplesTotal, self), 20);
  t.is(value(exp, METRIC.tokensTotal, self), 2500);
  t.is(value(exp, `${METRIC.stepDurationSeconds}_count`, self), 3);
  t.is(value(exp, `${METRIC.stepDurationSeconds}_sum`, self), 7);
  t.is(value(exp, `${METRIC.stepDurationSeconds}_bucket`, { ...self, le: '1' }), 1);
  t.is(value(exp, `${METRIC.stepDurationSeconds}_bucket`, { ...self, le: '+Inf' }), 3);
  t.is(value(exp, METRIC.loss, self), 2.5);
  t.is(value(exp, METRIC.step, self), 3);
  t.is(value(exp, METRIC.totalSteps, self), 100);
  t.is(value(exp, METRIC.samplesPerSecond, self), 4);
  t.is(value(exp, METRIC.tokensPerSecond, self), 500);
  t.is(value(exp, METRIC.skippedStepsTotal, { ...self, reason: 'non_finite_gradient' }), 1);
  t.is(value(exp, METRIC.skippedStepsTotal, { ...self, reason: 'non_finite_loss' }), 0, 'known reasons start at 0');
  t.is(value(exp, `${METRIC.phaseDurationSeconds}_count`, { ...self, phase: 'compute' }), 2);
  t.is(value(exp, `${METRIC.phaseDurationSeconds}_sum`, { ...self, phase: 'compute' }), 2);
  t.is(value(exp, METRIC.collectiveBytesTotal, { ...self, phase: 'reduce_scatter', direction: 'sent' }), 1024);
  t.is(value(exp, METRIC.rejectedMessagesTotal, { ...self, reason: 'bad_checksum' }), 1);
  t.is(value(exp, METRIC.info, { ...self, backend: 'cpu', method: 'gmt', model: 'gpt2-tiny', version: '0.1.0' }), 1);
  t.is(exp.types.get(METRIC.stepsTotal), 'counter');
  t.is(exp.types.get(METRIC.loss), 'gauge');
  t.is(exp.types.get(METRIC.stepDurationSeconds), 'histogram');

  // Every series, ours and the default process metrics alike, carries the constant labels.
  const unlabelled = exp.samples.filter((s) => s.labels['job'] !== 'job-a' || s.labels['rank'] !== '3');
  t.deepEqual(
    unlabelled.map((s) => s.name),
    [],
  );
  t.true(find(exp, 'process_cpu_user_seconds_total').length === 1, 'default process metrics, unprefixed');
});

test('observability - NaN is never exported: gauges start absent and NaN leaves them as they were', async (t) => {
  const metrics = new TrainerMetrics(metricsOptions({ method: 'sft' }));
  const server = await serve(t, metrics);

  const before = await scrape(server);
  t.deepEqual(find(before, METRIC.loss), [], 'no loss series before the first step');
  t.deepEqual(find(before, METRIC.maskThreshold), []);

  // sft has no threshold and an unknown MFU: never a NaN sample.
  metrics.observeStep(stepObservation({ threshold: NaN, mfu: NaN, loss: 3 }));
  const sft = await scrape(server);
  t.deepEqual(find(sft, METRIC.maskThreshold), []);
  t.deepEqual(find(sft, METRIC.mfu), []);
  t.is(value(sft, METRIC.loss), 3);

  metrics.observeStep(stepObservation({ threshold: 0.5, loss: 2 }));
  metrics.observeStep(stepObservation({ threshold: NaN, loss: NaN, gradNorm: NaN, samples: NaN, durationSeconds: NaN }));
  metrics.observeEval({ loss: NaN, exactMatch: 0.5 });
  const after = await scrape(server);
  t.is(value(after, METRIC.maskThreshold), 0.5, 'NaN keeps the last value');
  t.is(value(after, METRIC.loss), 2);
  t.is(value(after, METRIC.samplesTotal), 16, 'a NaN sample count adds nothing');
  t.is(value(after, `${METRIC.stepDurationSeconds}_count`), 2, 'a NaN duration is not observed');
  t.deepEqual(find(after, METRIC.evalLoss), []);
  t.is(value(after, METRIC.evalExactMatch), 0.5);
  // Only our series: prom-client's nodejs_eventloop_lag_{mean,stddev}_seconds read NaN until its
  // event-loop monitor has taken a first sample, which is prom-client's business.
  const nan = after.samples.filter((s) => s.name.startsWith(METRIC_PREFIX) && Number.isNaN(s.value));
  t.deepEqual(
    nan.map((s) => s.name),
    [],
  );
});

test('observability - every exported metric name appears after one call of each observe method', async (t) => {
  const metrics = new TrainerMetrics(metricsOptions());
  const server = await serve(t, metrics);
  metrics.observeStep(stepObservation());
  metrics.observeSkip('non_finite_loss');
  for (const phase of PHASES) metrics.observePhase(phase, 0.01);
  metrics.observeEval({ loss: 1.25, exactMatch: 0.4 });
  metrics.observeCheckpoint({ durationSeconds: 3, step: 1 });
  metrics.addCollectiveBytes('all_gather', 'received', 10);
  metrics.countRejected('wrong_step');

  const exp = await scrape(server);
  const present = new Set(exp.samples.map((s) => s.name.replace(/_(bucket|sum|count)$/, '')));
  const missing = METRIC_NAMES.filter((name) => !present.has(name));
  t.deepEqual(missing, []);
  t.is(value(exp, METRIC.lastCheckpointStep), 1);
  t.is(value(exp, `${METRIC.checkpointDurationSeconds}_sum`), 3);
  t.is(value(exp, METRIC.evalLoss), 1.25);
  t.is(find(exp, `${METRIC.phaseDurationSeconds}_count`).length, PHASES.length);
});

test('observability - metric and label names are unique, prefixed and valid Prometheus names', (t) => {
  t.is(new Set(METRIC_NAMES).size, METRIC_NAMES.length);
  for (const name of METRIC_NAMES) {
    t.true(name.startsWith(METRIC_PREFIX), name);
    t.regex(name, /^[a-z_][a-z0-9_]*$/);
  }
  for (const label of LABEL_NAMES) t.regex(label, /^[a-z_][a-z0-9_]*$/);
});

test('observability - two TrainerMetrics in one process keep separate registries', async (t) => {
  const a = new TrainerMetrics(metricsOptions({ jobId: 'job-a', rank: 0 }));
  const b = new TrainerMetrics(metricsOptions({ jobId: 'job-b', rank: 1 }));
  t.not(a.registry, b.registry);
  a.observeStep(stepObservation({ loss: 1 }));
  a.observeStep(stepObservation({ loss: 1 }));
  b.observeStep(stepObservation({ loss: 9 }));

  const ea = parseExposition(await a.text());
  const eb = parseExposition(await b.text());
  t.is(value(ea, METRIC.stepsTotal, { job: 'job-a', rank: '0' }), 2);
  t.is(value(eb, METRIC.stepsTotal, { job: 'job-b', rank: '1' }), 1);
  t.is(value(eb, METRIC.loss), 9);
  t.deepEqual(find(ea, METRIC.stepsTotal, { job: 'job-b' }), []);
  const leaked = (await globalRegistry.getMetricsAsJSON()).filter((m) => m.name.startsWith(METRIC_PREFIX));
  t.deepEqual(leaked, [], "nothing on prom-client's global registry");
});

test('observability - server: content type, /healthz, 404, 405', async (t) => {
  const metrics = new TrainerMetrics(metricsOptions());
  const server = await serve(t, metrics);

  const m = await fetch(`${server.url}/metrics`);
  t.is(m.status, 200);
  t.is(m.headers.get('content-type'), 'text/plain; version=0.0.4; charset=utf-8');
  t.is(m.headers.get('content-type'), metrics.contentType);
  await m.text();

  const h = await fetch(`${server.url}/healthz`);
  t.is(h.status, 200);
  t.is(await h.text(), 'ok');

  const n = await fetch(`${server.url}/nope`);
  t.is(n.status, 404);
  await n.text();

  const p = await fetch(`${server.url}/metrics`, { method: 'POST' });
  t.is(p.status, 405);
  await p.text();
});

test('observability - server: close is idempotent and resolves closed; a taken port fails with MetricsServerError', async (t) => {
  const metrics = new TrainerMetrics(metricsOptions({ defaultMetrics: false }));
  const server = await startMetricsServer({ port: 0, host: '127.0.0.1', registry: metrics.registry });
  const keepAlive = await fetch(`${server.url}/healthz`);
  await keepAlive.text();
  await Promise.all([server.close(), server.close()]);
  await server.closed;
  await t.throwsAsync(fetch(`${server.url}/healthz`));

  const blocker = createServer();
  await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => blocker.close(() => resolve())));
  const port = (blocker.address() as AddressInfo).port;
  const err = await t.throwsAsync(startMetricsServer({ port, host: '127.0.0.1', registry: metrics.registry }), {
    instanceOf: MetricsServerError,
  });
  t.is((err.cause as NodeJS.ErrnoException | undefined)?.code, 'EADDRINUSE');
});
