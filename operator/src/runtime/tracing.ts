// A reconcile span hook on the OpenTelemetry API: one span per reconcile named
// `reconcile <controller>`, with the key as an attribute and the error recorded on failure.
// Without an SDK registered the API's no-op tracer makes this free.
import { SpanStatusCode, trace } from '@opentelemetry/api';
import type { ReconcileSpanHook } from './controller.js';

/** Span hook for ControllerOptions.span using the global tracer provider. */
export function otelReconcileSpan(tracerName = 'gmt-operator'): ReconcileSpanHook {
  const tracer = trace.getTracer(tracerName);
  return (controller, key, fn) =>
    tracer.startActiveSpan(`reconcile ${controller}`, { attributes: { 'k8s.controller': controller, 'k8s.object.key': key } }, async (span) => {
      try {
        return await fn();
      } catch (err) {
        span.recordException(err instanceof Error ? err : String(err));
        span.setStatus({ code: SpanStatusCode.ERROR, message: err instanceof Error ? err.message : String(err) });
        throw err;
      } finally {
        span.end();
      }
    });
}
