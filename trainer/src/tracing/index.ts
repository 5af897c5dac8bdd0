// Public API of the trainer's tracing.
export { ATTR, RESOURCE_ATTR, SPAN, phaseSpanName } from './names.js';
export {
  computeTracingMode,
  startTracing,
  withSpan,
  withSpanAsync,
  type LooseAttributes,
  type Tracing,
  type TracingEnv,
  type TracingMode,
  type TracingOptions,
} from '../../../contract/tracing.js';
