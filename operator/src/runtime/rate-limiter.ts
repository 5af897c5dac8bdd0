// Retry rate limiting as in client-go's workqueue (k8s.io/client-go/util/workqueue/default_rate_limiters.go):
// a per-key exponential backoff combined with an overall token bucket; the delay for a retry is the
// larger of the two. Defaults are client-go's DefaultControllerRateLimiter: 5 ms · 2^n capped at
// 1000 s, and a bucket of 10 qps with burst 100 (MPI operator uses the same 5 ms → 1000 s).
import type { Clock } from './clock.js';

/** Decides how long a key waits before it is retried. */
export interface RateLimiter {
  /** Delay in milliseconds before `key` may be retried; counts one more failure of `key`. */
  when(key: string): number;
  /** Clears `key`'s failure history (after a success). */
  forget(key: string): void;
  /** Failures recorded for `key` since it was last forgotten. */
  numRequeues(key: string): number;
}

/** Per-key exponential backoff: baseMs · 2^failures, capped at maxMs. */
export class ExponentialBackoffRateLimiter implements RateLimiter {
  readonly #failures = new Map<string, number>();

  /** Defaults: base 5 ms, max 1000 s (client-go). */
  constructor(
    readonly baseMs = 5,
    readonly maxMs = 1_000_000,
  ) {}

  when(key: string): number {
    const n = this.#failures.get(key) ?? 0;
    this.#failures.set(key, n + 1);
    // 2^n overflows to Infinity for large n; the cap takes care of it.
    return Math.min(this.baseMs * 2 ** n, this.maxMs);
  }

  forget(key: string): void {
    this.#failures.delete(key);
  }

  numRequeues(key: string): number {
    return this.#failures.get(key) ?? 0;
  }
}

/**
 * Overall token bucket (golang.org/x/time/rate semantics as used by client-go): `burst` tokens,
 * refilled at `qps`; every retry reserves one token and waits until it is available.
 */
export class TokenBucketRateLimiter implements RateLimiter {
  #tokens: number;
  #last: number;

  /** Defaults: 10 qps, burst 100 (client-go). */
  constructor(
    readonly clock: Clock,
    readonly qps = 10,
    readonly burst = 100,
  ) {
    this.#tokens = burst;
    this.#last = clock.now();
  }

  when(): number {
    const now = this.clock.now();
    this.#tokens = Math.min(this.burst, this.#tokens + ((now - this.#last) / 1000) * this.qps);
    this.#last = now;
    this.#tokens -= 1;
    return this.#tokens >= 0 ? 0 : Math.ceil((-this.#tokens / this.qps) * 1000);
  }

  forget(): void {}

  numRequeues(): number {
    return 0;
  }
}

/** The largest delay of several limiters; failure counts come from the first one that counts. */
export class MaxOfRateLimiter implements RateLimiter {
  readonly #limiters: readonly RateLimiter[];

  constructor(...limiters: readonly RateLimiter[]) {
    this.#limiters = limiters;
  }

  when(key: string): number {
    let delay = 0;
    for (const l of this.#limiters) delay = Math.max(delay, l.when(key));
    return delay;
  }

  forget(key: string): void {
    for (const l of this.#limiters) l.forget(key);
  }

  numRequeues(key: string): number {
    let n = 0;
    for (const l of this.#limiters) n = Math.max(n, l.numRequeues(key));
    return n;
  }
}

/** Options of defaultControllerRateLimiter. */
export interface ControllerRateLimiterOptions {
  readonly baseMs?: number;
  readonly maxMs?: number;
  readonly qps?: number;
  readonly burst?: number;
}

/** client-go's DefaultControllerRateLimiter: max(exponential 5 ms..1000 s per key, bucket 10 qps/100). */
export function defaultControllerRateLimiter(clock: Clock, opts: ControllerRateLimiterOptions = {}): RateLimiter {
  return new MaxOfRateLimiter(
    new ExponentialBackoffRateLimiter(opts.baseMs ?? 5, opts.maxMs ?? 1_000_000),
    new TokenBucketRateLimiter(clock, opts.qps ?? 10, opts.burst ?? 100),
  );
}
