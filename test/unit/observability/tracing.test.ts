// Tracing registers process-wide globals (tracer provider, context manager), so these tests run
// serially and every started Tracing is shut down before the next test.
import test from 'ava';
import { SpanStatusCode, isSpanContextValid, trace } from '@opentelemetry/api';
import { InMemorySpanExporter, SimpleSpanProcessor, type ReadableSpan } from '@opentelemetry/sdk-trace';
import {
  ATTR,
  RESOURCE_ATTR,
  SPAN,
  computeTracingMode,
  phaseSpanName,
  startTracing,
  withSpan,
  withSpanAsync,
  type TracingEnv,
  type TracingMode,
} from '../../../trainer/src/tracing/index.js';

/** Starts tracing into a fresh in-memory exporter; the test shuts it down on teardown. */
function startInMemory(t: { teardown(fn: () => Promise<void>): void }, env: TracingEnv = {}) {
  const exporter = new InMemorySpanExporter();
  const tracing = startTracing({
    serviceName: 'gmt-trainer-test',
    attributes: { [RESOURCE_ATTR.jobId]: 'job-a', [RESOURCE_ATTR.rank]: 0 },
    env,
    spanProcessors: [new SimpleSpanProcessor({ exporter })],
  });
  t.teardown(() => tracing.shutdown());
  return { exporter, tracing };
}

/** The finished span called `name`; throws unless exactly one. */
function spanNamed(spans: readonly ReadableSpan[], name: string): ReadableSpan {
  const found = spans.filter((s) => s.name === name);
  if (found.length !== 1 || found[0] === undefined) throw new Error(`expected one span ${name}, found ${found.length}`);
  return found[0];
}

test.serial('observability - withSpan builds a step span with phase children and attributes', async (t) => {
  const { exporter, tracing } = startInMemory(t);
  t.deepEqual(tracing.mode, { enabled: true, source: 'injected' });

  const result = await withSpanAsync(tracing.tracer, SPAN.trainStep, { [ATTR.step]: 7, [ATTR.totalSteps]: 100 }, async (step) => {
    withSpan(tracing.tracer, phaseSpanName('compute'), { [ATTR.phase]: 'compute' }, () => 1 + 1);
    await withSpanAsync(tracing.tracer, phaseSpanName('threshold'), { [ATTR.phase]: 'threshold' }, async () => {
      await new Promise((resolve) => setImmediate(resolve));
    });
    step.setAttributes({ [ATTR.loss]: 2.5, [ATTR.keptRatio]: 0.7 });
    return 'done';
  });
  t.is(result, 'done');

  await tracing.forceFlush(); // export waits for async resource attributes (host.id)
  const spans = exporter.getFinishedSpans();
  t.is(spans.length, 3);
  const root = spanNamed(spans, 'gmt.train.step');
  const compute = spanNamed(spans, 'gmt.train.phase.compute');
  const threshold = spanNamed(spans, 'gmt.train.phase.threshold');
  t.is(root.parentSpanContext, undefined, 'the step span is a root');
  for (const child of [compute, threshold]) {
    t.is(child.parentSpanContext?.spanId, root.spanContext().spanId, `${child.name} is a child of the step`);
    t.is(child.spanContext().traceId, root.spanContext().traceId);
  }
  t.like(root.attributes, { [ATTR.step]: 7, [ATTR.totalSteps]: 100, [ATTR.loss]: 2.5, [ATTR.keptRatio]: 0.7 });
  t.is(compute.attributes[ATTR.phase], 'compute');
  t.is(root.status.code, SpanStatusCode.UNSET);
  t.is(root.resource.attributes['service.name'], 'gmt-trainer-test');
  t.is(root.resource.attributes[RESOURCE_ATTR.jobId], 'job-a');
});

test.serial('observability - withSpan records exceptions, sets error status and rethrows', async (t) => {
  const { exporter, tracing } = startInMemory(t);

  t.throws(
    () =>
      withSpan(tracing.tracer, phaseSpanName('optimizer'), {}, () => {
        throw new Error('sync boom');
      }),
    { message: 'sync boom' },
  );
  await t.throwsAsync(
    withSpanAsync(tracing.tracer, phaseSpanName('all_gather'), {}, async () => {
      await Promise.resolve();
      throw new Error('async boom');
    }),
    { message: 'async boom' },
  );

  await tracing.forceFlush();
  const spans = exporter.getFinishedSpans();
  for (const [name, message] of [
    ['gmt.train.phase.optimizer', 'sync boom'],
    ['gmt.train.phase.all_gather', 'async boom'],
  ] as const) {
    const span = spanNamed(spans, name);
    t.deepEqual(span.status, { code: SpanStatusCode.ERROR, message });
    const event = span.events.find((e) => e.name === 'exception');
    t.is(event?.attributes?.['exception.message'], message);
    t.is(event?.attributes?.['exception.type'], 'Error');
  }
});

test.serial('observability - undefined and NaN attributes are dropped', async (t) => {
  const { exporter, tracing } = startInMemory(t);
  withSpan(tracing.tracer, SPAN.trainStep, { [ATTR.step]: 1, [ATTR.maskThreshold]: NaN, [ATTR.skipReason]: undefined }, () => undefined);
  await tracing.forceFlush();
  const span = spanNamed(exporter.getFinishedSpans(), SPAN.trainStep);
  t.deepEqual(span.attributes, { [ATTR.step]: 1 });
});

test.serial('observability - with no OTEL env the tracer is a no-op and no SDK is started', async (t) => {
  const tracing = startTracing({ serviceName: 'gmt-trainer-test', env: {} });
  t.deepEqual(tracing.mode, { enabled: false, reason: 'not-configured' });

  let ran = false;
  const value = withSpan(tracing.tracer, SPAN.trainStep, { [ATTR.step]: 1 }, (span) => {
    ran = true;
    t.false(span.isRecording());
    t.false(isSpanContextValid(span.spanContext()));
    return 42;
  });
  t.true(ran);
  t.is(value, 42);
  // Nothing was registered globally: the API's own tracer is still the no-op.
  const probe = trace.getTracer('probe').startSpan('probe');
  t.false(probe.isRecording());
  probe.end();
  await t.notThrowsAsync(tracing.shutdown());
});

test.serial('observability - OTEL_SDK_DISABLED=true wins over injected processors: nothing exported', async (t) => {
  const { exporter, tracing } = startInMemory(t, { OTEL_SDK_DISABLED: 'true', OTEL_TRACES_EXPORTER: 'otlp' });
  t.deepEqual(tracing.mode, { enabled: false, reason: 'disabled' });
  await withSpanAsync(tracing.tracer, SPAN.trainStep, {}, () => Promise.resolve());
  await tracing.forceFlush();
  t.deepEqual(exporter.getFinishedSpans(), []);
});

const modeCases: ReadonlyArray<readonly [string, TracingEnv, boolean, TracingMode]> = [
  ['nothing set', {}, false, { enabled: false, reason: 'not-configured' }],
  ['blank endpoint', { OTEL_EXPORTER_OTLP_ENDPOINT: ' ' }, false, { enabled: false, reason: 'not-configured' }],
  ['OTLP endpoint', { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://otel:4318' }, false, { enabled: true, source: 'env' }],
  ['traces endpoint', { OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://otel:4318/v1/traces' }, false, { enabled: true, source: 'env' }],
  ['exporter named', { OTEL_TRACES_EXPORTER: 'console' }, false, { enabled: true, source: 'env' }],
  ['exporter none', { OTEL_TRACES_EXPORTER: 'none', OTEL_EXPORTER_OTLP_ENDPOINT: 'http://otel:4318' }, false, { enabled: false, reason: 'exporter-none' }],
  ['service name only', { OTEL_SERVICE_NAME: 'x' }, false, { enabled: false, reason: 'not-configured' }],
  ['disabled', { OTEL_SDK_DISABLED: 'TRUE', OTEL_TRACES_EXPORTER: 'otlp' }, false, { enabled: false, reason: 'disabled' }],
  ['disabled=false', { OTEL_SDK_DISABLED: 'false', OTEL_TRACES_EXPORTER: 'otlp' }, false, { enabled: true, source: 'env' }],
  ['injected', {}, true, { enabled: true, source: 'injected' }],
];

for (const [name, env, injected, expected] of modeCases) {
  test(`observability - tracing mode: ${name}`, (t) => {
    t.deepEqual(computeTracingMode(env, injected), expected);
  });
}
