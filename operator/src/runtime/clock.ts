// Time, injected. Every component of the runtime that waits or measures takes a Clock, so unit
// tests drive time with FakeClock and never sleep on the wall clock. The same shape as the
// trainer's transport Clock (trainer/src/collective/nats/clock.ts): now() and setTimer(fn, ms).

/** A scheduled callback that can be cancelled. */
export interface TimerHandle {
  /** Cancels the callback if it has not run yet (idempotent). */
  cancel(): void;
}

/** Milliseconds since the epoch plus timers. */
export interface Clock {
  /** Current time in milliseconds since the epoch. */
  now(): number;
  /** Runs `fn` once after `ms` milliseconds (0 or less: on the next turn). */
  setTimer(fn: () => void, ms: number): TimerHandle;
}

/** The wall clock; timers are unref'd so that a pending timer never keeps the process alive. */
export const realClock: Clock = {
  now: () => Date.now(),
  setTimer(fn, ms) {
    const t = setTimeout(fn, Math.max(0, ms));
    t.unref();
    return { cancel: () => clearTimeout(t) };
  },
};

/** Resolves after `ms` on `clock`, or early (without rejecting) when `signal` aborts. */
export function sleep(clock: Clock, ms: number, signal?: AbortSignal): Promise<void> {
  if (signal?.aborted === true) return Promise.resolve();
  return new Promise<void>((resolve) => {
    const onAbort = (): void => {
      timer.cancel();
      resolve();
    };
    const timer = clock.setTimer(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

interface FakeTimer {
  readonly due: number;
  readonly seq: number;
  readonly fn: () => void;
  cancelled: boolean;
}

/** A manually advanced clock for tests: timers run only inside `advance`, in due-time order. */
export class FakeClock implements Clock {
  #now: number;
  #seq = 0;
  #timers: FakeTimer[] = [];

  /** Starts at `startMs` (default an arbitrary fixed instant, so logs are reproducible). */
  constructor(startMs = 1_700_000_000_000) {
    this.#now = startMs;
  }

  /** The fake current time. */
  now(): number {
    return this.#now;
  }

  /** Schedules `fn` at now + ms. */
  setTimer(fn: () => void, ms: number): TimerHandle {
    const timer: FakeTimer = { due: this.#now + Math.max(0, ms), seq: this.#seq++, fn, cancelled: false };
    this.#timers.push(timer);
    return { cancel: () => void (timer.cancelled = true) };
  }

  /** Number of timers not yet run or cancelled. */
  get pendingTimers(): number {
    return this.#timers.filter((t) => !t.cancelled).length;
  }

  /**
   * Moves time forward by `ms`, running every timer that falls due on the way at its own due time
   * and letting promise continuations settle after each one (so that code awaiting a timer can
   * schedule the next one within the same advance).
   */
  async advance(ms: number): Promise<void> {
    const target = this.#now + ms;
    await flushMicrotasks();
    for (;;) {
      this.#timers = this.#timers.filter((t) => !t.cancelled);
      let next: FakeTimer | undefined;
      for (const t of this.#timers) {
        if (t.due <= target && (next === undefined || t.due < next.due || (t.due === next.due && t.seq < next.seq))) next = t;
      }
      if (next === undefined) break;
      this.#now = Math.max(this.#now, next.due);
      next.cancelled = true;
      next.fn();
      await flushMicrotasks();
    }
    this.#now = target;
    await flushMicrotasks();
  }
}

/** Lets pending promise continuations run (one macrotask turn). */
export function flushMicrotasks(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}
