// A keyed, de-duplicating, rate-limited work queue with client-go's semantics
// (k8s.io/client-go/util/workqueue: queue.go, delaying_queue.go, rate_limiting_queue.go):
//  - a key is in the queue at most once (dirty set);
//  - a key being processed is never handed out again until `done`; adds during processing mark it
//    dirty and it is re-queued once, at `done`;
//  - `addAfter` keeps the earliest pending deadline per key;
//  - `addRateLimited` delays by the rate limiter; `forget` clears the key's backoff.
import { realClock, type Clock, type TimerHandle } from './clock.js';
import { noopWorkQueueMetrics, type WorkQueueMetrics } from './metrics-hooks.js';
import { defaultControllerRateLimiter, type RateLimiter } from './rate-limiter.js';

/** Options of a WorkQueue. */
export interface WorkQueueOptions {
  /** Queue name (the `name` label of workqueue_* metrics). */
  readonly name: string;
  readonly clock?: Clock;
  /** Default: defaultControllerRateLimiter(clock). */
  readonly rateLimiter?: RateLimiter;
  readonly metrics?: WorkQueueMetrics;
}

interface Waiting {
  readonly due: number;
  readonly timer: TimerHandle;
}

/** The queue. Keys are opaque strings (by convention `namespace/name`). */
export class WorkQueue {
  /** Queue name. */
  readonly name: string;
  readonly #clock: Clock;
  readonly #limiter: RateLimiter;
  readonly #metrics: WorkQueueMetrics;
  /** Keys ready to hand out, in order. */
  #queue: string[] = [];
  /** Keys that need processing (queued, or re-added while processing). */
  readonly #dirty = new Set<string>();
  /** Keys handed out and not yet done, with the time they were handed out. */
  readonly #processing = new Map<string, number>();
  /** When each dirty key was first added since it was last handed out (for queue latency). */
  readonly #addedAt = new Map<string, number>();
  /** Delayed adds, one per key (earliest deadline wins). */
  readonly #waiting = new Map<string, Waiting>();
  /** Pending `get` calls. */
  #getters: ((key: string | undefined) => void)[] = [];
  #shuttingDown = false;

  constructor(opts: WorkQueueOptions) {
    this.name = opts.name;
    this.#clock = opts.clock ?? realClock;
    this.#limiter = opts.rateLimiter ?? defaultControllerRateLimiter(this.#clock);
    this.#metrics = opts.metrics ?? noopWorkQueueMetrics;
  }

  /** Marks `key` for processing now; a no-op if it is already queued or after shutdown. */
  add(key: string): void {
    if (this.#shuttingDown) return;
    this.#metrics.added();
    if (this.#dirty.has(key)) return;
    this.#dirty.add(key);
    this.#addedAt.set(key, this.#clock.now());
    if (this.#processing.has(key)) return; // re-queued by done()
    this.#push(key);
  }

  /** Adds `key` after `ms` milliseconds (immediately when ms <= 0); an earlier pending deadline wins. */
  addAfter(key: string, ms: number): void {
    if (this.#shuttingDown) return;
    if (ms <= 0) {
      this.add(key);
      return;
    }
    const due = this.#clock.now() + ms;
    const existing = this.#waiting.get(key);
    if (existing !== undefined) {
      if (existing.due <= due) return;
      existing.timer.cancel();
    }
    const timer = this.#clock.setTimer(() => {
      this.#waiting.delete(key);
      this.add(key);
    }, ms);
    this.#waiting.set(key, { due, timer });
  }

  /** Adds `key` after the rate limiter's delay (one more failure of `key`). */
  addRateLimited(key: string): void {
    if (this.#shuttingDown) return;
    this.#metrics.retried();
    this.addAfter(key, this.#limiter.when(key));
  }

  /** Clears `key`'s backoff history (call after a successful reconcile). */
  forget(key: string): void {
    this.#limiter.forget(key);
  }

  /** Failures recorded for `key` since it was last forgotten. */
  numRequeues(key: string): number {
    return this.#limiter.numRequeues(key);
  }

  /**
   * Next key to process; waits while the queue is empty. Resolves undefined once the queue is shut
   * down and empty. The caller must call `done(key)` when finished with it.
   */
  get(): Promise<string | undefined> {
    const key = this.#take();
    if (key !== undefined || this.#shuttingDown) return Promise.resolve(key);
    return new Promise((resolve) => this.#getters.push(resolve));
  }

  /** Ends processing of `key`; if it was re-added meanwhile, it is queued again now. */
  done(key: string): void {
    const started = this.#processing.get(key);
    if (started === undefined) return;
    this.#processing.delete(key);
    this.#metrics.workDuration((this.#clock.now() - started) / 1000);
    if (this.#dirty.has(key)) this.#push(key);
  }

  /** Keys waiting to be handed out now (not counting delayed or in-flight keys). */
  get depth(): number {
    return this.#queue.length;
  }

  /** Keys handed out and not yet done. */
  get inFlight(): number {
    return this.#processing.size;
  }

  /** Keys waiting on addAfter/addRateLimited timers. */
  get delayed(): number {
    return this.#waiting.size;
  }

  /** True after shutdown(). */
  get shuttingDown(): boolean {
    return this.#shuttingDown;
  }

  /**
   * Stops accepting keys and cancels delayed adds; pending and future `get` calls resolve undefined
   * once the keys already queued are handed out. In-flight keys still need `done`.
   */
  shutdown(): void {
    if (this.#shuttingDown) return;
    this.#shuttingDown = true;
    for (const w of this.#waiting.values()) w.timer.cancel();
    this.#waiting.clear();
    // Queued keys are dropped: after shutdown nobody should start new work.
    for (const key of this.#queue) this.#dirty.delete(key);
    this.#queue = [];
    this.#metrics.depth(0);
    const getters = this.#getters;
    this.#getters = [];
    for (const g of getters) g(undefined);
  }

  #push(key: string): void {
    const getter = this.#getters.shift();
    if (getter !== undefined) {
      this.#queue.push(key);
      getter(this.#take());
      return;
    }
    this.#queue.push(key);
    this.#metrics.depth(this.#queue.length);
  }

  #take(): string | undefined {
    const key = this.#queue.shift();
    if (key === undefined) return undefined;
    this.#metrics.depth(this.#queue.length);
    this.#dirty.delete(key);
    const now = this.#clock.now();
    this.#processing.set(key, now);
    const added = this.#addedAt.get(key);
    this.#addedAt.delete(key);
    if (added !== undefined) this.#metrics.queueLatency((now - added) / 1000);
    return key;
  }
}
