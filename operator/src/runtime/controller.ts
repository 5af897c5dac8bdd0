// N workers pull keys from a WorkQueue and reconcile them (controller-runtime's
// pkg/internal/controller: processNextWorkItem / reconcileHandler): an error re-adds the key
// through the rate limiter, `requeueAfter` re-adds it after a delay, success forgets its backoff.
// One key is never reconciled twice at once, because the queue never hands it out twice.
import { realClock, type Clock } from './clock.js';
import { noopControllerMetrics, type ControllerMetrics, type ReconcileResult } from './metrics-hooks.js';
import type { WorkQueue } from './work-queue.js';

/** What a reconcile may ask for; returning nothing means "done until something changes". */
export interface ReconcileOutcome {
  /** Reconcile this key again after this many milliseconds (deadlines, TTLs, polling). */
  readonly requeueAfter?: number;
  /** Re-add through the rate limiter without counting an error (controller-runtime `Requeue: true`). */
  readonly requeue?: boolean;
}

/** Reconciles one key; throwing counts as an error and retries with backoff. */
export type ReconcileFn = (key: string) => Promise<ReconcileOutcome | void>;

/** Wraps one reconcile in a trace span (or anything else); must call and return `fn()`. */
export type ReconcileSpanHook = <R>(controller: string, key: string, fn: () => Promise<R>) => Promise<R>;

/** Anything the controller must wait for before its workers start (informer caches). */
export interface SyncWaiter {
  waitForSync(signal?: AbortSignal): Promise<void>;
}

/** Options of a Controller. */
export interface ControllerOptions {
  /** Controller name (the `controller` label of the reconcile metrics). */
  readonly name: string;
  readonly queue: WorkQueue;
  readonly reconcile: ReconcileFn;
  /** Concurrent workers (controller-runtime MaxConcurrentReconciles); default 1. */
  readonly workers?: number;
  /** Caches to wait for before starting workers. */
  readonly waitFor?: readonly SyncWaiter[];
  readonly metrics?: ControllerMetrics;
  readonly span?: ReconcileSpanHook;
  readonly clock?: Clock;
  /** Called with each reconcile error (default: one line to stderr). */
  readonly onError?: (key: string, err: unknown) => void;
}

/** A running set of workers over one queue. */
export class Controller {
  readonly name: string;
  readonly #opts: ControllerOptions;
  readonly #clock: Clock;
  readonly #metrics: ControllerMetrics;
  readonly #abort = new AbortController();
  #workers: Promise<void>[] = [];
  #started = false;
  #closing: Promise<void> | undefined;
  #resolveClosed: () => void = () => {};
  /** Resolves when the controller has stopped and no reconcile is in flight. */
  readonly closed: Promise<void>;

  constructor(opts: ControllerOptions) {
    this.name = opts.name;
    this.#opts = opts;
    this.#clock = opts.clock ?? realClock;
    this.#metrics = opts.metrics ?? noopControllerMetrics;
    this.closed = new Promise((resolve) => (this.#resolveClosed = resolve));
  }

  /** Waits for the caches, then starts the workers; resolves once they run (or the controller closed). */
  async start(): Promise<void> {
    if (this.#started) return;
    this.#started = true;
    for (const w of this.#opts.waitFor ?? []) {
      await w.waitForSync(this.#abort.signal);
      if (this.#abort.signal.aborted) return;
    }
    const n = Math.max(1, this.#opts.workers ?? 1);
    for (let i = 0; i < n; i++) this.#workers.push(this.#worker());
  }

  /** Shuts the queue down and waits for in-flight reconciles to finish (idempotent). */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      this.#abort.abort();
      this.#opts.queue.shutdown();
      await Promise.all(this.#workers);
      this.#resolveClosed();
    })();
    return this.#closing;
  }

  async #worker(): Promise<void> {
    for (;;) {
      const key = await this.#opts.queue.get();
      if (key === undefined) return;
      await this.#process(key);
    }
  }

  /** One key: reconcile, classify, re-add as needed, `done`. Never throws. */
  async #process(key: string): Promise<void> {
    const { queue } = this.#opts;
    const start = this.#clock.now();
    let result: ReconcileResult;
    try {
      const run = (): Promise<ReconcileOutcome | void> => this.#opts.reconcile(key);
      const outcome = this.#opts.span !== undefined ? await this.#opts.span(this.name, key, run) : await run();
      if (outcome?.requeueAfter !== undefined && outcome.requeueAfter > 0) {
        // controller-runtime: RequeueAfter forgets the backoff and re-adds after the delay.
        queue.forget(key);
        queue.addAfter(key, outcome.requeueAfter);
        result = 'requeue_after';
      } else if (outcome?.requeue === true) {
        queue.addRateLimited(key);
        result = 'requeue';
      } else {
        queue.forget(key);
        result = 'success';
      }
    } catch (err) {
      queue.addRateLimited(key);
      result = 'error';
      (this.#opts.onError ?? defaultOnError(this.name))(key, err);
    } finally {
      queue.done(key);
    }
    this.#metrics.reconciled(result, (this.#clock.now() - start) / 1000);
  }
}

function defaultOnError(controller: string): (key: string, err: unknown) => void {
  return (key, err) => {
    const msg = err instanceof Error ? err.message : String(err);
    process.stderr.write(`[${controller}] reconcile ${key} failed: ${msg}\n`);
  };
}
