// Public API of the generic controller runtime (no GmtFineTune-specific code here).
export { FakeClock, flushMicrotasks, realClock, sleep, type Clock, type TimerHandle } from './clock.js';
export {
  ExponentialBackoffRateLimiter,
  MaxOfRateLimiter,
  TokenBucketRateLimiter,
  defaultControllerRateLimiter,
  type ControllerRateLimiterOptions,
  type RateLimiter,
} from './rate-limiter.js';
export { WorkQueue, type WorkQueueOptions } from './work-queue.js';
export {
  noopControllerMetrics,
  noopLeaderElectionMetrics,
  noopWorkQueueMetrics,
  type ControllerMetrics,
  type LeaderElectionMetrics,
  type ReconcileResult,
  type WorkQueueMetrics,
} from './metrics-hooks.js';
export { Controller, type ControllerOptions, type ReconcileFn, type ReconcileOutcome, type ReconcileSpanHook, type SyncWaiter } from './controller.js';
export { otelReconcileSpan } from './tracing.js';
export {
  apiGroup,
  controllerOwnerKey,
  objectKey,
  objectMetaSchema,
  ownerReferenceSchema,
  parseObjectMeta,
  splitKey,
  type ObjectMeta,
  type OwnerKind,
  type OwnerReference,
} from './object-meta.js';
export { labelsMatch, type LabelSelector, type LabelSelectorRequirement } from './label-selector.js';
export { Informer, InformerError, ownerKey, selfKey, type InformerOptions, type KeyMapper, type KeySink, type ListResult } from './informer.js';
export { LeaderElectionConfigError, LeaderElector, type LeaderElectorOptions, type LeaderState } from './leader-election.js';
export { ApplyError, applyServerSide, deleteIfExists, makeObjectClient, type ApplyObject, type ApplyOptions, type ObjectRef } from './apply.js';
export { EventRecorder, MAX_EVENT_MESSAGE, type EventRecorderOptions, type EventSubject, type EventType } from './events.js';
