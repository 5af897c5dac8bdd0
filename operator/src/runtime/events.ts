// core/v1 Events about objects, aggregated like client-go's legacy recorder
// (k8s.io/client-go/tools/record: events_cache.go): a repeat of the same (object, type, reason,
// message) patches the existing Event's count and lastTimestamp instead of creating a new one.
// Messages are cut to 1024 characters as the Go recorders do. Recording is best effort: failures
// are logged, never thrown, so a reconcile never fails because an Event could not be written.
import { ApiException, CoreV1Api, PatchStrategy, setHeaderOptions, type CoreV1Event, type KubeConfig } from '@kubernetes/client-node';
import { realClock, type Clock } from './clock.js';

/** Event type. */
export type EventType = 'Normal' | 'Warning';

/** The object an event is about (what involvedObject needs). */
export interface EventSubject {
  readonly apiVersion: string;
  readonly kind: string;
  readonly metadata: {
    readonly name: string;
    readonly namespace?: string | undefined;
    readonly uid?: string | undefined;
    readonly resourceVersion?: string | undefined;
  };
}

/** Options of an EventRecorder. */
export interface EventRecorderOptions {
  readonly kc: KubeConfig;
  /** source.component / reportingComponent, e.g. 'gmt-operator'. */
  readonly component: string;
  /** reportingInstance / source.host (pod name); default ''. */
  readonly instance?: string;
  readonly clock?: Clock;
  /** Distinct aggregation entries remembered (oldest dropped first); default 4096. */
  readonly cacheSize?: number;
  readonly log?: (line: string) => void;
}

/** Longest message stored (Go recorders truncate the same way). */
export const MAX_EVENT_MESSAGE = 1024;

interface Aggregate {
  readonly namespace: string;
  readonly name: string;
  count: number;
}

/** Records Events. */
export class EventRecorder {
  readonly #o: EventRecorderOptions;
  readonly #api: CoreV1Api;
  readonly #clock: Clock;
  readonly #seen = new Map<string, Aggregate>();
  #seq = 0;

  constructor(opts: EventRecorderOptions) {
    this.#o = opts;
    this.#api = opts.kc.makeApiClient(CoreV1Api);
    this.#clock = opts.clock ?? realClock;
  }

  /** Records (or counts again) an event; resolves with the Event written, or undefined on failure. */
  async record(subject: EventSubject, type: EventType, reason: string, message: string): Promise<CoreV1Event | undefined> {
    const msg = message.length > MAX_EVENT_MESSAGE ? `${message.slice(0, MAX_EVENT_MESSAGE - 3)}...` : message;
    const namespace = subject.metadata.namespace ?? 'default';
    const aggKey = [subject.apiVersion, subject.kind, namespace, subject.metadata.name, subject.metadata.uid ?? '', type, reason, msg].join('\u0000');
    const now = new Date(this.#clock.now());
    const seen = this.#seen.get(aggKey);
    try {
      if (seen !== undefined) {
        try {
          const patched = await this.#api.patchNamespacedEvent(
            { namespace: seen.namespace, name: seen.name, body: { count: seen.count + 1, lastTimestamp: now.toISOString() } },
            setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
          );
          seen.count = patched.count ?? seen.count + 1;
          this.#touch(aggKey, seen);
          return patched;
        } catch (err) {
          // The Event expired (TTL, default 1 h) or was deleted: start a new one.
          if (!(err instanceof ApiException && err.code === 404)) throw err;
          this.#seen.delete(aggKey);
        }
      }
      const created = await this.#api.createNamespacedEvent({
        namespace,
        body: {
          metadata: { name: this.#eventName(subject.metadata.name, now.getTime()), namespace },
          involvedObject: {
            apiVersion: subject.apiVersion,
            kind: subject.kind,
            name: subject.metadata.name,
            ...(subject.metadata.namespace !== undefined ? { namespace: subject.metadata.namespace } : {}),
            ...(subject.metadata.uid !== undefined ? { uid: subject.metadata.uid } : {}),
            ...(subject.metadata.resourceVersion !== undefined ? { resourceVersion: subject.metadata.resourceVersion } : {}),
          },
          type,
          reason,
          message: msg,
          count: 1,
          firstTimestamp: now,
          lastTimestamp: now,
          source: { component: this.#o.component, ...(this.#o.instance !== undefined ? { host: this.#o.instance } : {}) },
          reportingComponent: this.#o.component,
          reportingInstance: this.#o.instance ?? '',
        },
      });
      this.#touch(aggKey, { namespace, name: created.metadata.name ?? '', count: 1 });
      return created;
    } catch (err) {
      const why = err instanceof ApiException ? `HTTP ${err.code}: ${String(err.body)}` : err instanceof Error ? err.message : String(err);
      (this.#o.log ?? ((l: string) => process.stderr.write(`[events] ${l}\n`)))(
        `recording ${type} ${reason} for ${namespace}/${subject.metadata.name} failed: ${why}`,
      );
      return undefined;
    }
  }

  /** Shorthand for record(subject, 'Normal', …). */
  normal(subject: EventSubject, reason: string, message: string): Promise<CoreV1Event | undefined> {
    return this.record(subject, 'Normal', reason, message);
  }

  /** Shorthand for record(subject, 'Warning', …). */
  warning(subject: EventSubject, reason: string, message: string): Promise<CoreV1Event | undefined> {
    return this.record(subject, 'Warning', reason, message);
  }

  /** Unique name: `<object>.<hex time>` as client-go does, plus a sequence against same-ms collisions. */
  #eventName(objectName: string, ms: number): string {
    const suffix = (BigInt(ms) * 1_000_000n + BigInt(this.#seq++ % 1_000_000)).toString(16);
    return `${objectName.slice(0, 253 - suffix.length - 1)}.${suffix}`;
  }

  /** Marks an entry most recently used; drops the oldest beyond cacheSize. */
  #touch(key: string, agg: Aggregate): void {
    this.#seen.delete(key);
    this.#seen.set(key, agg);
    const max = this.#o.cacheSize ?? 4096;
    while (this.#seen.size > max) {
      const oldest = this.#seen.keys().next();
      if (oldest.done === true) break;
      this.#seen.delete(oldest.value);
    }
  }
}
