// OpenTelemetry tracing, started once per process by the trainer and by the operator. Tracing is
// opt-in through the standard OTEL_* variables
// (https://opentelemetry.io/docs/specs/otel/configuration/sdk-environment-variables/): with none of
// them set, no SDK is started and the tracer is a no-op, so a plain run never dials a collector.
import {
  ProxyTracerProvider,
  SpanStatusCode,
  context,
  propagation,
  trace,
  type AttributeValue,
  type Attributes,
  type Span,
  type Tracer,
} from '@opentelemetry/api';
import { NodeSDK, resources } from '@opentelemetry/sdk-node';
import type { SpanProcessor } from '@opentelemetry/sdk-trace';

/** Environment as read by startTracing (process.env by default). */
export type TracingEnv = Readonly<Record<string, string | undefined>>;

/** How to start tracing. */
export interface TracingOptions {
  /** service.name unless OTEL_SERVICE_NAME overrides it. */
  readonly serviceName: string;
  /** Resource attributes of this process (e.g. RESOURCE_ATTR job id and rank). */
  readonly attributes?: Attributes;
  /** Environment to decide from; default process.env. */
  readonly env?: TracingEnv;
  /** Span processors to use instead of the env-configured exporters; enable tracing (tests). */
  readonly spanProcessors?: readonly SpanProcessor[];
}

/** Why tracing is on or off; `computeTracingMode` derives it from the environment. */
export type TracingMode =
  | { readonly enabled: true; readonly source: 'env' | 'injected' }
  | { readonly enabled: false; readonly reason: 'disabled' | 'not-configured' | 'exporter-none' };

/** Running tracing: a tracer (no-op when off) and an idempotent shutdown that flushes spans. */
export interface Tracing {
  /** Tracer to open spans with; a no-op tracer when tracing is off. */
  readonly tracer: Tracer;
  /** Whether an SDK was started, and why (not). */
  readonly mode: TracingMode;
  /** Exports every ended span now (no-op when off). */
  forceFlush(): Promise<void>;
  /** Flushes and stops the SDK and unregisters its globals (no-op when off; idempotent). */
  shutdown(): Promise<void>;
}

/** Name of the tracer (instrumentation scope) the trainer's spans come from. */
const TRACER_NAME = 'gmt-trainer';

/** True when `value` is set to something other than blanks. */
function isSet(value: string | undefined): value is string {
  return value !== undefined && value.trim() !== '';
}

/** Decides whether to trace: off when OTEL_SDK_DISABLED=true, on when injected or configured. */
export function computeTracingMode(env: TracingEnv, injected: boolean): TracingMode {
  if (env['OTEL_SDK_DISABLED']?.trim().toLowerCase() === 'true') return { enabled: false, reason: 'disabled' };
  if (injected) return { enabled: true, source: 'injected' };
  const exporters = (env['OTEL_TRACES_EXPORTER'] ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
  // The SDK itself treats a leading "none" as "no tracing" (sdk-node getSpanProcessorsFromEnv).
  if (exporters[0] === 'none') return { enabled: false, reason: 'exporter-none' };
  const configured = exporters.length > 0 || isSet(env['OTEL_EXPORTER_OTLP_ENDPOINT']) || isSet(env['OTEL_EXPORTER_OTLP_TRACES_ENDPOINT']);
  return configured ? { enabled: true, source: 'env' } : { enabled: false, reason: 'not-configured' };
}

/**
 * Starts tracing as the environment says. When on, a NodeSDK registers the global tracer provider,
 * context manager and propagator (one tracing per process); its exporters follow process.env's
 * OTEL_* settings (endpoint, protocol, headers, sampler), or `spanProcessors` when given. Metrics
 * and logs stay off here: the trainer's metrics are Prometheus (metrics/), not OTLP.
 */
export function startTracing(options: TracingOptions): Tracing {
  const env = options.env ?? process.env;
  const mode = computeTracingMode(env, options.spanProcessors !== undefined);
  if (!mode.enabled) {
    // A provider that is never registered has no delegate, so its tracers are the API's no-op
    // tracer, whatever else the process registers globally.
    const done = (): Promise<void> => Promise.resolve();
    // eslint-disable-next-line @typescript-eslint/no-deprecated -- @opentelemetry/api 1.x offers no replacement for a no-op provider
    return { tracer: new ProxyTracerProvider().getTracer(TRACER_NAME), mode, forceFlush: done, shutdown: done };
  }

  const serviceName = isSet(env['OTEL_SERVICE_NAME']) ? env['OTEL_SERVICE_NAME'] : options.serviceName;
  const sdk = new NodeSDK({
    serviceName,
    resource: resources.defaultResource().merge(resources.resourceFromAttributes(options.attributes ?? {})),
    // Empty lists, not undefined: undefined makes the SDK default to OTLP metrics and logs exporters.
    metricReaders: [],
    logRecordProcessors: [],
    instrumentations: [],
    ...(options.spanProcessors === undefined ? {} : { spanProcessors: [...options.spanProcessors] }),
  });
  sdk.start();
  // NodeSDK keeps its provider private; the API's global proxy hands it out.
  const global = trace.getTracerProvider();
  // eslint-disable-next-line @typescript-eslint/no-deprecated -- the only way to reach the SDK provider behind the global proxy
  const provider = global instanceof ProxyTracerProvider ? global.getDelegate() : global;

  const forceFlush = async (): Promise<void> => {
    if (hasForceFlush(provider)) await provider.forceFlush();
  };
  let stopping: Promise<void> | undefined;
  return {
    tracer: trace.getTracer(TRACER_NAME),
    mode,
    forceFlush,
    shutdown(): Promise<void> {
      // Flush first: a SimpleSpanProcessor's shutdown drops exports still waiting on async
      // resource attributes (host.id).
      stopping ??= forceFlush()
        .then(() => sdk.shutdown())
        .finally(() => {
          // Unregister so that a later startTracing in the same process (tests) can register again.
          trace.disable();
          context.disable();
          propagation.disable();
        });
      return stopping;
    },
  };
}

/** True for SDK tracer providers (the API's interface has no forceFlush). */
function hasForceFlush(provider: object): provider is { forceFlush(): Promise<void> } {
  return 'forceFlush' in provider && typeof provider.forceFlush === 'function';
}

/** Span attributes as callers have them; undefined and NaN values are dropped (not exported). */
export type LooseAttributes = Readonly<Record<string, AttributeValue | undefined>>;

/** Keeps the defined, non-NaN attributes. */
function cleanAttributes(attributes: LooseAttributes): Attributes {
  const out: Attributes = {};
  for (const [key, value] of Object.entries(attributes)) {
    if (value === undefined || (typeof value === 'number' && Number.isNaN(value))) continue;
    out[key] = value;
  }
  return out;
}

/** Marks `span` as failed by `err`: an exception event plus ERROR status with its message. */
function recordFailure(span: Span, err: unknown): void {
  if (err instanceof Error) {
    span.recordException(err);
    span.setStatus({ code: SpanStatusCode.ERROR, message: err.message });
  } else {
    span.recordException(String(err));
    span.setStatus({ code: SpanStatusCode.ERROR, message: String(err) });
  }
}

/** Runs synchronous `fn` in an active child span of the current one; errors are recorded and rethrown. */
export function withSpan<T>(tracer: Tracer, name: string, attributes: LooseAttributes, fn: (span: Span) => T): T {
  return tracer.startActiveSpan(name, { attributes: cleanAttributes(attributes) }, (span) => {
    try {
      return fn(span);
    } catch (err) {
      recordFailure(span, err);
      throw err;
    } finally {
      span.end();
    }
  });
}

/** Runs async `fn` in an active child span, ended when it settles; rejections are recorded and rethrown. */
export function withSpanAsync<T>(tracer: Tracer, name: string, attributes: LooseAttributes, fn: (span: Span) => Promise<T>): Promise<T> {
  return tracer.startActiveSpan(name, { attributes: cleanAttributes(attributes) }, async (span) => {
    try {
      return await fn(span);
    } catch (err) {
      recordFailure(span, err);
      throw err;
    } finally {
      span.end();
    }
  });
}
